package main

// Past one Redis (issue 24): payd's REDIS_URL in its Sentinel and Cluster
// forms (jobs.ParseRedisURL), against real servers started here.
//
// TestFaultSentinelFailover: a primary, a replica and three sentinels
// (Debian's redis-sentinel), payd's processes on the sentinel URL, a load of
// payments, and mid-load the replica loses its link to the primary and,
// about 1.5–2 s later, the primary dies by kill -9. The sentinels promote the
// replica; the writes the old primary acknowledged after the link broke
// (tasks enqueued, moved, completed) are gone with it, as after any
// failover under asynchronous replication. The test measures what was lost
// and how long payd took to recover, and the fault checker (finish: I1–I5,
// I8) proves that nothing was lost and nothing charged twice: the sweeper
// re-enqueues from Postgres what Redis forgot.
//
// TestRedisCluster: a 3-node Redis Cluster (redis-server --cluster-enabled
// yes, redis-cli --cluster create), payd's processes on the cluster URL,
// a smaller load through every role, the monitor's gauges and asynqmon's
// cluster view, and the same checker.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/jobs"
)

// faultSentinelMaster is the name the sentinels monitor the primary by.
const faultSentinelMaster = "payd"

func TestFaultSentinelFailover(t *testing.T) {
	for _, tool := range []string{"redis-server", "redis-sentinel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: scripts/test.sh installs Debian's redis-sentinel (and services.sh redis-server): %v", tool, err)
		}
	}
	bin := buildFaultPayd(t)
	s := startFaultSentinel(t)
	c := startFaultClusterWith(t, bin, faultOpts{redisURL: s.URL()})
	mon := c.startMonitor()
	l := c.startLoad(faultLoadSpec{n: 480, clients: 8, spread: 6 * time.Second, mix: faultMix})

	// The replica's link to the primary breaks: from here on, every write
	// the primary acknowledges exists only there.
	faultSleepUntil(l.start.Add(2 * time.Second))
	s.cutReplica()
	cut := time.Now()
	t.Logf("replica %s cut off from primary %s at +%s", s.replica.addr(), s.primary.addr(), cut.Sub(l.start).Round(time.Millisecond))

	faultSleepUntil(l.start.Add(3500 * time.Millisecond))
	before := s.beforeKill() // what the primary holds that the replica does not
	s.primary.kill9()
	kill := time.Now()
	t.Logf("kill -9 primary %s at +%s: %d bytes of replication stream never reached the replica",
		s.primary.addr(), kill.Sub(l.start).Round(time.Millisecond), before.lagBytes)

	// recovery, timed from the kill
	var wg sync.WaitGroup
	var promoted, redisBack, firstTask time.Duration
	var promoteErr, redisErr, taskErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		promoted, promoteErr = s.waitPromoted(kill, 60*time.Second)
		if promoteErr == nil {
			firstTask, taskErr = s.waitTaskDone(kill, 60*time.Second)
		}
	}()
	go func() { defer wg.Done(); redisBack, redisErr = c.waitRedisReady(kill, 60*time.Second) }()
	wg.Wait()
	for _, err := range []error{promoteErr, redisErr, taskErr} {
		if err != nil {
			t.Fatalf("recovery: %v", err)
		}
	}
	t.Logf("RECOVERY after kill -9 of the primary: sentinels promoted the replica in %s; intake's Redis check ok again in %s; "+
		"first task done on the new primary in %s", promoted.Round(time.Millisecond), redisBack.Round(time.Millisecond),
		firstTask.Round(time.Millisecond))

	l.wait()
	t.Logf("INTAKE during the failover (2xx answers by when the request was sent): %s",
		answerLatencies(l, kill, kill.Add(redisBack)))
	sum := c.finish("sentinel_failover", l, kill)

	// What the failover lost, and that it only delayed the payments it touched.
	lost := before.lost()
	t.Logf("LOST in the failover: %d tasks the old primary held and the new one never had (by state there: %v), "+
		"%d tasks done on the old primary back as %v on the new one", lost.total, lost.byState, lost.resurrected, lost.resurrectedAs)
	if lost.waiting == 0 {
		t.Errorf("no task waiting in a queue (pending, scheduled, retry, active) was lost: the failover lost nothing, so this proves nothing")
	}
	c.checkDelayed(lost.payments, kill)
	swept := c.sweptSince(kill)
	t.Logf("the sweeper re-enqueued %d overdue steps from Postgres after the kill", swept)
	if swept == 0 {
		t.Errorf("the sweeper re-enqueued nothing after the failover, yet Redis lost tasks")
	}
	if sum.lost > 0 || sum.doubleCharged > 0 {
		t.Errorf("after the failover: %d payments lost, %d charged twice", sum.lost, sum.doubleCharged)
	}
	mon.checkQueues(t, "after the failover")
}

// ---------------------------------------------------------------- sentinel

// faultSentinel is a private primary, its replica and three sentinels
// (quorum 2) on free loopback ports.
type faultSentinel struct {
	t                *testing.T
	primary, replica *redisNode
	sentinels        []*redisNode
}

func startFaultSentinel(t *testing.T) *faultSentinel {
	t.Helper()
	s := &faultSentinel{t: t}
	s.primary = startRedisNode(t, "primary", "redis-server", redisServerArgs)
	s.replica = startRedisNode(t, "replica", "redis-server", func(n *redisNode) []string {
		return append(redisServerArgs(n), "--replicaof", "127.0.0.1", strconv.Itoa(s.primary.port))
	})
	s.waitInfo(s.replica, "replication", "master_link_status", "up", 20*time.Second)
	for i := range 3 {
		s.sentinels = append(s.sentinels, startRedisNode(t, fmt.Sprintf("sentinel-%d", i+1), "redis-sentinel", func(n *redisNode) []string {
			// down after 1 s without an answer. failover-timeout is also how
			// long a sentinel leaves a replica that follows another address
			// (cutReplica's) before it points it back at the primary: far
			// longer than the ~2 s from the cut to the kill
			m := faultSentinelMaster
			conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir %s\nlogfile %s\n"+
				"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %s 1000\n"+
				"sentinel failover-timeout %s 10000\nsentinel parallel-syncs %s 1\n",
				n.port, n.dir, n.logPath(), m, s.primary.port, m, m, m)
			path := filepath.Join(n.dir, "sentinel.conf") // sentinels rewrite their config: a file of their own
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{path}
		}))
	}
	// every sentinel knows the replica and the two other sentinels before
	// payd starts: a failover needs them
	deadline := time.Now().Add(30 * time.Second)
	for _, sn := range s.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.addr()})
		for {
			replicas, rerr := sc.Replicas(context.Background(), faultSentinelMaster).Result()
			others, serr := sc.Sentinels(context.Background(), faultSentinelMaster).Result()
			if rerr == nil && serr == nil && len(replicas) == 1 && len(others) == 2 {
				break
			}
			if time.Now().After(deadline) {
				sc.Close()
				t.Fatalf("%s: knows %d replicas (%v) and %d other sentinels (%v) after 30 s, want 1 and 2", sn.name,
					len(replicas), rerr, len(others), serr)
			}
			time.Sleep(100 * time.Millisecond)
		}
		sc.Close()
	}
	return s
}

// redisServerArgs: a data node like the deployed one, nothing on disk.
func redisServerArgs(n *redisNode) []string {
	return []string{"--port", strconv.Itoa(n.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", n.dir, "--logfile", n.logPath()}
}

// URL is payd's REDIS_URL: the Sentinel form.
func (s *faultSentinel) URL() string {
	var addrs []string
	for _, sn := range s.sentinels {
		addrs = append(addrs, sn.addr())
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master=" + faultSentinelMaster
}

// cutReplica points the replica at a port nothing listens on: its link to
// the primary is down, and what the primary writes from now on is not
// replicated (a partition between them, or a replica far behind).
func (s *faultSentinel) cutReplica() {
	s.t.Helper()
	dead := faultFreePort(s.t)
	rdb := s.replica.client()
	defer rdb.Close()
	if err := rdb.SlaveOf(context.Background(), "127.0.0.1", strconv.Itoa(dead)).Err(); err != nil {
		s.t.Fatalf("REPLICAOF 127.0.0.1 %d on the replica: %v", dead, err)
	}
}

// faultTaskSnapshot is the asynq task keys of the primary just before
// the kill, with their states, and of the replica (what the sentinels
// promote).
type faultTaskSnapshot struct {
	primary  map[string]string // task key → state
	replica  map[string]string
	lagBytes int64 // primary's replication offset − the replica's
}

func (s *faultSentinel) beforeKill() faultTaskSnapshot {
	s.t.Helper()
	ctx := context.Background()
	var snap faultTaskSnapshot
	p, r := s.primary.client(), s.replica.client()
	defer p.Close()
	defer r.Close()
	// the replica first: it no longer changes
	snap.replica = taskStates(s.t, r)
	ri, err := r.Info(ctx, "replication").Result()
	if err != nil {
		s.t.Fatalf("replica INFO: %v", err)
	}
	snap.primary = taskStates(s.t, p)
	pi, err := p.Info(ctx, "replication").Result()
	if err != nil {
		s.t.Fatalf("primary INFO: %v", err)
	}
	po, _ := strconv.ParseInt(infoValue(pi, "master_repl_offset"), 10, 64)
	ro, _ := strconv.ParseInt(infoValue(ri, "master_repl_offset"), 10, 64)
	snap.lagBytes = po - ro
	return snap
}

// taskStates reads every asynq task key of a node and its state.
func taskStates(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := rdb.Scan(ctx, 0, "asynq:{*}:t:*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN task keys: %v", err)
	}
	states := map[string]string{}
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.HGet(ctx, k, "state")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("task states: %v", err)
	}
	for i, cmd := range cmds {
		st, _ := cmd.(*redis.StringCmd).Result()
		states[keys[i]] = st
	}
	return states
}

type faultLost struct {
	total, waiting int
	byState        map[string]int
	payments       []string // payments whose waiting task was lost
	resurrected    int      // done on the old primary, still to do on the new one
	resurrectedAs  map[string]int
}

// lost compares the two sides of the snapshot.
func (snap faultTaskSnapshot) lost() faultLost {
	l := faultLost{byState: map[string]int{}, resurrectedAs: map[string]int{}}
	seen := map[string]bool{}
	for key, st := range snap.primary {
		was, ok := snap.replica[key]
		if !ok {
			l.total++
			l.byState[st]++
			if st != "completed" {
				l.waiting++
				// asynq:{queue}:t:payment:<step>:<payment id>:<seq>
				if f := strings.Split(key, ":"); len(f) == 7 && f[3] == "payment" && !seen[f[5]] {
					seen[f[5]] = true
					l.payments = append(l.payments, f[5])
				}
			}
			continue
		}
		if st == "completed" && was != "completed" {
			l.resurrected++
			l.resurrectedAs[was]++
		}
	}
	sort.Strings(l.payments)
	return l
}

func infoValue(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// waitInfo waits until an INFO field of n has a value.
func (s *faultSentinel) waitInfo(n *redisNode, section, field, want string, limit time.Duration) {
	s.t.Helper()
	rdb := n.client()
	defer rdb.Close()
	var got string
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		info, err := rdb.Info(context.Background(), section).Result()
		if err == nil {
			if got = infoValue(info, field); got == want {
				return
			}
		}
	}
	s.t.Fatalf("%s: INFO %s is %q after %s, want %q", n.name, field, got, limit, want)
}

// waitPromoted returns how long after the kill the sentinels named the
// replica as the primary.
func (s *faultSentinel) waitPromoted(kill time.Time, limit time.Duration) (time.Duration, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].addr()})
	defer sc.Close()
	var last []string
	for time.Since(kill) < limit {
		addr, err := sc.GetMasterAddrByName(context.Background(), faultSentinelMaster).Result()
		if err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == s.replica.addr() {
			return time.Since(kill), nil
		}
		last = addr
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("the sentinels still name %v as the primary %s after the kill, not the replica %s", last, limit, s.replica.addr())
}

// waitTaskDone returns how long after the kill a worker finished a task
// on the new primary (asynq's processed counters there grew).
func (s *faultSentinel) waitTaskDone(kill time.Time, limit time.Duration) (time.Duration, error) {
	rdb := s.replica.client()
	defer rdb.Close()
	processed := func() int64 {
		var n int64
		for q := range jobs.Queues {
			v, _ := rdb.Get(context.Background(), "asynq:{"+q+"}:processed").Int64()
			n += v
		}
		return n
	}
	start := processed()
	for time.Since(kill) < limit {
		if processed() > start {
			return time.Since(kill), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no task was done on the new primary %s after the kill", limit)
}

// waitRedisReady returns how long after since intake's readiness said
// Redis is ok again (it pings Redis through payd's own client).
func (c *faultCluster) waitRedisReady(since time.Time, limit time.Duration) (time.Duration, error) {
	hc := &http.Client{Timeout: 3 * time.Second}
	defer hc.CloseIdleConnections()
	sawDown := false
	for time.Since(since) < limit {
		resp, err := hc.Get(c.intakeURL + "/readyz")
		if err != nil {
			sawDown = true // no answer in 3 s: its Redis ping hangs
		} else {
			var body struct {
				Checks map[string]string `json:"checks"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			switch {
			case body.Checks["redis"] != "ok":
				sawDown = true
			case sawDown:
				return time.Since(since), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawDown {
		// every answer said ok: intake's Redis client was already on a
		// live primary (on a starved machine the sentinels may promote
		// before the kill, the primary having missed down-after-milliseconds);
		// nothing to recover from. The other checks still hold.
		return 0, nil
	}
	return 0, fmt.Errorf("intake's /readyz did not report Redis ok again (went down: %v) %s after the kill", sawDown, limit)
}

// answerLatencies sums up how long intake took to answer the requests
// sent before from, between from and to, and after to.
func answerLatencies(l *faultLoad, from, to time.Time) string {
	windows := []struct {
		name string
		lats []time.Duration
	}{{name: "before the kill"}, {name: "until payd's Redis was back"}, {name: "after"}}
	for _, r := range l.recs {
		if r.id == "" {
			continue
		}
		i := 0
		switch {
		case r.first.Before(from):
		case r.first.Before(to):
			i = 1
		default:
			i = 2
		}
		windows[i].lats = append(windows[i].lats, r.answered.Sub(r.first))
	}
	var out []string
	for _, w := range windows {
		if len(w.lats) == 0 {
			out = append(out, w.name+": none")
			continue
		}
		slices.Sort(w.lats)
		out = append(out, fmt.Sprintf("%s: %d, median %s, max %s", w.name, len(w.lats),
			w.lats[len(w.lats)/2].Round(time.Millisecond), w.lats[len(w.lats)-1].Round(time.Millisecond)))
	}
	return strings.Join(out, "; ")
}

// checkDelayed: every payment whose waiting task the failover lost is
// final, and says how long after the kill its last change came.
func (c *faultCluster) checkDelayed(ids []string, kill time.Time) {
	t := c.chk
	t.Helper()
	if len(ids) == 0 {
		return
	}
	var latest time.Time
	open := 0
	for _, id := range ids {
		var final bool
		var updated time.Time
		if err := c.db.QueryRow(`SELECT `+faultFinalSQL+`, updated_at FROM payments WHERE id = $1`, id).Scan(&final, &updated); err != nil {
			t.Errorf("payment %s, whose task the failover lost: %v", id, err)
			continue
		}
		if !final {
			open++
			t.Errorf("payment %s, whose task the failover lost, is not final", id)
		}
		if updated.After(latest) {
			latest = updated
		}
	}
	t.Logf("DELAYED, not lost: %d payments whose waiting task the failover lost, %d of them final; the last changed %s after the kill",
		len(ids), len(ids)-open, latest.Sub(kill).Round(time.Millisecond))
}

// sweptSince sums what the sweeps of every process logged re-enqueueing
// after since.
func (c *faultCluster) sweptSince(since time.Time) int {
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	n := 0
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Time       time.Time `json:"time"`
				Msg        string    `json:"msg"`
				Count      int       `json:"count"`
				Reenqueued int       `json:"reenqueued"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil || line.Time.Before(since) {
				continue
			}
			switch line.Msg {
			case "sweep re-enqueued overdue steps":
				n += line.Count
			case "start-up sweep":
				n += line.Reenqueued
			}
		}
		f.Close()
	}
	return n
}

// complaints are the log lines of the cluster's processes that warn or
// err (slog's WARN and ERROR, asynq's and go-redis's own lines), but for
// the admin port's note that it has no password.
func (c *faultCluster) complaints() []string {
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	var out []string
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			bad := strings.Contains(line, "WARN") || strings.Contains(line, "ERROR") || strings.HasPrefix(line, "redis: ")
			if bad && !strings.Contains(line, "PAYD_ADMIN_PASSWORD is empty") {
				out = append(out, filepath.Base(path)+": "+line)
			}
		}
	}
	return out
}

// ---------------------------------------------------------------- cluster

func TestRedisCluster(t *testing.T) {
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/services.sh installs redis-server and redis-tools): %v", tool, err)
		}
	}
	bin := buildFaultPayd(t)
	began := time.Now()
	rc := startFaultRedisCluster(t)
	t.Logf("3-node Redis Cluster up in %s: %s", time.Since(began).Round(time.Millisecond), rc.URL())

	// one task round-trips through asynq on the cluster, from the RedisConn
	// payd builds every client from
	conn, err := jobs.ParseRedisURL(rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := conn.NewClient()
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("NewClient of %s is a %T, want *redis.ClusterClient", rc.URL(), rdb)
	}
	roundTrip(t, conn)

	c := startFaultClusterWith(t, bin, faultOpts{redisURL: rc.URL()})
	mon := c.startMonitor()
	l := c.startLoad(faultLoadSpec{n: 120, clients: 8, spread: 3 * time.Second, mix: faultMix})
	l.wait()
	sum := c.finish("redis_cluster", l, l.end)
	if sum.lost > 0 || sum.doubleCharged > 0 {
		t.Errorf("on the cluster: %d payments lost, %d charged twice", sum.lost, sum.doubleCharged)
	}
	mon.checkQueues(t, "on the cluster")
	// every role ran on the cluster without a complaint: the rate limiter
	// answered (else intake warns "rate limiter unavailable"), asynq's
	// server, scheduler and inspector and go-redis logged nothing wrong
	for _, line := range c.complaints() {
		t.Errorf("on the cluster: %s", line)
	}

	// asynq keeps each queue under one hash tag: one slot, one node
	insp := asynq.NewInspector(conn)
	defer insp.Close()
	var where []string
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow} {
		slot, err := insp.ClusterKeySlot(q)
		if err != nil {
			t.Fatalf("queue %s's slot: %v", q, err)
		}
		nodes, err := insp.ClusterNodes(q)
		if err != nil || len(nodes) == 0 {
			t.Fatalf("queue %s's node: %v (%d nodes)", q, err, len(nodes))
		}
		where = append(where, fmt.Sprintf("%s: slot %d on %s", q, slot, nodes[0].Addr))
	}
	t.Logf("CLUSTER queues: %s", strings.Join(where, "; "))
	var info struct {
		Cluster bool `json:"cluster"`
	}
	mon.getJSON(t, "/monitor/api/redis_info", &info)
	if !info.Cluster {
		t.Errorf("asynqmon's redis_info does not see a cluster")
	}
}

// roundTrip enqueues a payd task through a client and an asynq server both
// built from conn, and waits for the handler to get it.
func roundTrip(t *testing.T, conn jobs.RedisConn) {
	t.Helper()
	queue := "roundtrip-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	task, err := jobs.NewReconcileTask(jobs.ReconcilePayload{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	srv := asynq.NewServer(conn, asynq.Config{Concurrency: 1, Queues: map[string]int{queue: 1}, LogLevel: asynq.WarnLevel,
		TaskCheckInterval: 20 * time.Millisecond})
	mux := asynq.NewServeMux()
	mux.HandleFunc(jobs.TypeReconcile, func(_ context.Context, tk *asynq.Task) error {
		select {
		case got <- tk.Type():
		default:
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatalf("asynq server on the cluster: %v", err)
	}
	defer srv.Shutdown()
	cl := asynq.NewClient(conn)
	defer cl.Close()
	info, err := cl.Enqueue(task, asynq.Queue(queue))
	if err != nil {
		t.Fatalf("enqueue on the cluster: %v", err)
	}
	select {
	case typ := <-got:
		t.Logf("task %s (%s) round-tripped on the cluster", info.ID, typ)
	case <-time.After(30 * time.Second):
		t.Fatalf("task %s enqueued on the cluster never reached the handler", info.ID)
	}
	insp := asynq.NewInspector(conn)
	defer insp.Close()
	_ = insp.DeleteQueue(queue, true)
}

// faultRedisCluster is three redis-server nodes in cluster mode, every
// slot assigned, no replicas.
type faultRedisCluster struct {
	nodes []*redisNode
}

func startFaultRedisCluster(t *testing.T) *faultRedisCluster {
	t.Helper()
	rc := &faultRedisCluster{}
	for i := range 3 {
		rc.nodes = append(rc.nodes, startRedisNode(t, fmt.Sprintf("cluster-%d", i+1), "redis-server", func(n *redisNode) []string {
			// the bus port is chosen too: port+10000 may be taken or out of range
			return append(redisServerArgs(n), "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(n.dir, "nodes.conf"),
				"--cluster-node-timeout", "2000", "--cluster-port", strconv.Itoa(faultFreePort(t)))
		}))
	}
	args := []string{"--cluster", "create"}
	for _, n := range rc.nodes {
		args = append(args, n.addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, n := range rc.nodes {
		rdb := n.client()
		var state string
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			info, err := rdb.ClusterInfo(context.Background()).Result()
			if state = infoValue(info, "cluster_state"); err == nil && state == "ok" {
				break
			}
			if time.Now().After(end) {
				rdb.Close()
				t.Fatalf("%s: cluster_state %q after 30 s (%v)", n.name, state, err)
			}
		}
		rdb.Close()
	}
	return rc
}

// URL is payd's REDIS_URL: the Cluster form, naming two of the three nodes
// (the client learns the rest from them).
func (rc *faultRedisCluster) URL() string {
	return "redis-cluster://" + rc.nodes[0].addr() + "," + rc.nodes[1].addr()
}

// ---------------------------------------------------------------- nodes

// redisNode is one private redis-server or redis-sentinel process.
type redisNode struct {
	t    *testing.T
	name string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedisNode starts bin with args(node) on a free port (another one if
// it was taken meanwhile) and waits for its PING.
func startRedisNode(t *testing.T, name, bin string, args func(*redisNode) []string) *redisNode {
	t.Helper()
	// its own directory: a sentinel rewrites its config file there
	dir, err := os.MkdirTemp("", "payd-redis-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for try := 0; ; try++ {
		n := &redisNode{t: t, name: name, dir: dir, port: faultFreePort(t)}
		err := n.start(bin, args(n))
		if err == nil {
			t.Cleanup(n.kill9)
			return n
		}
		if try == 4 {
			t.Fatalf("start %s (%s): %v", name, bin, err)
		}
	}
}

func (n *redisNode) addr() string    { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }
func (n *redisNode) logPath() string { return filepath.Join(n.dir, n.name+".log") }

// client is a direct connection to this node (no Sentinel, no Cluster).
func (n *redisNode) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
}

func (n *redisNode) start(bin string, args []string) error {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(n.done) }()
	rdb := n.client()
	defer rdb.Close()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		select {
		case <-n.done:
			b, _ := os.ReadFile(n.logPath())
			return fmt.Errorf("%s exited: %s", bin, logTail(b, 5))
		default:
		}
		if rdb.Ping(context.Background()).Err() == nil {
			return nil
		}
	}
	n.kill9()
	return fmt.Errorf("%s did not answer PING in 10 s", bin)
}

// kill9 sends SIGKILL and waits for the process to die.
func (n *redisNode) kill9() {
	if n.cmd == nil {
		return
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.t.Errorf("%s (pid %d) survived kill -9", n.name, n.cmd.Process.Pid)
	}
}

// ---------------------------------------------------------------- monitor

// faultMonitor is a `payd monitor` of the cluster, with its admin port
// (metrics, asynqmon) behind a password.
type faultMonitor struct {
	c   *faultCluster
	url string
}

const faultMonitorPassword = "monitor-secret"

// startMonitor starts `payd monitor` on a free admin port.
func (c *faultCluster) startMonitor() *faultMonitor {
	c.t.Helper()
	addr := faultFreeAddr(c.t)
	n := len(c.env)
	c.env = append(c.env, "PAYD_ADMIN_ADDR="+addr, "PAYD_ADMIN_PASSWORD="+faultMonitorPassword)
	c.start("monitor", "monitor")
	c.env = c.env[:n:n]
	m := &faultMonitor{c: c, url: "http://" + addr}
	c.waitHTTP("monitor", m.url+"/healthz")
	return m
}

func (m *faultMonitor) get(t *testing.T, path string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, m.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", faultMonitorPassword)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("monitor %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("monitor %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

func (m *faultMonitor) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(m.get(t, path), v); err != nil {
		t.Fatalf("monitor %s: %v", path, err)
	}
}

// checkQueues: the monitor reads the queues (payd_monitor_source_up for
// redis is 1, and every queue has its gauges).
func (m *faultMonitor) checkQueues(t *testing.T, when string) {
	t.Helper()
	body := string(m.get(t, "/metrics"))
	if !strings.Contains(body, `payd_monitor_source_up{source="redis"} 1`) {
		t.Errorf("%s the monitor cannot read Redis:\n%s", when, grepLines(body, "payd_monitor_source_up"))
	}
	for q := range jobs.Queues {
		if !strings.Contains(body, `payd_queue_tasks{queue="`+q+`",state="pending"}`) {
			t.Errorf("%s the monitor has no payd_queue_tasks for queue %s:\n%s", when, q, grepLines(body, "payd_queue_tasks"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
