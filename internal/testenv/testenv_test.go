package testenv_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/payd/payd/internal/testenv"
)

func TestPostgresURL(t *testing.T) {
	var dbName string
	t.Run("fresh database", func(t *testing.T) {
		dsn := testenv.PostgresURL(t)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		dbName = strings.TrimPrefix(u.Path, "/")
		if !strings.HasPrefix(dbName, testenv.DBPrefix) {
			t.Fatalf("database %q lacks prefix %q", dbName, testenv.DBPrefix)
		}
		if got := u.Query().Get("sslmode"); got != "disable" {
			t.Fatalf("sslmode = %q, want disable", got)
		}
		db, err := sqlx.Connect("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()

		var n int
		if err := db.Get(&n, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("fresh database has %d tables", n)
		}
		db.MustExec(`CREATE TABLE things (id bigint PRIMARY KEY, name text NOT NULL)`)
		db.MustExec(`INSERT INTO things VALUES (1, 'one'), (2, 'two')`)
		var names []string
		if err := db.Select(&names, `SELECT name FROM things ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(names) != "[one two]" {
			t.Fatalf("names = %v", names)
		}
		// The connection stays open: the cleanup must drop it WITH (FORCE).
	})

	// The subtest's cleanup has run: its database must be gone.
	admin := testenv.PostgresURL(t) // any database on the same server
	db, err := sqlx.Connect("postgres", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var exists bool
	if err := db.Get(&exists, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, dbName); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after the test finished", dbName)
	}
}

func TestPostgresURLParallelDistinct(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := 0; i < 8; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			dsn := testenv.PostgresURL(t)
			mu.Lock()
			defer mu.Unlock()
			if seen[dsn] {
				t.Errorf("duplicate database %s", dsn)
			}
			seen[dsn] = true
		})
	}
}

func TestRedisURL(t *testing.T) {
	ctx := context.Background()
	var rurl string
	t.Run("fresh db", func(t *testing.T) {
		rurl = testenv.RedisURL(t)
		opt, err := redis.ParseURL(rurl)
		if err != nil {
			t.Fatal(err)
		}
		if opt.DB < 1 || opt.DB > 255 {
			t.Fatalf("db = %d, want 1..255", opt.DB)
		}
		c := redis.NewClient(opt)
		defer c.Close()
		if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
			t.Fatalf("fresh db size = %d, %v", n, err)
		}
		if err := c.Set(ctx, "payd:hello", "world", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := c.Get(ctx, "payd:hello").Result(); err != nil || v != "world" {
			t.Fatalf("GET = %q, %v", v, err)
		}
	})

	// After the subtest, its db was flushed.
	opt, err := redis.ParseURL(rurl)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if n, err := c.Exists(ctx, "payd:hello").Result(); err != nil || n != 0 {
		t.Fatalf("key survived cleanup: exists=%d err=%v", n, err)
	}
}

func TestRedisAddrDBDistinctWhileHeld(t *testing.T) {
	ctx := context.Background()
	held := map[int]bool{}
	for i := 0; i < 20; i++ {
		addr, db := testenv.RedisAddrDB(t) // all 20 held until the test ends
		if addr == "" || db < 1 || db > 255 {
			t.Fatalf("got %q/%d", addr, db)
		}
		if held[db] {
			t.Fatalf("db %d handed out twice while held", db)
		}
		held[db] = true
		c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
		err := c.Set(ctx, "k", db, 0).Err()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}
