package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/store"
)

// TestStmtCacheClosesOutsideItsLock reproduces a deadlock the full suite
// hit (TestFlowConcurrentRecomputes hung for 12 minutes, every statement of
// the process waiting on the cache). Two goroutines prepared the same
// query at once; the loser closed its copy while holding the cache's lock.
// database/sql's Close waits for the connection the copy was prepared on,
// and that connection was in a call waiting on a row lock held by a
// transaction whose goroutine was itself waiting for the cache's lock, for
// its next statement.
//
// Here: a transaction holds a row lock; a statement is prepared on a
// connection that then runs a query waiting on that lock; the cache keeps
// that statement as a race's loser (Close must wait); meanwhile the
// transaction's next statement asks the cache for another query. It must
// be answered while the Close waits.
func TestStmtCacheClosesOutsideItsLock(t *testing.T) {
	ctx := context.Background()
	db, err := sqlx.Open("postgres", testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(6)
	if _, err := db.ExecContext(ctx, `CREATE TABLE stmt_cache_lock (id int PRIMARY KEY); INSERT INTO stmt_cache_lock VALUES (1)`); err != nil {
		t.Fatal(err)
	}

	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT id FROM stmt_cache_lock WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	const q = `SELECT id FROM stmt_cache_lock WHERE id = $1`
	c := store.NewStmtCache(db)
	winner := c.Get(ctx, q)
	if winner == nil {
		t.Fatal("the cache prepared nothing")
	}
	loser, err := db.PreparexContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	// database/sql hands out the connection returned last: the one the
	// loser was just prepared on. Its next query waits on the transaction's
	// lock.
	conn, err := db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waiting := make(chan error, 1)
	go func() {
		var id int
		waiting <- conn.QueryRowxContext(ctx, `SELECT id FROM stmt_cache_lock WHERE id = 1 FOR UPDATE`).Scan(&id)
	}()
	awaitLockWait(t, db)

	kept := make(chan *sqlx.Stmt, 1)
	go func() { kept <- c.Keep(q, loser) }()
	select {
	case <-kept:
		t.Fatal("setup: the loser's Close did not wait for its connection; the test would prove nothing")
	case <-time.After(300 * time.Millisecond):
	}

	// the transaction's next statement, through the cache
	next := make(chan *sqlx.Stmt, 1)
	go func() { next <- c.Get(ctx, `SELECT 2`) }()
	answered := false
	select {
	case st := <-next:
		answered = true
		if st == nil {
			t.Error("the cache prepared nothing for the transaction's next statement")
		}
	case <-time.After(5 * time.Second):
		t.Error("the cache's lock was held across a statement's Close: the transaction's next statement waited on it, " +
			"and the Close waits on the transaction's row lock (a deadlock in production)")
	}

	// the transaction ends: the waiting query goes through, the Close ends
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-kept:
		if st != winner {
			t.Error("the race's loser did not get the winner's statement")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loser's Close never ended")
	}
	if !answered {
		<-next // let it end before the database goes
	}
}

// awaitLockWait waits until a backend of the database waits on a lock.
func awaitLockWait(t *testing.T, db *sqlx.DB) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatal("setup: no query waited on the transaction's row lock")
}
