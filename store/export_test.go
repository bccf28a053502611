package store

import (
	"context"

	"github.com/jmoiron/sqlx"
)

// The lookups' statements, for the plan test (lookup_plan_test.go).
const (
	SessionByID = sessionByID
	PaymentByID = paymentByID
)

// The statement cache, for prepare_test.go.
type StmtCache = stmtCache

func NewStmtCache(db *sqlx.DB) *StmtCache { return newStmtCache(db) }

// Get returns the cached statement of query, preparing it on the pool.
func (c *stmtCache) Get(ctx context.Context, query string) *sqlx.Stmt {
	return c.get(ctx, query, false)
}

// Keep caches st for query as a prepare that raced another does.
func (c *stmtCache) Keep(query string, st *sqlx.Stmt) *sqlx.Stmt { return c.keep(query, st) }
