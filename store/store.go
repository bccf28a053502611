// Package store owns PostgreSQL: the schema (embedded goose migrations), every
// SQL statement, and transactions. It is the only package that imports sqlx
// and lib/pq. It converts rows to payment types at its boundary and driver
// errors to payment's sentinel errors. It must not import intake, processor
// or connector.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/payd/payd/payment"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config sizes the connection pool.
type Config struct {
	URL          string
	MaxOpenConns int
	MaxIdleConns int
}

// Store runs queries on a pool or, inside InTx, on one transaction.
type Store struct {
	db    *sqlx.DB
	q     sqlx.ExtContext // preparedQ on db, or on tx inside InTx
	tx    *sqlx.Tx
	stmts *stmtCache
	now   func() time.Time
}

// Open connects and pings. now is the injected clock (UTC is applied here).
func Open(ctx context.Context, cfg Config, now func() time.Time) (*Store, error) {
	db, err := sqlx.Open("postgres", cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if cfg.MaxOpenConns > 0 {
		db.SetMaxOpenConns(cfg.MaxOpenConns)
	}
	if cfg.MaxIdleConns > 0 {
		db.SetMaxIdleConns(cfg.MaxIdleConns)
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("ping postgres: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	stmts := newStmtCache(db)
	return &Store{db: db, q: preparedQ{ExtContext: db, cache: stmts}, stmts: stmts,
		now: func() time.Time { return now().UTC() }}, nil
}

// Close closes the prepared statements and the pool.
func (s *Store) Close() error {
	s.stmts.close()
	return s.db.Close()
}

// DB exposes the pool for health checks and test harnesses.
func (s *Store) DB() *sql.DB { return s.db.DB }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// Ping checks that Postgres answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Migrate applies the embedded migrations under a Postgres advisory lock, so
// several processes starting at once apply each migration exactly once.
func Migrate(ctx context.Context, url string) error {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, mustSub(migrations, "migrations"),
		goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migration provider: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// InTx runs fn on a Store bound to one transaction, committing if fn returns
// nil. Nested calls reuse the outer transaction.
func (s *Store) InTx(ctx context.Context, fn func(*Store) error) error {
	if s.tx != nil {
		return fn(s)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return translate(fmt.Errorf("begin: %w", err))
	}
	in := &Store{db: s.db, q: preparedQ{ExtContext: tx, tx: tx, cache: s.stmts}, tx: tx, stmts: s.stmts, now: s.now}
	if err := fn(in); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return translate(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// ErrUnavailable marks errors where Postgres could not be reached or the
// transaction could not complete; callers answer 503 or retry.
var ErrUnavailable = errors.New("database unavailable")

// translate maps driver errors to payment sentinels, by SQLSTATE code only.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %v", payment.ErrNotFound, err)
	}
	var pqe *pq.Error
	if errors.As(err, &pqe) {
		switch pqe.Code {
		case "23505": // unique_violation
			return &ConflictError{Constraint: pqe.Constraint, Err: err}
		case "23514": // check_violation
			return &CheckError{Constraint: pqe.Constraint, Err: err}
		case "40001", "40P01": // serialization failure, deadlock
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if pqe.Code.Class() == "08" || pqe.Code.Class() == "57" || pqe.Code.Class() == "53" {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	// Connection-level failures (refused, reset, EOF) carry no SQLSTATE.
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// ConflictError is a unique-constraint violation.
type ConflictError struct {
	Constraint string
	Err        error
}

func (e *ConflictError) Error() string { return "conflict on " + e.Constraint }
func (e *ConflictError) Unwrap() error { return payment.ErrConflict }

// CheckError is a CHECK-constraint violation: the schema refused a value.
type CheckError struct {
	Constraint string
	Err        error
}

func (e *CheckError) Error() string { return "check " + e.Constraint + " violated" }
func (e *CheckError) Unwrap() error { return e.Err }
