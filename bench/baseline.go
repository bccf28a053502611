package bench

// Baselines measured on the same Postgres and Redis as the run: what the
// raw building blocks do without payd, so that payd's figures read as a
// fraction of what the machine allows.

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// asynqBaseline is raw asynq on this Redis: no-op tasks, payd's worker settings.
type asynqBaseline struct {
	Tasks              int     `json:"tasks"`
	Concurrency        int     `json:"concurrency"`
	EnqueueSeconds     float64 `json:"enqueue_seconds"`
	EnqueuePerSecond   float64 `json:"enqueued_per_second"`
	ProcessSeconds     float64 `json:"process_seconds"`
	ProcessedPerSecond float64 `json:"tasks_per_second"`
}

// benchAsynq enqueues n no-op tasks into a scratch queue with c clients,
// then processes them with an asynq.Server at payd's worker concurrency and
// task check interval, and deletes the queue.
func benchAsynq(ctx context.Context, cfg Config, runID string, n, c int) (asynqBaseline, error) {
	res := asynqBaseline{Tasks: n, Concurrency: cfg.WorkerConcurrency}
	conn, err := jobs.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return res, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt := conn.WithPoolSize(max(c, cfg.WorkerConcurrency) + 8)
	queue := "bench-noop-" + runID
	cl := asynq.NewClient(opt)
	defer cl.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	defer insp.DeleteQueue(queue, true)

	began := time.Now()
	if err := parallel(ctx, n, c, func(i int) error {
		_, err := cl.EnqueueContext(ctx, asynq.NewTask("bench:noop", nil), asynq.Queue(queue), asynq.MaxRetry(0))
		return err
	}); err != nil {
		return res, fmt.Errorf("enqueue no-op tasks: %w", err)
	}
	res.EnqueueSeconds = time.Since(began).Seconds()
	res.EnqueuePerSecond = float64(n) / res.EnqueueSeconds

	var done atomic.Int64
	all := make(chan struct{})
	var once sync.Once
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: cfg.WorkerConcurrency, Queues: map[string]int{queue: 1},
		TaskCheckInterval: cfg.TaskCheck, LogLevel: asynq.WarnLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			once.Do(func() { close(all) })
		}
		return nil
	})
	began = time.Now()
	if err := srv.Start(mux); err != nil {
		return res, fmt.Errorf("asynq server: %w", err)
	}
	defer srv.Shutdown()
	select {
	case <-all:
	case <-ctx.Done():
		return res, fmt.Errorf("processing no-op tasks (%d/%d done): %w", done.Load(), n, context.Cause(ctx))
	}
	res.ProcessSeconds = time.Since(began).Seconds()
	res.ProcessedPerSecond = float64(n) / res.ProcessSeconds
	return res, nil
}

// redisTaskMemory is Redis's used_memory per queued payd task.
type redisTaskMemory struct {
	Tasks          int     `json:"tasks"`
	BytesBefore    int64   `json:"used_memory_before"`
	BytesAfter     int64   `json:"used_memory_after"`
	BytesPerTask   float64 `json:"bytes_per_task"`
	ExampleTaskID  string  `json:"example_task_id"`
	ExamplePayload int     `json:"payload_bytes"`
}

// benchRedisMemory enqueues k payment:submit tasks built by jobs (payd's own
// IDs, TaskIDs, options and payloads) into a scratch queue nothing serves,
// reads INFO memory before and after, and deletes the queue.
func benchRedisMemory(ctx context.Context, cfg Config, runID string, k, c int) (redisTaskMemory, error) {
	res := redisTaskMemory{Tasks: k}
	conn, err := jobs.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return res, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := conn.WithPoolSize(c + 4).NewClient()
	defer rdb.Close()
	cl := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	queue := "bench-mem-" + runID
	defer insp.DeleteQueue(queue, true)
	if res.BytesBefore, err = usedMemory(ctx, rdb); err != nil {
		return res, err
	}
	if err := parallel(ctx, k, c, func(i int) error {
		t, err := jobs.NewStepTask(payment.StepSubmit, store.NewID(payment.PrefixPayment), 1, time.Time{}, cfg.TaskRetention)
		if err != nil {
			return err
		}
		if i == 0 {
			res.ExampleTaskID, res.ExamplePayload = "payment:submit:<payment id>:1", len(t.Payload())
		}
		_, err = cl.EnqueueContext(ctx, t, asynq.Queue(queue))
		return err
	}); err != nil {
		return res, fmt.Errorf("enqueue payment:submit tasks: %w", err)
	}
	if res.BytesAfter, err = usedMemory(ctx, rdb); err != nil {
		return res, err
	}
	res.BytesPerTask = float64(res.BytesAfter-res.BytesBefore) / float64(k)
	return res, nil
}

// usedMemory is Redis's used_memory: the primary's (one server or
// Sentinel), or the sum over a Cluster's primaries.
func usedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var sum int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			n, err := usedMemory(ctx, node)
			mu.Lock()
			sum += n
			mu.Unlock()
			return err
		})
		return sum, err
	}
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	return infoField(info, "used_memory")
}

func infoField(info, name string) (int64, error) {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO: no %s", name)
}

// redisVersion is the server's redis_version.
func redisVersion(ctx context.Context, url string) string {
	conn, err := jobs.ParseRedisURL(url)
	if err != nil {
		return ""
	}
	rdb := conn.NewClient()
	defer rdb.Close()
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

// insertBaseline is what benchInserts measured.
type insertBaseline struct {
	Clients   int     `json:"clients"`
	Inserts   int64   `json:"inserts"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"inserts_per_second"`
	// SynchronousCommit is the server's setting the inserts ran under.
	SynchronousCommit string `json:"synchronous_commit"`
}

// benchInserts runs clients connections, each inserting one row per
// autocommit statement into a scratch (logged, durable) table for d, and
// drops the table. It is the floor cost of one durable write on this server:
// no payd transaction can commit faster than this.
func benchInserts(ctx context.Context, url, runID string, clients int, d time.Duration) (insertBaseline, error) {
	res := insertBaseline{Clients: clients}
	db, err := sql.Open("postgres", url) // the driver store registers
	if err != nil {
		return res, fmt.Errorf("open postgres: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(clients + 1)
	db.SetMaxIdleConns(clients + 1)
	table := "bench_inserts_" + runID
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (
		id bigserial PRIMARY KEY, tenant_id text NOT NULL, amount bigint NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return res, fmt.Errorf("create %s: %w", table, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(dctx, `DROP TABLE IF EXISTS `+table)
	}()
	if err := db.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&res.SynchronousCommit); err != nil {
		return res, fmt.Errorf("show synchronous_commit: %w", err)
	}
	conns := make([]*sql.Conn, clients)
	for i := range conns {
		if conns[i], err = db.Conn(ctx); err != nil {
			return res, fmt.Errorf("connect: %w", err)
		}
		defer conns[i].Close()
	}
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	began := time.Now()
	deadline := began.Add(d)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := c.ExecContext(ctx, `INSERT INTO `+table+` (tenant_id, amount) VALUES ($1, $2)`, "ten_bench", 1250); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(began).Seconds()
	res.Inserts = n.Load()
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Inserts) / res.Seconds
	}
	if firstErr != nil {
		return res, fmt.Errorf("insert into %s: %w", table, firstErr)
	}
	return res, nil
}
