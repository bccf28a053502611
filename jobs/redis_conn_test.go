package jobs_test

// In package jobs_test: testenv (the test servers) imports jobs.

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/jobs"
)

// TestRedisConnServesAsynq: a RedisConn is what asynq and go-redis clients
// are built from; on one real server a task enqueued through a client made
// by NewClient is seen by an inspector made from the RedisConn itself (the
// Sentinel and Cluster forms run against real ones in cmd/payd,
// redis_failover_test.go).
func TestRedisConnServesAsynq(t *testing.T) {
	t.Parallel()
	c, err := jobs.ParseRedisURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := c.WithPoolSize(4).NewClient()
	defer rdb.Close()
	if _, ok := rdb.(*redis.Client); !ok {
		t.Fatalf("NewClient of a redis:// URL is a %T, want *redis.Client", rdb)
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	cl := asynq.NewClientFromRedisClient(rdb)
	task, err := jobs.NewSweepTask()
	if err != nil {
		t.Fatal(err)
	}
	info, err := cl.Enqueue(task)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	insp := asynq.NewInspector(c)
	defer insp.Close()
	got, err := insp.GetTaskInfo(info.Queue, info.ID)
	if err != nil {
		t.Fatalf("the inspector built from the RedisConn does not see the task: %v", err)
	}
	if got.Type != jobs.TypeSweep {
		t.Errorf("task type %q, want %q", got.Type, jobs.TypeSweep)
	}
}
