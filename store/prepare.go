package store

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// maxPrepared bounds the statement cache. payd's statements are constant
// strings (list filters add a handful of variants), far fewer than this; a
// query past the bound runs unprepared rather than growing the cache.
const maxPrepared = 512

// stmtCache holds one server-side prepared statement per query text, shared
// by the pool. lib/pq runs an unprepared parameterised statement in two round
// trips (parse and describe, then bind and execute), and Postgres parses and
// plans it every time; a prepared one is a single round trip, parsed once per
// connection, and its plan is cached by the server. database/sql prepares it
// lazily on each connection that runs it and re-prepares after a connection
// is replaced (a restarted Postgres), so callers see no difference.
type stmtCache struct {
	db      *sqlx.DB
	mu      sync.Mutex
	m       map[string]*sqlx.Stmt
	pending map[string]bool // being prepared in the background
	closed  bool
}

func newStmtCache(db *sqlx.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sqlx.Stmt), pending: make(map[string]bool)}
}

// get returns the prepared statement for query, or nil when the caller must
// run it unprepared this time: the cache is full, Postgres refused the
// prepare (the caller then gets Postgres' own error), or the caller holds a
// transaction. A prepare takes a connection from the pool, and a transaction
// waiting for one while every connection is held by such transactions would
// deadlock the pool; so inside a transaction the statement is prepared in the
// background and used from the next execution on.
func (c *stmtCache) get(ctx context.Context, query string, inTx bool) *sqlx.Stmt {
	c.mu.Lock()
	st, ok := c.m[query]
	busy := c.pending[query] || len(c.m)+len(c.pending) >= maxPrepared
	if !ok && !busy && inTx {
		c.pending[query] = true
	}
	c.mu.Unlock()
	switch {
	case ok:
		return st
	case busy:
		return nil
	case inTx:
		go c.prepare(context.WithoutCancel(ctx), query)
		return nil
	}
	return c.prepare(ctx, query)
}

func (c *stmtCache) prepare(ctx context.Context, query string) *sqlx.Stmt {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := c.db.PreparexContext(ctx, query)
	if err != nil {
		c.mu.Lock()
		delete(c.pending, query)
		c.mu.Unlock()
		return nil
	}
	return c.keep(query, st)
}

// keep caches st, prepared for query, and returns the statement to use: st,
// or the one another goroutine cached first (st is then closed), or nil
// once the cache is closed.
//
// A statement is closed only after c.mu is released. database/sql's Close
// waits for every connection the statement was prepared on to finish the
// call it is in, and such a call can wait on a row lock held by a
// transaction whose goroutine is itself waiting for c.mu (its next
// statement): closing under c.mu deadlocked the process's statements —
// every query waiting for the cache, that transaction never committing
// (TestStmtCacheClosesOutsideItsLock).
func (c *stmtCache) keep(query string, st *sqlx.Stmt) *sqlx.Stmt {
	c.mu.Lock()
	delete(c.pending, query)
	prev, lost := c.m[query] // another goroutine cached it first
	closed := c.closed
	if !lost && !closed {
		c.m[query] = st
	}
	c.mu.Unlock()
	switch {
	case lost:
		_ = st.Close()
		return prev
	case closed:
		_ = st.Close()
		return nil
	}
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	sts := c.m
	c.m = make(map[string]*sqlx.Stmt)
	c.mu.Unlock()
	// outside c.mu, as in keep
	for _, st := range sts {
		_ = st.Close()
	}
}

// preparedQ runs every query through the statement cache, on the pool or, if
// tx is set, on that transaction. It implements sqlx.ExtContext, so the
// store's SQL is written as if it ran on a plain *sqlx.DB or *sqlx.Tx.
type preparedQ struct {
	sqlx.ExtContext // the pool or tx: fallback, DriverName, Rebind, BindNamed
	tx              *sqlx.Tx
	cache           *stmtCache
}

func (p preparedQ) stmt(ctx context.Context, query string) *sqlx.Stmt {
	st := p.cache.get(ctx, query, p.tx != nil)
	if st == nil || p.tx == nil {
		return st
	}
	return p.tx.StmtxContext(ctx, st)
}

func (p preparedQ) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.ExtContext.ExecContext(ctx, query, args...)
}

func (p preparedQ) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.ExtContext.QueryContext(ctx, query, args...)
}

func (p preparedQ) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryxContext(ctx, args...)
	}
	return p.ExtContext.QueryxContext(ctx, query, args...)
}

func (p preparedQ) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryRowxContext(ctx, args...)
	}
	return p.ExtContext.QueryRowxContext(ctx, query, args...)
}
