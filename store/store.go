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
	"net/url"
	"strings"
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
	Batch        Batch
}

// Store runs queries on a pool or, inside InTx, on one transaction.
type Store struct {
	db    *sqlx.DB
	q     sqlx.ExtContext // preparedQ on db, or on tx inside InTx
	tx    *sqlx.Tx
	stmts *stmtCache
	now   func() time.Time // the dbClock's Now
	stop  context.CancelFunc
	*groups
}

// groups are the store's batched statements (batch.go), shared by every
// Store derived from one Open.
type groups struct {
	claims  *group[claimReq, claimRes]
	records *group[applyReq, applyRes]
	creates *group[createReq, createRes]
	// payment sessions (payment_session_batch.go)
	sessionCreates *group[sessionCreateReq, createRes]
	sessionStarts  *group[startReq, startRes]
	submitBegins   *group[beginReq, beginRes]
	completes      *group[IdemWrite, struct{}]

	deliveryLoads  *group[string, loadedDelivery]    // webhook_batch.go
	deliveredTries *group[DeliveryTry, deliveredTry] // webhook_batch.go

	waits *paymentWaits   // the LISTEN connection of WaitPayment (payment_wait.go)
	bg    context.Context // ends with Close
}

// Batch sizes the groups: up to maxRows requests share a statement, and up
// to runners statements of a kind run at once (0: the defaults).
type Batch struct {
	MaxRows    int
	Runners    int           // statements of a kind in flight at once (0: 1)
	MaxRunners int           // … when they stall (0: 8)
	Stall      time.Duration // a request waiting this long runs beside stalled statements (0: 5 ms)
	Timeout    time.Duration // bound on one batched statement (0: 15 s)
}

// Open connects and pings. now is the injected host clock (nil: time.Now);
// the store's clock is it corrected to PostgreSQL's (see dbClock).
func Open(ctx context.Context, cfg Config, now func() time.Time) (*Store, error) {
	db, err := sqlx.Open("postgres", withSessionSettings(cfg.URL))
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
	clock := newDBClock(now)
	if err := clock.sync(pctx, db.DB); err != nil {
		db.Close()
		return nil, fmt.Errorf("read postgres clock: %w", err)
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	go clock.run(bg, db.DB)
	stmts := newStmtCache(db)
	st := &Store{db: db, q: preparedQ{ExtContext: db, cache: stmts}, stmts: stmts, now: clock.Now, stop: stop}
	b := cfg.Batch
	if b.MaxRows <= 0 {
		b.MaxRows = 64
	}
	if b.Runners <= 0 {
		b.Runners = 1
	}
	if b.MaxRunners <= 0 {
		b.MaxRunners = 8
	}
	if b.Stall <= 0 {
		b.Stall = 5 * time.Millisecond
	}
	if b.Timeout <= 0 {
		b.Timeout = 15 * time.Second
	}
	st.groups = &groups{
		claims:  newGroup(b, st.claimAttempts),
		records: newGroup(b, st.applyRows),
		creates: newGroup(b, st.createPayments),

		sessionCreates: newGroup(b, st.createSessions),
		sessionStarts:  newGroup(b, st.startSessionPayments),
		submitBegins:   newGroup(b, st.beginSubmits),
		completes:      newGroup(b, st.completeIdempotents),

		deliveryLoads:  newGroup(b, st.loadDeliveries),
		deliveredTries: newGroup(b, st.recordDelivereds),

		waits: &paymentWaits{url: cfg.URL, waiters: map[string][]chan struct{}{}},
		bg:    bg,
	}
	return st, nil
}

// sessionSettings are set on every connection of the pool (unless the URL
// sets them). enable_seqscan = off: every statement of payd reads by key
// through an index, and its hot statements are prepared once and run with
// a cached generic plan; a plan made while a table was still small (a new
// deployment, before autovacuum has analyzed it) would otherwise keep
// scanning the whole table long after it has grown — seen as a payments
// table scanned by every batch, throughput falling by half within a minute.
// With sequential scans priced out, a plan reads by index whatever the
// table's size was when it was made. A statement with no index to use
// still runs (as a sequential scan).
var sessionSettings = map[string]string{"enable_seqscan": "off"}

func withSessionSettings(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		for k, v := range sessionSettings {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for k, v := range sessionSettings { // key=value form
		if !strings.Contains(dsn, k+"=") {
			dsn += " " + k + "=" + v
		}
	}
	return dsn
}

// Close stops the clock's resync, closes the prepared statements and the pool.
func (s *Store) Close() error {
	s.stop()
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
// several processes starting at once apply each migration exactly once. url
// must connect as the role that owns the schema (PAYD_MIGRATE_DATABASE_URL):
// a role without CREATE on schema public is refused with ErrNotOwner before
// anything runs.
//
// Each appRole (the role the app connects as, PAYD_APP_DB_ROLE) is then
// granted exactly what payd needs at run time — SELECT, INSERT, UPDATE,
// DELETE on every table, USAGE and SELECT on every sequence, and the same by
// default on tables and sequences later migrations create — and nothing
// else: it owns nothing, so ALTER, DROP and TRUNCATE are refused (42501),
// CREATE on schema public is revoked from PUBLIC, and the migration history
// (goose_db_version) is read-only to it. The grants are idempotent and run
// after every migrate, so a role added later is caught up by the next one.
func Migrate(ctx context.Context, url string, appRoles ...string) error {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	defer db.Close()
	var user string
	var canCreate bool
	if err := db.QueryRowContext(ctx, `SELECT current_user, has_schema_privilege('public', 'CREATE')`).Scan(&user, &canCreate); err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	if !canCreate {
		return fmt.Errorf("%w: role %q has no CREATE on schema public; run `payd migrate` with "+
			"PAYD_MIGRATE_DATABASE_URL naming the owner role (DATABASE_URL is the app role, which has no DDL rights)", ErrNotOwner, user)
	}
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
		var pqe *pq.Error
		if errors.As(err, &pqe) && pqe.Code == "42501" {
			return fmt.Errorf("%w: role %q: %v; run migrations as the owner role (PAYD_MIGRATE_DATABASE_URL)", ErrNotOwner, user, err)
		}
		return fmt.Errorf("migrate: %w", err)
	}
	for _, role := range appRoles {
		if role == "" || role == user {
			continue
		}
		if err := grantApp(ctx, db, role); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotOwner: migrations were run as a role that may not change the schema.
var ErrNotOwner = errors.New("migrate: not the schema owner")

// grantApp gives role the run-time rights of the app and no DDL rights.
func grantApp(ctx context.Context, db *sql.DB, role string) error {
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: look up app role: %w", err)
	}
	if !exists {
		return fmt.Errorf("migrate: app role %q (PAYD_APP_DB_ROLE) does not exist; create it first (CREATE ROLE %s LOGIN)", role, pq.QuoteIdentifier(role))
	}
	r := pq.QuoteIdentifier(role)
	stmts := []string{
		// PostgreSQL ≤ 14 lets every role create tables in public; the app must not.
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		`GRANT USAGE ON SCHEMA public TO ` + r,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + r,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ` + r,
		`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ` + r,
		`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ` + r,
		// the migration history is the owner's to write
		`REVOKE INSERT, UPDATE, DELETE ON goose_db_version FROM ` + r,
		`REVOKE ALL ON SEQUENCE goose_db_version_id_seq FROM ` + r,
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate: grant to app role %q: %s: %w", role, q, err)
		}
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
	in := &Store{db: s.db, q: preparedQ{ExtContext: tx, tx: tx, cache: s.stmts}, tx: tx, stmts: s.stmts, now: s.now, stop: s.stop, groups: s.groups}
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

// errDeadlock marks a deadlock (also ErrUnavailable): nothing committed.
var errDeadlock = errors.New("deadlock")

// ownedBy reports whether a row of rowTenant may be shown to tenantID (""
// is a worker, which reads any tenant's rows). Lookups by primary key read
// the row by its id alone and check its tenant here rather than in SQL: with
// "AND tenant_id = $2", statistics older than a tenant's first rows make the
// tenant look rare, and the planner then walks that tenant's whole index
// range (the tenant_id-leading list indexes) instead of one primary-key probe.
// A payment session's read took 45–95 ms that way at 1,000 sessions
// (TestLookupsByIDUsePrimaryKey).
func ownedBy(tenantID, rowTenant string) bool { return tenantID == "" || tenantID == rowTenant }

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
			return &conflictError{constraint: pqe.Constraint}
		case "23514": // check_violation
			return &checkError{constraint: pqe.Constraint, err: err}
		case "40P01": // deadlock: retry
			return fmt.Errorf("%w: %w: %v", ErrUnavailable, errDeadlock, err)
		case "40001": // serialization failure: retry
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

// constraintErrors are the constraints whose violation is a domain error:
// callers match payment's error, never a constraint's name.
var constraintErrors = map[string]error{
	"payments_tenant_id_idempotency_key_key": payment.ErrBusinessKeyTaken,
	"invoice_balances":                       payment.ErrInvoiceOverApplied,
}

// conflictError is a unique-constraint violation: payment.ErrConflict, and
// its constraint's domain error if it has one.
type conflictError struct{ constraint string }

func (e *conflictError) Error() string   { return "conflict on " + e.constraint }
func (e *conflictError) Unwrap() []error { return withDomainError(e.constraint, payment.ErrConflict) }

// checkError is a CHECK-constraint violation: the schema refused a value.
// It wraps the driver's error, and its constraint's domain error if it has
// one.
type checkError struct {
	constraint string
	err        error
}

func (e *checkError) Error() string   { return "check " + e.constraint + " violated" }
func (e *checkError) Unwrap() []error { return withDomainError(e.constraint, e.err) }

func withDomainError(constraint string, err error) []error {
	if d, ok := constraintErrors[constraint]; ok {
		return []error{d, err}
	}
	return []error{err}
}
