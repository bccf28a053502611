// Package testenv gives tests isolated PostgreSQL databases and Redis
// databases on the private servers started by scripts/test.sh (`make test`).
//
// It is for tests only. It never skips: a test that needs a server and finds
// none fails, telling the developer to run `make test`.
//
// Environment (written by scripts/services.sh into <run dir>/env):
//
//	PAYD_TEST_DATABASE_URL  postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
//	PAYD_TEST_REDIS_URL     redis://127.0.0.1:PORT/0
//
// PAYD_TEST_DATABASE_URL must be able to create databases and roles: each
// test database is created (and migrated) by it, and PostgresURLs/AppURL
// return the same database as AppRole, the DML-only role payd runs as.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"
)

const (
	// EnvDatabaseURL names the admin URL of the test PostgreSQL server.
	EnvDatabaseURL = "PAYD_TEST_DATABASE_URL"
	// EnvRedisURL names the URL (DB 0) of the test Redis server.
	EnvRedisURL = "PAYD_TEST_REDIS_URL"

	// DBPrefix starts the name of every database PostgresURL creates.
	DBPrefix = "payd_t_"

	redisCounterKey = "payd:test:db"
	redisLeasePfx   = "payd:test:lease:"
	redisDBs        = 255 // DB numbers 1..255 are handed out; 0 holds the counter
	redisLeaseTTL   = 2 * time.Hour
	opTimeout       = 30 * time.Second
)

const runMakeTest = "run the tests with `make test` (or scripts/test.sh [packages]), " +
	"which starts private PostgreSQL and Redis servers and exports it; " +
	"for a dev shell: source \"$(scripts/services.sh up)\""

// PostgresURL creates a fresh, empty database payd_t_<random hex> on the
// server named by PAYD_TEST_DATABASE_URL, drops it (WITH (FORCE)) when the
// test and its subtests finish, and returns its URL (sslmode=disable).
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDatabaseURL)
	if base == "" {
		t.Fatalf("testenv: %s is not set: %s", EnvDatabaseURL, runMakeTest)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: bad %s %q: %v", EnvDatabaseURL, base, err)
	}

	admin, err := adminDB(base)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL at %s: %v (%s)", redactURL(u), err, runMakeTest)
	}

	name := DBPrefix + randomHex(t, 8)
	quoted := pq.QuoteIdentifier(name)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := retryInUse(ctx, func() error {
		_, err := admin.ExecContext(ctx, "CREATE DATABASE "+quoted)
		return err
	}); err != nil {
		t.Fatalf("testenv: CREATE DATABASE %s: %v", quoted, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoted+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: DROP DATABASE %s: %v", quoted, err)
		}
	})

	nu := *u
	nu.Path = "/" + name
	nu.RawPath = ""
	q := nu.Query()
	q.Set("sslmode", "disable")
	nu.RawQuery = q.Encode()
	return nu.String()
}

// Admin connections are shared by every test in the process, one small pool
// per server URL, so parallel tests do not eat max_connections.
var (
	adminMu sync.Mutex
	admins  = map[string]*sqlx.DB{}
)

func adminDB(base string) (*sqlx.DB, error) {
	adminMu.Lock()
	defer adminMu.Unlock()
	if db, ok := admins[base]; ok {
		return db, nil
	}
	db, err := sqlx.Open("postgres", base)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(30 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	admins[base] = db
	return db, nil
}

// retryInUse retries CREATE DATABASE while the template database is busy
// (SQLSTATE 55006: another session is connected to template1).
func retryInUse(ctx context.Context, f func() error) error {
	for {
		err := f()
		var pe *pq.Error
		if err == nil || !errors.As(err, &pe) || pe.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RedisURL allocates a Redis database number 1..255 that no other running
// test (in this or any other test process on the same server) holds, empties
// it, empties it again when the test finishes, and returns
// redis://host:port/N.
func RedisURL(t testing.TB) string {
	t.Helper()
	u, _, db := redisAlloc(t)
	nu := *u
	nu.Path = "/" + strconv.Itoa(db)
	nu.RawPath = ""
	return nu.String()
}

// RedisAddrDB is RedisURL for callers that want go-redis/asynq options:
// it returns the server address (host:port) and the allocated DB number.
func RedisAddrDB(t testing.TB) (addr string, db int) {
	t.Helper()
	_, opt, db := redisAlloc(t)
	return opt.Addr, db
}

func redisAlloc(t testing.TB) (*url.URL, *redis.Options, int) {
	t.Helper()
	base := os.Getenv(EnvRedisURL)
	if base == "" {
		t.Fatalf("testenv: %s is not set: %s", EnvRedisURL, runMakeTest)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: bad %s %q: %v", EnvRedisURL, base, err)
	}
	opt, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("testenv: bad %s %q: %v", EnvRedisURL, base, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()

	o0 := *opt
	o0.DB = 0
	c0 := redis.NewClient(&o0)
	defer c0.Close()

	// INCR hands out numbers round robin; the lease (SET NX) makes a number
	// unique among live holders even when the counter wraps past 255.
	token := randomHex(t, 8)
	db := 0
	for i := 0; i < 2*redisDBs; i++ {
		n, err := c0.Incr(ctx, redisCounterKey).Result()
		if err != nil {
			t.Fatalf("testenv: Redis at %s: INCR %s: %v (%s)", redactURL(u), redisCounterKey, err, runMakeTest)
		}
		cand := int((n-1)%redisDBs) + 1
		ok, err := c0.SetNX(ctx, redisLeasePfx+strconv.Itoa(cand), token, redisLeaseTTL).Result()
		if err != nil {
			t.Fatalf("testenv: Redis lease: %v", err)
		}
		if ok {
			db = cand
			break
		}
	}
	if db == 0 {
		t.Fatalf("testenv: all %d Redis test databases are in use", redisDBs)
	}

	flush := func(ctx context.Context) error {
		o := *opt
		o.DB = db
		c := redis.NewClient(&o)
		defer c.Close()
		return c.FlushDB(ctx).Err()
	}
	if err := flush(ctx); err != nil {
		releaseLease(ctx, c0, db, token)
		t.Fatalf("testenv: FLUSHDB on Redis db %d: %v", db, err)
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := flush(ctx); err != nil {
			t.Errorf("testenv: FLUSHDB on Redis db %d: %v", db, err)
		}
		o := *opt
		o.DB = 0
		c := redis.NewClient(&o)
		defer c.Close()
		releaseLease(ctx, c, db, token)
	})
	return u, opt, db
}

// releaseLease deletes the lease on db if it is still ours.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

func releaseLease(ctx context.Context, c *redis.Client, db int, token string) {
	_ = releaseScript.Run(ctx, c, []string{redisLeasePfx + strconv.Itoa(db)}, token).Err()
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random: %v", err)
	}
	return hex.EncodeToString(b)
}

func redactURL(u *url.URL) string {
	return fmt.Sprintf("%s://%s", u.Scheme, u.Host)
}

// AppRole is the role payd's components connect as in tests, as in
// production: it owns nothing, and `store.Migrate(ctx, ownerURL, AppRole)`
// grants it DML rights only. scripts/services.sh creates it; AppURL creates
// it too when it is missing, so any server works.
const AppRole = "payd_app"

// PostgresURLs is PostgresURL plus the same database's URL as AppRole: run
// migrations on owner (with AppRole as the role to grant) and payd on app.
func PostgresURLs(t testing.TB) (owner, app string) {
	t.Helper()
	owner = PostgresURL(t)
	return owner, AppURL(t, owner)
}

var appRoleOnce sync.Map // admin URL → struct{}: AppRole exists on that server

// AppURL returns dbURL with its user replaced by AppRole, creating the role
// (LOGIN, no other attribute) on the test server if it does not exist.
func AppURL(t testing.TB, dbURL string) string {
	t.Helper()
	base := os.Getenv(EnvDatabaseURL)
	if base == "" {
		t.Fatalf("testenv: %s is not set: %s", EnvDatabaseURL, runMakeTest)
	}
	if _, ok := appRoleOnce.Load(base); !ok {
		admin, err := adminDB(base)
		if err != nil {
			t.Fatalf("testenv: PostgreSQL: %v (%s)", err, runMakeTest)
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		// Several test binaries may race to create it: both errors mean it exists.
		_, err = admin.ExecContext(ctx, `DO $$ BEGIN
			IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '`+AppRole+`') THEN
				CREATE ROLE `+AppRole+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
			END IF;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
		END $$`)
		if err != nil {
			t.Fatalf("testenv: create role %s: %v", AppRole, err)
		}
		appRoleOnce.Store(base, struct{}{})
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("testenv: bad database URL: %v", err)
	}
	u.User = url.User(AppRole)
	return u.String()
}
