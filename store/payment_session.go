package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Payment sessions (seed 003): the session row, its submit lock, the
// payment a submit records, expiry, and the session's audit trail. The
// session follows its payment's terminal transitions inside the payment's
// own statement (applyRows, payment_change.go).

// SurfaceSessions is the surface of payments that sessions record.
const SurfaceSessions = "sessions"

// ErrSessionBusy: another submit of the session is exchanging its
// session_data or its payment is still running (the API's 429).
var ErrSessionBusy = errors.New("a submit of this session is in flight")

const sessionColumns = `id, tenant_id, status, amount, currency, reference, description, display_name, locale,
	success_url, failure_url, enabled_methods, request, token, COALESCE(invoice_id, '') AS invoice_id, expires_on,
	retry_limit, attempts_used, COALESCE(payment_id, '') AS payment_id,
	(submit_lock_until IS NOT NULL AND submit_lock_until > now()) AS submit_locked,
	last_error_code, last_error_msg, next_at, step_seq, created_by, created_at, updated_at, completed_at, expired_at`

// sessionByID reads one session by its id alone; the caller checks its
// tenant (ownedBy).
const sessionByID = `SELECT ` + sessionColumns + ` FROM payment_sessions WHERE id = $1`

type sessionRow struct {
	ID             string         `db:"id"`
	TenantID       string         `db:"tenant_id"`
	Status         string         `db:"status"`
	Amount         int64          `db:"amount"`
	Currency       string         `db:"currency"`
	Reference      string         `db:"reference"`
	Description    string         `db:"description"`
	DisplayName    string         `db:"display_name"`
	Locale         string         `db:"locale"`
	SuccessURL     string         `db:"success_url"`
	FailureURL     string         `db:"failure_url"`
	EnabledMethods pq.StringArray `db:"enabled_methods"`
	Request        []byte         `db:"request"`
	Token          string         `db:"token"`
	InvoiceID      string         `db:"invoice_id"`
	ExpiresOn      time.Time      `db:"expires_on"`
	RetryLimit     int            `db:"retry_limit"`
	AttemptsUsed   int            `db:"attempts_used"`
	PaymentID      string         `db:"payment_id"`
	SubmitLocked   bool           `db:"submit_locked"`
	LastErrorCode  string         `db:"last_error_code"`
	LastErrorMsg   string         `db:"last_error_msg"`
	NextAt         sql.NullTime   `db:"next_at"`
	StepSeq        int            `db:"step_seq"`
	CreatedBy      string         `db:"created_by"`
	CreatedAt      time.Time      `db:"created_at"`
	UpdatedAt      time.Time      `db:"updated_at"`
	CompletedAt    sql.NullTime   `db:"completed_at"`
	ExpiredAt      sql.NullTime   `db:"expired_at"`
}

func (r sessionRow) toSession() payment.Session {
	return payment.Session{ID: r.ID, TenantID: r.TenantID, Status: payment.SessionStatus(r.Status),
		Amount: payment.Money{Minor: r.Amount, Currency: r.Currency}, Reference: r.Reference, Description: r.Description,
		DisplayName: r.DisplayName, Locale: r.Locale, SuccessURL: r.SuccessURL, FailureURL: r.FailureURL,
		EnabledMethods: []string(r.EnabledMethods), Request: r.Request, Token: r.Token, InvoiceID: r.InvoiceID,
		ExpiresOn: r.ExpiresOn.UTC(), RetryLimit: r.RetryLimit, AttemptsUsed: r.AttemptsUsed, PaymentID: r.PaymentID,
		SubmitLocked: r.SubmitLocked, LastErrorCode: r.LastErrorCode, LastErrorMsg: r.LastErrorMsg, NextAt: tp(r.NextAt),
		StepSeq: r.StepSeq, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		CompletedAt: tp(r.CompletedAt), ExpiredAt: tp(r.ExpiredAt)}
}

// NewSession is what intake records for a new session.
type NewSession struct {
	TenantID       string
	Amount         payment.Money
	Reference      string
	Description    string
	DisplayName    string
	Locale         string
	SuccessURL     string
	FailureURL     string
	EnabledMethods []string
	Request        []byte // JSON object
	InvoiceID      string
	ExpiresOn      time.Time
	RetryLimit     int
	Actor          string
}

// SessionSecretHash is how a session secret is kept: its SHA-256.
func SessionSecretHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateSession records an ACTIVE session with its creation audit row and
// its expiry step (next_at = expires_on, step_seq 1). It makes the token
// (pst_ and 128 random bits) and the secret (pss_ and 256 random bits) and
// returns the secret, which is stored only as its hash: the caller shows it
// once. An invoice named must be the tenant's, in the session's currency
// and not void (payment.ErrNotFound otherwise).
func (s *Store) CreateSession(ctx context.Context, ns NewSession) (payment.Session, string, error) {
	res, err := s.CreateSessionWith(ctx, SessionCreate{NewSession: ns})
	if err != nil {
		return payment.Session{}, "", err
	}
	if res.Outcome == InvoiceRefused {
		return payment.Session{}, "", fmt.Errorf("session invoice %s: %w", ns.InvoiceID, payment.ErrNotFound)
	}
	return res.Session, res.Secret, nil
}

// GetSession loads a tenant's session; another tenant's is
// payment.ErrNotFound. An empty tenantID loads any tenant's (workers).
func (s *Store) GetSession(ctx context.Context, tenantID, id string) (payment.Session, error) {
	var r sessionRow
	err := s.q.QueryRowxContext(ctx, sessionByID, id).StructScan(&r)
	if err == nil && !ownedBy(tenantID, r.TenantID) {
		err = sql.ErrNoRows
	}
	if err != nil {
		return payment.Session{}, translate(fmt.Errorf("load session %s: %w", id, err))
	}
	return r.toSession(), nil
}

// SessionByToken is the hosted payment page's lookup (a stable entry point
// for the page): the session whose payment_session_token is token, only
// when secret is its payment_session_secret. The secret's hash is compared
// in constant time; an unknown token and a wrong secret are both
// payment.ErrNotFound, so the page's routes answer them alike (404).
func (s *Store) SessionByToken(ctx context.Context, token, secret string) (payment.Session, error) {
	var r struct {
		sessionRow
		SecretHash []byte `db:"secret_hash"`
	}
	err := s.q.QueryRowxContext(ctx, `SELECT `+sessionColumns+`, secret_hash FROM payment_sessions WHERE token = $1`,
		token).StructScan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		// compare anyway, so that an unknown token costs what a known one does
		subtle.ConstantTimeCompare(SessionSecretHash(secret), make([]byte, 32))
		return payment.Session{}, fmt.Errorf("session by token: %w", payment.ErrNotFound)
	}
	if err != nil {
		return payment.Session{}, translate(fmt.Errorf("session by token: %w", err))
	}
	if secret == "" || subtle.ConstantTimeCompare(SessionSecretHash(secret), r.SecretHash) != 1 {
		return payment.Session{}, fmt.Errorf("session by token: %w", payment.ErrNotFound)
	}
	return r.sessionRow.toSession(), nil
}

// SessionRefusal says why a session takes no submit now.
type SessionRefusal string

const (
	SessionOK         SessionRefusal = ""
	SessionIsBusy     SessionRefusal = "busy"      // another submit is in flight, or its payment still runs
	SessionIsComplete SessionRefusal = "completed" // it paid
	SessionIsExpired  SessionRefusal = "expired"   // past expires_on, or expired
	SessionNoRetries  SessionRefusal = "exhausted" // its payments failed as often as customer_retry allows
	SessionIsCanceled SessionRefusal = "canceled"  // the merchant canceled it
	// SessionNotCancelable: finished, past expires_on, or its payment is
	// running (CancelSession)
	SessionNotCancelable SessionRefusal = "not_cancelable"
)

// LockSessionSubmit takes the session's submit lock until `until`, so
// that one submit at a time exchanges session_data with the gateway
// (outside any transaction). It takes it only from a session that takes a
// submit: ACTIVE, or FAILED with retries left, not expired, not locked by
// another submit. It returns the session and SessionOK, or the reason it
// takes none; another tenant's session is payment.ErrNotFound.
func (s *Store) LockSessionSubmit(ctx context.Context, tenantID, id string, until time.Time) (payment.Session, SessionRefusal, error) {
	st, err := s.BeginSubmit(ctx, tenantID, id, nil, nil, until)
	return st.Session, st.Refusal, err
}

// UnlockSessionSubmit gives back a submit lock taken until `until` (a
// submit whose session_data was refused records nothing).
func (s *Store) UnlockSessionSubmit(ctx context.Context, id string, until time.Time) error {
	_, err := s.q.ExecContext(ctx, `UPDATE payment_sessions SET submit_lock_until = NULL
		WHERE id = $1 AND submit_lock_until = $2`, id, until)
	return translate(err)
}

// SessionPayment is a submit's payment: the one-time token the gateway
// exchanged session_data for, never session_data itself.
type SessionPayment struct {
	Session   payment.Session // as LockSessionSubmit returned it
	LockUntil time.Time       // the lock LockSessionSubmit took
	Method    payment.Method
	Token     string // the gateway's one-time payment token
	Reference string
	Actor     string
	// Idem, if set, marks the Idempotency-Key in flight (its answer is
	// stored by CompleteIdempotent once the submit has waited for the
	// outcome); a duplicate meanwhile is 409.
	Idem      *IdemKey
	IdemFP    []byte
	IdemUntil time.Time
}

// StartSessionPayment records a submit, in one transaction: a new PENDING
// payment tied to the session (next step create, the same jobs as every
// payment) with its creation audit row and, for a session that settles an
// invoice, its line (the amount reserved on the invoice); the session
// ACTIVE or FAILED → PROCESSING with the payment, one more attempt used,
// its lock released, and its audit row. It is guarded on the session still
// holding this submit's lock: payment.ErrStale otherwise (expired
// meanwhile). The payment's create step is the caller's to enqueue.
func (s *Store) StartSessionPayment(ctx context.Context, sp SessionPayment) (payment.Payment, error) {
	if sp.Session.InvoiceID == "" {
		return s.startSessionPayment(ctx, sp)
	}
	sess := sp.Session
	payID := NewID(payment.PrefixPayment)
	var pay payment.Payment
	err := s.InTx(ctx, func(tx *Store) error {
		now := tx.now().Truncate(time.Microsecond)
		var from string
		err := tx.q.QueryRowxContext(ctx, `SELECT status FROM payment_sessions
			WHERE id = $1 AND status IN ('ACTIVE', 'FAILED') AND submit_lock_until = $2 AND expires_on > $3
			  AND attempts_used < retry_limit FOR UPDATE`, sess.ID, sp.LockUntil, now).Scan(&from)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("start payment of session %s: %w", sess.ID, payment.ErrStale)
		}
		if err != nil {
			return translate(fmt.Errorf("start payment of session %s: %w", sess.ID, err))
		}
		var invoice any
		if sess.InvoiceID != "" {
			invoice = sess.InvoiceID
		}
		m := map[string]string{"payment_session_id": sess.ID}
		if sp.Reference != "" {
			m["reference"] = sp.Reference // the submit's own reference
		}
		metaJSON, _ := json.Marshal(m)
		meta := string(metaJSON)
		if _, err := tx.q.ExecContext(ctx, `
			WITH p AS (
				INSERT INTO payments (id, tenant_id, surface, amount, currency, method, payment_method_id,
					destination_type, destination_id, invoice_id, process_payment, track_attempts, status, next_step,
					next_step_at, step_seq, metadata, created_by, updated_by, created_at, updated_at, session_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, 'SESSION', $8, $9, true, true, 'PENDING', 'create', $10, 1, $11, $12, $12,
					$10, $10, $8)
				RETURNING id, tenant_id, created_by, created_at)
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, NULL, 'PENDING', 'created by a payment session submit', 0, created_by, created_at FROM p`,
			payID, sess.TenantID, SurfaceSessions, sess.Amount.Minor, sess.Amount.Currency, string(sp.Method), sp.Token,
			sess.ID, invoice, now, meta, sp.Actor); err != nil {
			return translate(fmt.Errorf("insert session payment: %w", err))
		}
		if sess.InvoiceID != "" {
			if err := tx.reserveSessionLine(ctx, payID, sess, now); err != nil {
				return err
			}
		}
		if _, err := tx.q.ExecContext(ctx, `
			WITH ps AS (
				UPDATE payment_sessions SET status = 'PROCESSING', payment_id = $2, attempts_used = attempts_used + 1,
					submit_lock_until = NULL, last_error_code = '', last_error_msg = '', updated_at = $3
				WHERE id = $1 RETURNING id, tenant_id)
			INSERT INTO payment_session_events (session_id, tenant_id, payment_id, from_status, to_status, reason, actor, created_at)
			SELECT id, tenant_id, $2, $4, 'PROCESSING', $5, $6, $3 FROM ps`,
			sess.ID, payID, now, from, "submitted ("+string(sp.Method)+")", sp.Actor); err != nil {
			return translate(fmt.Errorf("session %s to processing: %w", sess.ID, err))
		}
		if sp.Idem != nil {
			if err := tx.LockIdempotent(ctx, *sp.Idem); err != nil {
				return err
			}
			if _, err := tx.q.ExecContext(ctx, `
				INSERT INTO idempotency_keys (tenant_id, route, key, fingerprint, state, owner, locked_until, expires_at, created_at)
				VALUES ($1, $2, $3, $4, 'in_flight', $5, $6, $6, $7)
				ON CONFLICT (tenant_id, route, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'in_flight',
					owner = EXCLUDED.owner, locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
					created_at = EXCLUDED.created_at, response_code = NULL, response_body = NULL
				WHERE (idempotency_keys.expires_at IS NOT NULL AND idempotency_keys.expires_at <= $7)
				   OR (idempotency_keys.state <> 'done' AND idempotency_keys.locked_until <= $7)`,
				sp.Idem.TenantID, sp.Idem.Route, sp.Idem.Key, sp.IdemFP, payID, sp.IdemUntil, now); err != nil {
				return translate(fmt.Errorf("mark idempotency key in flight: %w", err))
			}
		}
		p, err := tx.PaymentHead(ctx, payID)
		pay = p
		return err
	})
	return pay, err
}

// startSessionPayment is StartSessionPayment for a session that settles no
// invoice: one statement shared with concurrent submits
// (startSessionPayments). The payment is returned as stored.
func (s *Store) startSessionPayment(ctx context.Context, sp SessionPayment) (payment.Payment, error) {
	sess := sp.Session
	now := s.now().Truncate(time.Microsecond)
	meta := map[string]string{"payment_session_id": sess.ID}
	if sp.Reference != "" {
		meta["reference"] = sp.Reference // the submit's own reference
	}
	p := payment.Payment{ID: NewID(payment.PrefixPayment), TenantID: sess.TenantID, Surface: SurfaceSessions,
		Amount: sess.Amount, Method: sp.Method, PaymentMethodID: sp.Token, DestinationType: "SESSION",
		DestinationID: sess.ID, ProcessPayment: true, TrackAttempts: true, Status: payment.StatusPending,
		NextStep: payment.StepCreate, NextStepAt: &now, StepSeq: 1, Metadata: meta, CreatedBy: sp.Actor,
		UpdatedBy: sp.Actor, CreatedAt: now, UpdatedAt: now, SessionID: sess.ID}
	req := startReq{p: p, lockUntil: sp.LockUntil}
	if sp.Idem != nil {
		req.idem, req.idemFP, req.idemUntil = sp.Idem, sp.IdemFP, sp.IdemUntil
	}
	res, err := one(ctx, s, s.sessionStarts, (*Store).startSessionPayments, req)
	switch {
	case err != nil:
		return payment.Payment{}, translate(fmt.Errorf("start payment of session %s: %w", sess.ID, err))
	case !res.held:
		return payment.Payment{}, fmt.Errorf("start payment of session %s: %w", sess.ID, payment.ErrStale)
	case !res.got:
		return payment.Payment{}, ErrIdemInFlight
	}
	return p, nil
}

// reserveSessionLine reserves a session payment's whole amount on the
// session's invoice, under the invoice's row lock, as CreatePayment does
// (the invoice's CHECK refuses an over-application).
func (s *Store) reserveSessionLine(ctx context.Context, payID string, sess payment.Session, now time.Time) error {
	res, err := s.q.ExecContext(ctx, `UPDATE invoices SET amount_reserved = amount_reserved + $2
		WHERE id = $1 AND tenant_id = $3 AND currency = $4 AND voided_at IS NULL`,
		sess.InvoiceID, sess.Amount.Minor, sess.TenantID, sess.Amount.Currency)
	if err != nil {
		err = translate(err)
		if errors.Is(err, payment.ErrInvoiceOverApplied) {
			return &payment.InvoiceOverAppliedError{InvoiceID: sess.InvoiceID}
		}
		return fmt.Errorf("reserve on invoice %s: %w", sess.InvoiceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("session invoice %s: %w", sess.InvoiceID, payment.ErrNotFound)
	}
	_, err = s.q.ExecContext(ctx, `INSERT INTO payment_applications (id, tenant_id, payment_id, invoice_id, applied_amount,
			payment_amount, applied_currency, remittance_label, state, released_amount, created_at)
		VALUES ($1, $2, $3, $4, $5, $5, $6, 'Invoice', 'reserved', 0, $7)`,
		NewID(payment.PrefixLine), sess.TenantID, payID, sess.InvoiceID, sess.Amount.Minor, sess.Amount.Currency, now)
	return translate(err)
}

// CompleteIdempotent stores the answer of a request whose Idempotency-Key
// was marked in flight (StartSessionPayment), replacing only that marker;
// concurrent answers share one statement (completeIdempotents).
func (s *Store) CompleteIdempotent(ctx context.Context, w IdemWrite) error {
	_, err := one(ctx, s, s.completes, (*Store).completeIdempotents, w)
	return translate(err)
}

// ExpireOutcome says what ExpireSession did.
type ExpireOutcome int

const (
	ExpireNothing ExpireOutcome = iota // finished already, or its payment is still running: nothing to do now
	ExpireNotYet                       // not due yet: DueAt
	ExpireDone                         // ACTIVE or FAILED → EXPIRED
	ExpireVoid                         // → EXPIRED, and its payment awaiting 3-D Secure gets a void step (VoidSeq)
)

// ExpireResult is ExpireSession's outcome.
type ExpireResult struct {
	Outcome   ExpireOutcome
	DueAt     time.Time
	Seq       int    // the session's step sequence after the call (for a not-yet task's ID)
	PaymentID string // ExpireVoid: the payment to void
	VoidSeq   int    // ExpireVoid: the payment's step sequence (the void task's ID)
}

// ExpireSession runs the session:expire step, in one transaction under
// the session's row lock. Before expires_on it only reschedules (next_at =
// expires_on). At or after it: an ACTIVE or FAILED session becomes
// EXPIRED; a PROCESSING one whose payment awaits 3-D Secure becomes
// EXPIRED and its payment gets the void step that cancels it (the void path
// of RequestCancel: a charge that lands anyway is refunded there); a
// PROCESSING one whose payment is still running keeps following it (its
// outcome decides; a failure brings the session back here). Each
// transition has its audit row.
func (s *Store) ExpireSession(ctx context.Context, id, actor string) (ExpireResult, error) {
	var out ExpireResult
	err := s.InTx(ctx, func(tx *Store) error {
		now := tx.now()
		// Locks in the order a payment's own transition takes them
		// (applyRows: the payment, then its session), so the two never
		// deadlock: the session's latest payment first, then the session.
		sess, pay, latest, err := tx.lockSession(ctx, "", id)
		if err != nil {
			return err
		}
		if sess.PaymentID != latest {
			// a submit recorded a new payment meanwhile: decide again (the task retries)
			return fmt.Errorf("expire session %s: its payment changed meanwhile", id)
		}
		out.Seq = sess.StepSeq
		switch {
		case sess.Status.Final():
			return nil
		case now.Before(sess.ExpiresOn):
			out.Outcome, out.DueAt = ExpireNotYet, sess.ExpiresOn
			return tx.q.QueryRowxContext(ctx, `UPDATE payment_sessions SET next_at = expires_on, step_seq = step_seq + 1,
				swept = false WHERE id = $1 RETURNING step_seq`, id).Scan(&out.Seq)
		}
		if sess.Status == payment.SessionProcessing && (pay.Status != payment.StatusRequiresAction || pay.CancelRequestedAt != nil) {
			// the payment's outcome decides; a failure brings the session back to FAILED with next_at set
			_, err := tx.q.ExecContext(ctx, `UPDATE payment_sessions SET next_at = NULL, swept = false WHERE id = $1`, id)
			return translate(err)
		}
		return tx.closeSession(ctx, sess, pay, payment.SessionExpired, actor, now, &out)
	})
	return out, err
}

// CancelSession is the merchant's cancel of a session, in one transaction
// under the session's row lock (locked after its latest payment, as
// ExpireSession does): an ACTIVE or FAILED session becomes CANCELED; a
// PROCESSING one whose payment awaits 3-D Secure becomes CANCELED and its
// payment gets the void step (ExpireVoid: the caller enqueues it). A
// session that is finished, past its expires_on, or whose payment is
// running (its outcome decides) is refused with SessionNotCancelable.
// Another tenant's session is payment.ErrNotFound.
func (s *Store) CancelSession(ctx context.Context, tenantID, id, actor string) (ExpireResult, SessionRefusal, error) {
	var (
		out     ExpireResult
		refusal SessionRefusal
	)
	err := s.InTx(ctx, func(tx *Store) error {
		now := tx.now()
		sess, pay, latest, err := tx.lockSession(ctx, tenantID, id)
		if err != nil {
			return err
		}
		out.Seq = sess.StepSeq
		switch {
		case sess.PaymentID != latest:
			refusal = SessionIsBusy // a submit recorded a new payment meanwhile
			return nil
		case sess.Status.Final() || !now.Before(sess.ExpiresOn):
			refusal = SessionNotCancelable
			return nil
		case sess.Status == payment.SessionProcessing && (pay.Status != payment.StatusRequiresAction || pay.CancelRequestedAt != nil):
			refusal = SessionNotCancelable
			return nil
		}
		return tx.closeSession(ctx, sess, pay, payment.SessionCanceled, actor, now, &out)
	})
	return out, refusal, err
}

// closeSession moves a session that takes no more submits to EXPIRED or
// CANCELED, with its audit row; a PROCESSING one's payment awaits 3-D
// Secure and is voided (RequestCancel: out gets ExpireVoid and the void
// step's sequence), any other gets ExpireDone.
func (s *Store) closeSession(ctx context.Context, sess payment.Session, pay payment.Payment, to payment.SessionStatus,
	actor string, now time.Time, out *ExpireResult) error {
	reason := strings.ToLower(string(to))
	if sess.Status == payment.SessionProcessing {
		seq, err := s.RequestCancel(ctx, pay.ID, actor, "payment session "+reason+" before 3-D Secure completed: voiding")
		if err != nil {
			return err
		}
		out.Outcome, out.PaymentID, out.VoidSeq = ExpireVoid, pay.ID, seq
		reason += " while its payment awaited 3-D Secure; the payment is voided"
	} else {
		out.Outcome = ExpireDone
	}
	var pid any
	if sess.PaymentID != "" {
		pid = sess.PaymentID
	}
	return translate(s.q.QueryRowxContext(ctx, `
		WITH ps AS (
			UPDATE payment_sessions SET status = $7,
				expired_at = CASE WHEN $7 = 'EXPIRED' THEN $2 ELSE expired_at END,
				canceled_at = CASE WHEN $7 = 'CANCELED' THEN $2 ELSE canceled_at END,
				next_at = NULL, step_seq = step_seq + 1, swept = false, submit_lock_until = NULL, updated_at = $2
			WHERE id = $1 RETURNING id, tenant_id, step_seq),
		e AS (
			INSERT INTO payment_session_events (session_id, tenant_id, payment_id, from_status, to_status, reason, actor, created_at)
			SELECT id, tenant_id, $3, $4, $7, $5, $6, $2 FROM ps)
		SELECT step_seq FROM ps`, sess.ID, now, pid, string(sess.Status), reason, actor, string(to)).Scan(&out.Seq))
}

// lockSession locks a session's latest payment and then the session, in
// the order a payment's own transition takes them (applyRows: the payment,
// then its session), so the two never deadlock. latest is the payment id
// read before the locks: a session whose payment_id differs from it got a
// new payment meanwhile. tenantID "" reads any tenant's session (tasks).
func (s *Store) lockSession(ctx context.Context, tenantID, id string) (payment.Session, payment.Payment, string, error) {
	var latest, owner string
	err := s.q.QueryRowxContext(ctx, `SELECT COALESCE(payment_id, ''), tenant_id FROM payment_sessions WHERE id = $1`,
		id).Scan(&latest, &owner)
	if err == nil && !ownedBy(tenantID, owner) {
		err = sql.ErrNoRows
	}
	if err != nil {
		return payment.Session{}, payment.Payment{}, "", translate(fmt.Errorf("load session %s: %w", id, err))
	}
	var pay payment.Payment
	if latest != "" {
		if pay, err = s.lockPayment(ctx, latest); err != nil {
			return payment.Session{}, payment.Payment{}, "", err
		}
	}
	var r sessionRow
	err = s.q.QueryRowxContext(ctx, `SELECT `+sessionColumns+` FROM payment_sessions WHERE id = $1 FOR UPDATE`, id).StructScan(&r)
	if err != nil {
		return payment.Session{}, payment.Payment{}, "", translate(fmt.Errorf("load session %s: %w", id, err))
	}
	return r.toSession(), pay, latest, nil
}

// lockPayment loads a payment under its row lock.
func (s *Store) lockPayment(ctx context.Context, id string) (payment.Payment, error) {
	var r paymentRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+paymentColumns+paymentFrom+` WHERE p.id = $1 FOR UPDATE OF p`, id).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("lock payment %s: %w", id, err))
	}
	return r.toPayment(), nil
}

// SessionEvents returns a session's audit trail, oldest first.
func (s *Store) SessionEvents(ctx context.Context, tenantID, sessionID string) ([]payment.SessionEvent, error) {
	var rows []struct {
		ID        int64          `db:"id"`
		SessionID string         `db:"session_id"`
		PaymentID sql.NullString `db:"payment_id"`
		From      sql.NullString `db:"from_status"`
		To        string         `db:"to_status"`
		Reason    string         `db:"reason"`
		Actor     string         `db:"actor"`
		CreatedAt time.Time      `db:"created_at"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT id, session_id, payment_id, from_status, to_status, reason, actor,
			created_at FROM payment_session_events WHERE session_id = $1 AND tenant_id = $2 ORDER BY id`, sessionID, tenantID)
	if err != nil {
		return nil, translate(fmt.Errorf("load events of session %s: %w", sessionID, err))
	}
	out := make([]payment.SessionEvent, len(rows))
	for i, r := range rows {
		out[i] = payment.SessionEvent{ID: r.ID, SessionID: r.SessionID, PaymentID: r.PaymentID.String,
			From: payment.SessionStatus(r.From.String), To: payment.SessionStatus(r.To), Reason: r.Reason, Actor: r.Actor,
			CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}

// LapsedSubmit returns the payment a session submit recorded under an
// Idempotency-Key whose answer was never stored (the submit died, or its
// client went away, after StartSessionPayment committed and before
// CompleteIdempotent), once the key's in-flight lease has lapsed: the
// retry answers with that payment instead of submitting again. ok is false
// when the key holds no such marker for this fingerprint.
func (s *Store) LapsedSubmit(ctx context.Context, k IdemKey, fingerprint []byte) (paymentID string, ok bool, err error) {
	err = s.q.QueryRowxContext(ctx, `SELECT owner FROM idempotency_keys
		WHERE tenant_id = $1 AND route = $2 AND key = $3 AND fingerprint = $4 AND state = 'in_flight'
		  AND owner LIKE 'pay\_%' AND locked_until <= $5`,
		k.TenantID, k.Route, k.Key, fingerprint, s.now()).Scan(&paymentID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, translate(fmt.Errorf("read lapsed submit: %w", err))
	}
	return paymentID, true, nil
}
