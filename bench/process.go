package bench

// --spawn runs payd as child OS processes, so that payd's CPU time and
// memory are measured apart from the load generator's: starting and
// stopping them, noticing one that dies, and reading their /proc figures.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// child is one payd process the bench started.
type child struct {
	role string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit, valid after done
	// stopping is set once the bench asked it to stop: an exit after that is
	// no failure.
	stopping atomic.Bool
	before   procSample
}

// startChild runs bin with args (e.g. "all") in env, output to logw (nil:
// discarded).
func startChild(bin string, env []string, logw *os.File, role string, args ...string) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if logw != nil { // else exec connects both to the null device
		cmd.Stdout, cmd.Stderr = logw, logw
	}
	// its own process group: a Ctrl-C of the bench reaches it only through us
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start payd %s: %w", role, err)
	}
	c := &child{role: role, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop sends SIGTERM, waits for a graceful exit, and kills after grace.
func (c *child) stop(grace time.Duration) error {
	c.stopping.Store(true)
	select {
	case <-c.done:
		return c.exitErr()
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.exitErr()
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("bench: payd %s did not stop within %s; killed", c.role, grace)
	}
}

func (c *child) exitErr() error {
	if c.err != nil {
		return fmt.Errorf("bench: payd %s: %w", c.role, c.err)
	}
	return nil
}

// procSample is one look at a process in /proc.
type procSample struct {
	CPUSeconds float64 // utime + stime
	PeakRSSKB  int64   // VmHWM
	RSSKB      int64   // VmRSS
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat; Linux fixes it
// at 100 for user space whatever the kernel's own tick.
const userHZ = 100

func readProc(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return s, fmt.Errorf("bench: odd /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// after comm: state(3) ... utime(14) stime(15), i.e. f[11], f[12]
	if len(f) < 13 {
		return s, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("bench: /proc/%d/stat: %w", pid, err)
	}
	s.CPUSeconds = float64(ut+st) / userHZ
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			s.PeakRSSKB = kb
		case "VmRSS":
			s.RSSKB = kb
		}
	}
	return s, sc.Err()
}

// procFigures is what one payd process cost during the measured phase.
type procFigures struct {
	Role       string  `json:"role"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"` // utime+stime spent between the bench's two looks
	// CPUPerPayment is CPUSeconds per payment accepted in the run, in ms.
	CPUMsPerPayment float64 `json:"cpu_ms_per_payment"`
	PeakRSSMB       float64 `json:"peak_rss_mb"` // VmHWM at the end: the high-water mark since the process started
	Error           string  `json:"error,omitempty"`
}

// freeLoopback returns a loopback address with a port free right now.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// childEnv is base with every variable of over set to over's value (an
// empty value removes it).
func childEnv(base []string, over map[string]string) []string {
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := over[k]; !ok {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(over)) {
		if over[k] != "" {
			env = append(env, k+"="+over[k])
		}
	}
	return env
}

// lookupEnv is the value of name in env, "" when unset.
func lookupEnv(env []string, name string) string {
	for _, kv := range slices.Backward(env) { // the last one counts, as for exec
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

// watcher notices a child that exits without being asked to.
type watcher struct {
	ctx   context.Context
	died  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	which *child
}

func newWatcher(ctx context.Context) *watcher {
	return &watcher{ctx: ctx, died: make(chan struct{})}
}

// watch adds a child; Died closes when any watched child dies.
func (w *watcher) watch(c *child) {
	go func() {
		select {
		case <-c.done:
			if !c.stopping.Load() {
				w.mu.Lock()
				w.which = c
				w.mu.Unlock()
				w.once.Do(func() { close(w.died) })
			}
		case <-w.ctx.Done():
		}
	}()
}

// err says which child died and how.
func (w *watcher) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.which == nil {
		return nil
	}
	return fmt.Errorf("payd %s exited: %v", w.which.role, w.which.err)
}

// machineCPU is the CPU seconds the whole machine spent busy since boot
// (/proc/stat: user, nice, system, irq, softirq, steal): PostgreSQL, Redis,
// payd and the bench itself.
func machineCPU() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("bench: odd /proc/stat")
	}
	var busy int64
	for _, k := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc/stat: %w", err)
		}
		busy += n
	}
	return float64(busy) / userHZ, nil
}
