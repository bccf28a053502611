package main

// Private infrastructure for the fault scenarios that break it: a Redis and
// a PostgreSQL cluster of their own (FLUSHALL, restart, SIGSTOP and
// `pg_ctl restart -m immediate` must not touch the shared test servers that
// other packages' tests use), a loopback TCP proxy in front of the sandbox
// gateway (closed to make the gateway "down": connection refused, while the
// sandbox process and its ledger live on), and a way to see which
// connections a process holds.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ---------------------------------------------------------------- redis

// faultRedis is a private redis-server: nothing on disk, so a restart comes
// back empty, as the Redis payd is deployed with.
type faultRedis struct {
	t    *testing.T
	port int
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startFaultRedis(t *testing.T) *faultRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found (scripts/services.sh installs it): %v", err)
	}
	r := &faultRedis{t: t, dir: t.TempDir()}
	for try := 0; ; try++ {
		r.port = faultFreePort(t)
		if err := r.start(); err == nil {
			break
		} else if try == 4 {
			t.Fatalf("start redis: %v", err)
		}
	}
	t.Cleanup(func() { r.kill() })
	return r
}

func (r *faultRedis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *faultRedis) start() error {
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--databases", "16", "--dir", r.dir,
		"--logfile", filepath.Join(r.dir, "redis.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer rdb.Close()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server exited: %s", logTail(b, 5))
		default:
		}
		if rdb.Ping(context.Background()).Err() == nil {
			return nil
		}
	}
	r.kill()
	return errors.New("redis-server did not answer PING in 10s")
}

func (r *faultRedis) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.Process.Pid
}

func (r *faultRedis) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT) // a stopped process dies only once continued
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// restart kills redis-server and starts an empty one on the same port.
func (r *faultRedis) restart() {
	r.t.Helper()
	r.kill()
	if err := r.start(); err != nil {
		r.t.Fatalf("restart redis on port %d: %v", r.port, err)
	}
}

func (r *faultRedis) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := syscall.Kill(r.pid(), sig); err != nil {
		r.t.Fatalf("kill -%d redis: %v", sig, err)
	}
}

// ---------------------------------------------------------------- postgres

// faultPG is a private PostgreSQL cluster (initdb + pg_ctl on a free port),
// set up like scripts/services.sh's: fsync on, 300 connections; it also
// keeps commit timestamps.
type faultPG struct {
	t     *testing.T
	bin   string
	root  string
	port  int
	user  string // OS user running postgres (it refuses root)
	asArg []string
}

func startFaultPG(t *testing.T) *faultPG {
	t.Helper()
	bin := os.Getenv("PAYD_PG_BIN")
	if bin == "" {
		t.Fatalf("PAYD_PG_BIN is not set: source the env of scripts/services.sh up (make test does)")
	}
	pg := &faultPG{t: t, bin: bin}
	pg.user = os.Getenv("PAYD_PG_USER")
	if os.Geteuid() == 0 {
		if pg.user == "" || pg.user == "root" {
			pg.user = "postgres"
		}
		pg.asArg = []string{"runuser", "-u", pg.user, "--"}
	}
	// Not t.TempDir: postgres, run as another user, must reach it, and a
	// socket path must stay short.
	root, err := os.MkdirTemp("", "payd-fault-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg.root = root
	t.Cleanup(func() { os.RemoveAll(root) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup(pg.user)
		if err != nil {
			t.Fatalf("postgres user %s: %v", pg.user, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pg.run("initdb", "-D", pg.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C")
	conf := fmt.Sprintf("\n# payd fault test (like scripts/services.sh)\nlisten_addresses = '127.0.0.1'\n"+
		"unix_socket_directories = '%s'\nmax_connections = 300\nshared_buffers = 64MB\nfsync = on\n"+
		// the checker times audit rows by their commit, not by the clock of
		// the process that wrote them (fault_clock_test.go)
		"track_commit_timestamp = on\n", root)
	pg.run("sh", "-c", `printf '%s' "$1" >>"$2"`, "sh", conf, filepath.Join(pg.data(), "postgresql.conf"))
	for try := 0; ; try++ {
		pg.port = faultFreePort(t)
		pg.run("sh", "-c", `printf 'port = %s\n' "$1" >"$2"`, "sh", strconv.Itoa(pg.port), filepath.Join(pg.data(), "postgresql.auto.conf"))
		if _, err := pg.try(pg.bin+"/pg_ctl", "-D", pg.data(), "-l", pg.logPath(), "-w", "-t", "60", "start"); err == nil {
			break
		} else if try == 4 {
			b, _ := os.ReadFile(pg.logPath())
			t.Fatalf("pg_ctl start: %v\n%s", err, logTail(b, 20))
		}
	}
	t.Cleanup(func() {
		_, _ = pg.try(pg.bin+"/pg_ctl", "-D", pg.data(), "-m", "immediate", "-w", "-t", "30", "stop")
	})
	pg.waitReady(30 * time.Second)
	return pg
}

func (pg *faultPG) data() string    { return filepath.Join(pg.root, "data") }
func (pg *faultPG) logPath() string { return filepath.Join(pg.root, "postgres.log") }
func (pg *faultPG) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

func (pg *faultPG) try(name string, args ...string) (string, error) {
	argv := append(append([]string{}, pg.asArg...), name)
	argv = append(argv, args...)
	if name == "initdb" {
		argv[len(pg.asArg)] = pg.bin + "/initdb"
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (pg *faultPG) run(name string, args ...string) {
	pg.t.Helper()
	if out, err := pg.try(name, args...); err != nil {
		pg.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// restartImmediate is `pg_ctl restart -m immediate`: every backend dies
// without a checkpoint, the server recovers from its WAL and comes back.
func (pg *faultPG) restartImmediate() {
	pg.t.Helper()
	if out, err := pg.try(pg.bin+"/pg_ctl", "-D", pg.data(), "-l", pg.logPath(), "-m", "immediate", "-w", "-t", "60", "restart"); err != nil {
		b, _ := os.ReadFile(pg.logPath())
		pg.t.Fatalf("pg_ctl restart -m immediate: %v\n%s\n%s", err, out, logTail(b, 20))
	}
	pg.waitReady(60 * time.Second)
}

// appURL creates role (LOGIN, no other right) on the private cluster and
// returns the URL of the same database as that role.
func (pg *faultPG) appURL(role string) string {
	pg.t.Helper()
	db, err := sql.Open("postgres", pg.URL())
	if err != nil {
		pg.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE ROLE ` + role + ` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`); err != nil {
		pg.t.Fatalf("private postgres: create role %s: %v", role, err)
	}
	u, err := url.Parse(pg.URL())
	if err != nil {
		pg.t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

func (pg *faultPG) waitReady(d time.Duration) {
	pg.t.Helper()
	db, err := sql.Open("postgres", pg.URL())
	if err != nil {
		pg.t.Fatal(err)
	}
	defer db.Close()
	var perr error
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if perr = db.Ping(); perr == nil {
			return
		}
	}
	pg.t.Fatalf("private postgres on %d not ready in %s: %v", pg.port, d, perr)
}

// ---------------------------------------------------------------- gateway proxy

// faultProxy forwards loopback TCP connections to the sandbox. down closes
// the listener and every connection (callers then get connection refused,
// and a request in flight a reset); up listens on the same address again.
type faultProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	p := &faultProxy{t: t, addr: faultFreeAddr(t), target: target, conns: map[net.Conn]struct{}{}}
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *faultProxy) up() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
	}
	if err != nil {
		p.t.Fatalf("gateway proxy: listen %s again: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *faultProxy) serve(c net.Conn) {
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *faultProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as from a gateway that went away
		}
		c.Close()
	}
}

// ---------------------------------------------------------------- sockets

// faultLocalPorts returns the local TCP ports of the sockets process pid holds
// (Linux /proc): with pg_stat_activity.client_port it names the backends that
// serve a given payd process.
func faultLocalPorts(pid int) (map[int]bool, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || !inodes[fs[9]] {
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i >= 0 {
				if port, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil {
					ports[int(port)] = true
				}
			}
		}
	}
	return ports, nil
}

func faultFreePort(t *testing.T) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(faultFreeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}
