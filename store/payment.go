package store

import (
	"context"
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

const paymentColumns = `p.id, p.tenant_id, p.surface, p.amount, p.currency, p.method, p.payment_method_id,
	p.destination_type, p.destination_id, COALESCE(p.invoice_id, '') AS invoice_id,
	COALESCE(i.invoice_number, '') AS invoice_number, COALESCE(p.idempotency_key, '') AS idempotency_key,
	p.process_payment, p.track_attempts, p.status, COALESCE(p.next_step, '') AS next_step, p.next_step_at,
	p.step_seq, p.attempt_count, p.refunded_amount, p.refund_pending_amount, p.gateway_reference,
	p.error_code, p.error_message, p.return_code, p.action_url, p.metadata, p.created_by, p.updated_by,
	p.created_at, p.updated_at, p.succeeded_at, p.failed_at, p.refunded_at, p.canceled_at, p.sent_at,
	p.expected_settlement_at, p.settled_at, p.returned_at, p.return_watch_until, p.cancel_requested_at`

const paymentFrom = ` FROM payments p LEFT JOIN invoices i ON i.id = p.invoice_id `

type paymentRow struct {
	ID                   string       `db:"id"`
	TenantID             string       `db:"tenant_id"`
	Surface              string       `db:"surface"`
	Amount               int64        `db:"amount"`
	Currency             string       `db:"currency"`
	Method               string       `db:"method"`
	PaymentMethodID      string       `db:"payment_method_id"`
	DestinationType      string       `db:"destination_type"`
	DestinationID        string       `db:"destination_id"`
	InvoiceID            string       `db:"invoice_id"`
	InvoiceNumber        string       `db:"invoice_number"`
	IdempotencyKey       string       `db:"idempotency_key"`
	ProcessPayment       bool         `db:"process_payment"`
	TrackAttempts        bool         `db:"track_attempts"`
	Status               string       `db:"status"`
	NextStep             string       `db:"next_step"`
	NextStepAt           sql.NullTime `db:"next_step_at"`
	StepSeq              int          `db:"step_seq"`
	AttemptCount         int          `db:"attempt_count"`
	RefundedAmount       int64        `db:"refunded_amount"`
	RefundPendingAmount  int64        `db:"refund_pending_amount"`
	GatewayReference     string       `db:"gateway_reference"`
	ErrorCode            string       `db:"error_code"`
	ErrorMessage         string       `db:"error_message"`
	ReturnCode           string       `db:"return_code"`
	ActionURL            string       `db:"action_url"`
	Metadata             []byte       `db:"metadata"`
	CreatedBy            string       `db:"created_by"`
	UpdatedBy            string       `db:"updated_by"`
	CreatedAt            time.Time    `db:"created_at"`
	UpdatedAt            time.Time    `db:"updated_at"`
	SucceededAt          sql.NullTime `db:"succeeded_at"`
	FailedAt             sql.NullTime `db:"failed_at"`
	RefundedAt           sql.NullTime `db:"refunded_at"`
	CanceledAt           sql.NullTime `db:"canceled_at"`
	SentAt               sql.NullTime `db:"sent_at"`
	ExpectedSettlementAt sql.NullTime `db:"expected_settlement_at"`
	SettledAt            sql.NullTime `db:"settled_at"`
	ReturnedAt           sql.NullTime `db:"returned_at"`
	ReturnWatchUntil     sql.NullTime `db:"return_watch_until"`
	CancelRequestedAt    sql.NullTime `db:"cancel_requested_at"`
}

func tp(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func (r paymentRow) toPayment() payment.Payment {
	p := payment.Payment{
		ID: r.ID, TenantID: r.TenantID, Surface: r.Surface,
		Amount:          payment.Money{Minor: r.Amount, Currency: r.Currency},
		Method:          payment.Method(r.Method),
		PaymentMethodID: r.PaymentMethodID, DestinationType: r.DestinationType, DestinationID: r.DestinationID,
		InvoiceID: r.InvoiceID, InvoiceNumber: r.InvoiceNumber, IdempotencyKey: r.IdempotencyKey,
		ProcessPayment: r.ProcessPayment, TrackAttempts: r.TrackAttempts,
		Status: payment.Status(r.Status), NextStep: payment.Step(r.NextStep), NextStepAt: tp(r.NextStepAt),
		StepSeq: r.StepSeq, AttemptCount: r.AttemptCount,
		RefundedAmount: r.RefundedAmount, RefundPendingAmount: r.RefundPendingAmount,
		GatewayReference: r.GatewayReference, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
		ReturnCode: r.ReturnCode, ActionURL: r.ActionURL, CreatedBy: r.CreatedBy, UpdatedBy: r.UpdatedBy,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		SucceededAt: tp(r.SucceededAt), FailedAt: tp(r.FailedAt), RefundedAt: tp(r.RefundedAt),
		CanceledAt: tp(r.CanceledAt), SentAt: tp(r.SentAt), ExpectedSettlementAt: tp(r.ExpectedSettlementAt),
		SettledAt: tp(r.SettledAt), ReturnedAt: tp(r.ReturnedAt), ReturnWatchUntil: tp(r.ReturnWatchUntil),
		CancelRequestedAt: tp(r.CancelRequestedAt),
	}
	if len(r.Metadata) > 0 {
		_ = json.Unmarshal(r.Metadata, &p.Metadata)
	}
	return p
}

// NewPayment is what intake records for a new payment.
type NewPayment struct {
	TenantID        string
	Surface         string
	Amount          payment.Money
	Method          payment.Method
	PaymentMethodID string
	DestinationType string
	DestinationID   string
	InvoiceID       string
	IdempotencyKey  string // business key from the body; empty for none
	Fingerprint     []byte
	ProcessPayment  bool
	TrackAttempts   bool
	Metadata        map[string]string
	Actor           string
}

// InsertPayment records a new PENDING payment whose next step is create, with
// its creation audit row. It returns the row as stored.
func (s *Store) InsertPayment(ctx context.Context, np NewPayment) (payment.Payment, error) {
	id := NewID(payment.PrefixPayment)
	now := s.now()
	meta, err := json.Marshal(nonNil(np.Metadata))
	if err != nil {
		return payment.Payment{}, fmt.Errorf("encode metadata: %w", err)
	}
	var invoiceID any
	if np.InvoiceID != "" {
		invoiceID = np.InvoiceID
	}
	var key any
	if np.IdempotencyKey != "" {
		key = np.IdempotencyKey
	}
	// One statement: the row, its creation audit row, and the row as stored
	// (with the invoice number) for the response.
	var r paymentRow
	err = s.q.QueryRowxContext(ctx, `
		WITH p AS (
			INSERT INTO payments (id, tenant_id, surface, amount, currency, method, payment_method_id,
				destination_type, destination_id, invoice_id, idempotency_key, request_fingerprint,
				process_payment, track_attempts, status, next_step, next_step_at, step_seq, metadata,
				created_by, updated_by, created_at, updated_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,'PENDING','create',$15,1,$16,$17,$17,$15,$15)
			RETURNING *),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, NULL, 'PENDING', 'created', 0, created_by, created_at FROM p)
		SELECT `+paymentColumns+` FROM p LEFT JOIN invoices i ON i.id = p.invoice_id`,
		id, np.TenantID, np.Surface, np.Amount.Minor, np.Amount.Currency, string(np.Method), np.PaymentMethodID,
		np.DestinationType, np.DestinationID, invoiceID, key, np.Fingerprint,
		np.ProcessPayment, np.TrackAttempts, now, meta, np.Actor).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("insert payment: %w", err))
	}
	return r.toPayment(), nil
}

// PaymentCreate is a seed-001 payment with its one invoice line: its whole
// amount reserved on the invoice it pays, in the invoice's currency.
type PaymentCreate struct {
	NewPayment
	InvoiceNumber string // echoed in the payment as stored (intake knows it)
	// Idem, if set, is stored with the payment; Respond fills its answer
	// from the payment as it will be stored, before the statement runs.
	Idem    *IdemWrite
	Respond func(payment.Payment) (code int, body []byte, err error)
}

// CreateOutcome says what CreatePayment did.
type CreateOutcome int

const (
	Created        CreateOutcome = iota // the payment, its line, audit row and answer are committed
	KeyInFlight                         // another request holds the Idempotency-Key now: 409
	KeyUsed                             // a record exists for the key: look it up (replay, mismatch, expired)
	InvoiceRefused                      // the invoice is gone, void, another tenant's or in another currency
)

// CreateResult is the payment as stored and, when Respond was given, its answer.
type CreateResult struct {
	Outcome CreateOutcome
	Payment payment.Payment
	Code    int
	Body    []byte
}

// CreatePayment records a new PENDING payment whose next step is create,
// its creation audit row, its invoice line (the amount reserved on the
// invoice under the invoice's row lock: the invoice's CHECK refuses an
// over-application, *payment.InvoiceOverAppliedError) and its
// Idempotency-Key answer, all in one statement. Concurrent creates share the
// statement (group): one round trip and one commit for all of them. A
// business key (body idempotency_key) already used is
// payment.ErrBusinessKeyTaken.
func (s *Store) CreatePayment(ctx context.Context, pc PaymentCreate) (CreateResult, error) {
	now := s.now().Truncate(time.Microsecond)
	p := payment.Payment{ID: NewID(payment.PrefixPayment), TenantID: pc.TenantID, Surface: pc.Surface, Amount: pc.Amount,
		Method: pc.Method, PaymentMethodID: pc.PaymentMethodID, DestinationType: pc.DestinationType,
		DestinationID: pc.DestinationID, InvoiceID: pc.InvoiceID, InvoiceNumber: pc.InvoiceNumber,
		IdempotencyKey: pc.IdempotencyKey, ProcessPayment: pc.ProcessPayment, TrackAttempts: pc.TrackAttempts,
		Status: payment.StatusPending, NextStep: payment.StepCreate, NextStepAt: &now, StepSeq: 1,
		Metadata: nonNil(pc.Metadata), CreatedBy: pc.Actor, UpdatedBy: pc.Actor, CreatedAt: now, UpdatedAt: now}
	req := createReq{p: p, fingerprint: pc.Fingerprint, lineID: NewID(payment.PrefixLine)}
	var res CreateResult
	if pc.Respond != nil {
		code, body, err := pc.Respond(p)
		if err != nil {
			return res, err
		}
		res.Code, res.Body = code, body
		if pc.Idem != nil {
			w := *pc.Idem
			w.Code, w.Body = code, body
			req.idem = &w
		}
	}
	out, err := one(ctx, s, s.creates, (*Store).createPayments, req)
	if err != nil {
		err = translate(err)
		if errors.Is(err, payment.ErrInvoiceOverApplied) {
			return res, &payment.InvoiceOverAppliedError{InvoiceID: pc.InvoiceID}
		}
		return res, fmt.Errorf("create payment: %w", err)
	}
	res.Outcome, res.Payment = out.outcome, p
	return res, nil
}

type createReq struct {
	p           payment.Payment
	fingerprint []byte
	lineID      string
	idem        *IdemWrite
}

type createRes struct{ outcome CreateOutcome }

// createPayments runs a batch of creates as one statement. Each row takes
// its key's advisory lock, is skipped if a record for its key exists, and
// is written only if its invoice (locked in id order) is the tenant's, in
// the payment's currency and not void; the invoices' reservations are
// summed per invoice. A unique or CHECK violation of any row fails the
// whole statement (the group then runs each row alone).
func (s *Store) createPayments(ctx context.Context, reqs []createReq) ([]createRes, error) {
	n := len(reqs)
	var (
		ids, tenants, surfaces, currencies, methods, pms, dtypes, dids, invoices = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		bkeys, metas, actors, created, lineIDs, routes, ikeys, iexpires          = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		amounts, ilocks, icodes                                                  = make([]int64, n), make([]int64, n), make([]int64, n)
		fps, ifps, ibodies                                                       = make([][]byte, n), make([][]byte, n), make([][]byte, n)
		process, track                                                           = make([]bool, n), make([]bool, n)
	)
	for i, r := range reqs {
		p := r.p
		meta, err := json.Marshal(p.Metadata)
		if err != nil {
			return nil, fmt.Errorf("encode metadata: %w", err)
		}
		ids[i], tenants[i], surfaces[i], amounts[i], currencies[i] = p.ID, p.TenantID, p.Surface, p.Amount.Minor, p.Amount.Currency
		methods[i], pms[i], dtypes[i], dids[i], invoices[i] = string(p.Method), p.PaymentMethodID, p.DestinationType, p.DestinationID, p.InvoiceID
		bkeys[i], fps[i], process[i], track[i], metas[i], actors[i] = p.IdempotencyKey, r.fingerprint, p.ProcessPayment, p.TrackAttempts, string(meta), p.CreatedBy
		created[i], lineIDs[i] = pgTime(p.CreatedAt), r.lineID
		ifps[i], ibodies[i] = []byte{}, []byte{}
		if w := r.idem; w != nil {
			routes[i], ikeys[i], ifps[i], ilocks[i], icodes[i], ibodies[i] = w.Key.Route, w.Key.Key, w.Fingerprint, w.Key.lockID(), int64(w.Code), w.Body
			if w.TTL > 0 {
				iexpires[i] = pgTime(p.CreatedAt.Add(w.TTL))
			}
		}
	}
	var rows []struct {
		Ord     int64 `db:"ord"`
		Got     bool  `db:"got"`
		Free    bool  `db:"free"`
		Created bool  `db:"created"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		WITH r AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::text[], $12::bytea[], $13::bool[], $14::bool[], $15::text[], $16::text[], $17::text[],
				$18::text[], $19::text[], $20::text[], $21::bytea[], $22::int8[], $23::text[], $24::int8[], $25::bytea[])
			WITH ORDINALITY AS r(id, tenant_id, surface, amount, currency, method, payment_method_id, destination_type,
				destination_id, invoice_id, bkey, fingerprint, process_payment, track_attempts, metadata, actor, created_at,
				line_id, route, ikey, ifp, ilock, iexpires, icode, ibody, ord)),
		lk AS (SELECT ord, CASE WHEN ikey = '' THEN true ELSE pg_try_advisory_xact_lock(ilock) END AS got FROM r),
		kx AS (
			SELECT r.*, lk.got, r.ikey <> '' AND (SELECT true FROM idempotency_keys k
				WHERE k.tenant_id = r.tenant_id AND k.route = r.route AND k.key = r.ikey) IS NOT NULL AS used
			FROM r JOIN lk USING (ord)),
		go AS (SELECT * FROM kx WHERE got AND NOT used),
		li AS (
			SELECT i.id, i.tenant_id, i.currency FROM (SELECT DISTINCT invoice_id FROM go) g
			JOIN invoices i ON i.id = g.invoice_id
			WHERE i.id = ANY ($10::text[]) AND i.voided_at IS NULL
			ORDER BY i.id FOR NO KEY UPDATE OF i),
		ok AS (SELECT go.* FROM go JOIN li ON li.id = go.invoice_id AND li.tenant_id = go.tenant_id AND li.currency = go.currency),
		iv AS (
			UPDATE invoices i SET amount_reserved = i.amount_reserved + `+reserveAmount+`
			FROM (SELECT invoice_id, sum(amount)::int8 AS amount FROM ok GROUP BY invoice_id) d
			WHERE i.id = d.invoice_id AND i.id = ANY ($10::text[])),
		p AS (
			INSERT INTO payments (id, tenant_id, surface, amount, currency, method, payment_method_id,
				destination_type, destination_id, invoice_id, idempotency_key, request_fingerprint,
				process_payment, track_attempts, status, next_step, next_step_at, step_seq, metadata,
				created_by, updated_by, created_at, updated_at)
			SELECT id, tenant_id, surface, amount, currency, method, payment_method_id, destination_type, destination_id,
				invoice_id, NULLIF(bkey, ''), fingerprint, process_payment, track_attempts, 'PENDING', 'create',
				created_at::timestamptz, 1, metadata::jsonb, actor, actor, created_at::timestamptz, created_at::timestamptz
			FROM ok ORDER BY ord),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, NULL, 'PENDING', 'created', 0, actor, created_at::timestamptz FROM ok ORDER BY ord),
		a AS (
			INSERT INTO payment_applications (id, tenant_id, payment_id, invoice_id, applied_amount, payment_amount,
				applied_currency, remittance_label, state, released_amount, created_at)
			SELECT line_id, tenant_id, id, invoice_id, amount, amount, currency, 'Invoice', 'reserved', 0, created_at::timestamptz
			FROM ok),
		k AS (
			INSERT INTO idempotency_keys (tenant_id, route, key, fingerprint, state, owner, locked_until, expires_at, created_at,
				response_code, response_body)
			SELECT tenant_id, route, ikey, ifp, 'done', '', created_at::timestamptz, NULLIF(iexpires, '')::timestamptz,
				created_at::timestamptz, icode, ibody
			FROM ok WHERE ikey <> '')
		SELECT lk.ord, lk.got, EXISTS (SELECT 1 FROM go WHERE go.ord = lk.ord) AS free,
			EXISTS (SELECT 1 FROM ok WHERE ok.ord = lk.ord) AS created
		FROM lk`,
		pq.Array(ids), pq.Array(tenants), pq.Array(surfaces), pq.Array(amounts), pq.Array(currencies), pq.Array(methods),
		pq.Array(pms), pq.Array(dtypes), pq.Array(dids), pq.Array(invoices), pq.Array(bkeys), pq.ByteaArray(fps),
		pq.Array(process), pq.Array(track), pq.Array(metas), pq.Array(actors), pq.Array(created), pq.Array(lineIDs),
		pq.Array(routes), pq.Array(ikeys), pq.ByteaArray(ifps), pq.Array(ilocks), pq.Array(iexpires), pq.Array(icodes),
		pq.ByteaArray(ibodies))
	if err != nil {
		return nil, err
	}
	out := make([]createRes, n)
	for _, r := range rows {
		o := InvoiceRefused
		switch {
		case !r.Got:
			o = KeyInFlight
		case !r.Free:
			o = KeyUsed
		case r.Created:
			o = Created
		}
		out[r.Ord-1] = createRes{outcome: o}
	}
	return out, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// GetPayment loads one payment of a tenant with its attempts. Another
// tenant's payment is payment.ErrNotFound. An empty tenantID loads any
// tenant's payment (workers).
func (s *Store) GetPayment(ctx context.Context, tenantID, id string) (payment.Payment, error) {
	var r paymentRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+paymentColumns+paymentFrom+`
		WHERE p.id = $1 AND ($2 = '' OR p.tenant_id = $2)`, id, tenantID).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("load payment %s: %w", id, err))
	}
	p := r.toPayment()
	atts, err := s.attempts(ctx, []string{id})
	if err != nil {
		return p, err
	}
	p.Attempts = atts[id]
	return p, nil
}

// PaymentHead loads one payment of any tenant without its attempts: for
// workers whose step does not read them.
func (s *Store) PaymentHead(ctx context.Context, id string) (payment.Payment, error) {
	var r paymentRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+paymentColumns+paymentFrom+` WHERE p.id = $1`, id).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("load payment %s: %w", id, err))
	}
	return r.toPayment(), nil
}

// PaymentByKey returns the tenant's payment with a business
// idempotency key, and the fingerprint of the request that created it.
func (s *Store) PaymentByKey(ctx context.Context, tenantID, key string) (payment.Payment, []byte, error) {
	var id string
	var fp []byte
	err := s.q.QueryRowxContext(ctx, `SELECT id, request_fingerprint FROM payments WHERE tenant_id = $1 AND idempotency_key = $2`,
		tenantID, key).Scan(&id, &fp)
	if err != nil {
		return payment.Payment{}, nil, translate(fmt.Errorf("payment by key: %w", err))
	}
	p, err := s.GetPayment(ctx, tenantID, id)
	return p, fp, err
}

// ListFilter selects a page of payments, newest first.
type ListFilter struct {
	TenantID      string
	Surface       string
	Statuses      []payment.Status // any of; empty for all
	Limit         int
	StartingAfter string // a payment id; the page starts after it
}

// ListPayments returns up to Limit payments and whether more follow.
func (s *Store) ListPayments(ctx context.Context, f ListFilter) ([]payment.Payment, bool, error) {
	args := []any{f.TenantID, f.Limit + 1}
	where := []string{"p.tenant_id = $1"}
	if f.Surface != "" {
		args = append(args, f.Surface)
		where = append(where, fmt.Sprintf("p.surface = $%d", len(args)))
	}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ss[i] = string(st)
		}
		args = append(args, pq.Array(ss))
		where = append(where, fmt.Sprintf("p.status = ANY($%d)", len(args)))
	}
	if f.StartingAfter != "" {
		args = append(args, f.StartingAfter)
		n := len(args)
		where = append(where, fmt.Sprintf(`(p.created_at, p.id) < (SELECT created_at, id FROM payments WHERE id = $%d AND tenant_id = $1)`, n))
	}
	q := `SELECT ` + paymentColumns + paymentFrom + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY p.created_at DESC, p.id DESC LIMIT $2`
	return s.pagePayments(ctx, "list payments", f.Limit, q, args...)
}

// pagePayments runs a list query that asks for limit+1 rows, and returns
// up to limit payments with their attempts and whether more follow.
func (s *Store) pagePayments(ctx context.Context, what string, limit int, q string, args ...any) ([]payment.Payment, bool, error) {
	var rows []paymentRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, q, args...); err != nil {
		return nil, false, translate(fmt.Errorf("%s: %w", what, err))
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]payment.Payment, len(rows))
	ids := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.toPayment()
		ids[i] = r.ID
	}
	atts, err := s.attempts(ctx, ids)
	if err != nil {
		return nil, false, err
	}
	for i := range out {
		out[i].Attempts = atts[out[i].ID]
	}
	return out, more, nil
}

// PaymentExists reports whether a payment id exists for the tenant.
func (s *Store) PaymentExists(ctx context.Context, tenantID, id string) (bool, error) {
	var ok bool
	err := s.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM payments WHERE id = $1 AND tenant_id = $2)`, id, tenantID).Scan(&ok)
	return ok, translate(err)
}

// Events returns a payment's audit trail, oldest first.
func (s *Store) Events(ctx context.Context, tenantID, paymentID string) ([]payment.Event, error) {
	var rows []struct {
		ID            int64          `db:"id"`
		PaymentID     string         `db:"payment_id"`
		TenantID      string         `db:"tenant_id"`
		From          sql.NullString `db:"from_status"`
		To            string         `db:"to_status"`
		Reason        string         `db:"reason"`
		AttemptNumber int            `db:"attempt_number"`
		Actor         string         `db:"actor"`
		CreatedAt     time.Time      `db:"created_at"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		SELECT id, payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at
		FROM payment_events WHERE payment_id = $1 AND tenant_id = $2 ORDER BY id`, paymentID, tenantID)
	if err != nil {
		return nil, translate(fmt.Errorf("load events of %s: %w", paymentID, err))
	}
	out := make([]payment.Event, len(rows))
	for i, r := range rows {
		out[i] = payment.Event{ID: r.ID, PaymentID: r.PaymentID, TenantID: r.TenantID, From: payment.Status(r.From.String),
			To: payment.Status(r.To), Reason: r.Reason, AttemptNumber: r.AttemptNumber, Actor: r.Actor, CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}

func (s *Store) insertEvent(ctx context.Context, e payment.Event) error {
	var from any
	if e.From != "" {
		from = string(e.From)
	}
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		e.PaymentID, e.TenantID, from, string(e.To), e.Reason, e.AttemptNumber, e.Actor, e.CreatedAt)
	return translate(err)
}

// Change is one guarded update of a payment: it applies only while the row is
// still in the observed state (status, and step sequence unless AnySeq), and
// writes an audit row when the status changes. Every field it sets is listed.
type Change struct {
	PaymentID string
	From      payment.Status
	To        payment.Status
	Seq       int  // observed step_seq
	AnySeq    bool // guard on status only (refunds, cancels)
	// KeepSchedule leaves next_step, next_step_at and step_seq as they are.
	KeepSchedule bool
	// The schedule after the change. StepNone clears it.
	NextStep   payment.Step
	NextStepAt time.Time

	Reason  string
	Attempt int
	Actor   string

	GatewayReference string // set when not empty
	ErrorCode        string // set when not empty
	ErrorMessage     string // set when not empty
	ReturnCode       string // set when not empty
	ActionURL        string // set when not empty; cleared when the status leaves REQUIRES_ACTION
	// Audit writes an audit row even when From == To: a further partial
	// refund, or a note (payment/state.go) with Reason.
	Audit                bool
	ExpectedSettlementAt *time.Time
	ReturnWatchUntil     *time.Time
	SettledAt            *time.Time
	RefundedDelta        int64 // moved from refund_pending to refunded
	RefundReleased       int64 // released from refund_pending (failed refund)
}

// Apply runs a Change and returns the new step sequence. payment.ErrStale
// means the row had moved on: the caller's task is out of date. It runs in
// one transaction (the caller's, if any): the guarded update with its audit
// row in one statement, then the invoice lines the transition moves.
func (s *Store) Apply(ctx context.Context, c Change) (int, error) {
	return s.ApplyWith(ctx, nil, c)
}

// ApplyWith is Apply that also records attempt's outcome, guarded with the
// change: neither applies unless the payment is still in the observed state
// and the attempt is still unfinished (STARTED or UNKNOWN).
func (s *Store) ApplyWith(ctx context.Context, attempt *AttemptResult, c Change) (int, error) {
	if err := checkChange(c); err != nil {
		return 0, err
	}
	var seq int
	err := s.InTx(ctx, func(tx *Store) error {
		res, err := one(ctx, tx, tx.records, (*Store).applyRows, applyReq{c: c, attempt: attempt})
		if err != nil {
			return translate(fmt.Errorf("apply %s→%s to %s: %w", c.From, c.To, c.PaymentID, err))
		}
		if !res.ok {
			return fmt.Errorf("apply %s→%s to %s: %w", c.From, c.To, c.PaymentID, payment.ErrStale)
		}
		seq = res.seq
		// In its own statement, after the update: this statement's snapshot
		// sees every line committed before the payment's row lock was ours.
		if c.From != c.To || c.RefundedDelta > 0 {
			return tx.settleLines(ctx, c)
		}
		return nil
	})
	return seq, err
}

// Record is ApplyWith for a payment of the seed-001 surface (not a
// payout), run outside any transaction: concurrent records share one
// statement (group) that also moves the payment's invoice lines. That is
// safe because such a payment's lines never change but with a status
// change of the payment itself, under its row lock: a record whose guard
// still holds after waiting for that lock saw the lines as they are.
// (A payout's lines may be replaced by PUT /v1/payouts/{id}/lines at any
// time, without a transition; payouts use ApplyWith.)
func (s *Store) Record(ctx context.Context, attempt *AttemptResult, c Change) (int, error) {
	if err := checkChange(c); err != nil {
		return 0, err
	}
	if s.tx != nil || c.RefundedDelta > 0 || c.RefundReleased > 0 {
		return s.ApplyWith(ctx, attempt, c)
	}
	res, err := s.records.do(ctx, applyReq{c: c, attempt: attempt, lines: linesOf(c)})
	if err != nil {
		return 0, translate(fmt.Errorf("record %s→%s to %s: %w", c.From, c.To, c.PaymentID, err))
	}
	if !res.ok {
		return 0, fmt.Errorf("record %s→%s to %s: %w", c.From, c.To, c.PaymentID, payment.ErrStale)
	}
	return res.seq, nil
}

func checkChange(c Change) error {
	if c.From != c.To {
		if _, err := payment.Next(c.From, c.To); err != nil {
			return err
		}
	}
	if !c.From.Valid() {
		return &payment.TransitionError{From: c.From, To: c.To}
	}
	return nil
}

// linesOf is what a transition does to the payment's invoice lines when
// the statement moves them (Record): count them as paid, or give them back.
// Refunds release part of them in Go (releaseRefunded).
func linesOf(c Change) string {
	switch {
	case c.From == c.To:
		return ""
	case c.To == payment.StatusSucceeded:
		return "apply"
	case c.To == payment.StatusFailed, c.To == payment.StatusCanceled, c.To == payment.StatusReturned:
		return "release"
	}
	return ""
}

// blocksAccount: a return that closes the beneficiary account to payouts.
func (c Change) blocksAccount() bool {
	return c.To == payment.StatusReturned && payment.ReturnBlocksAccount(c.ReturnCode)
}

type applyReq struct {
	c       Change
	attempt *AttemptResult
	// lines is what the statement itself does to the payment's invoice
	// lines: "" (nothing: the caller settles them), "apply" or "release".
	lines string
}

type applyRes struct {
	seq int
	ok  bool
}

// applyRows runs a batch of guarded changes as one statement: for each
// row whose payment is still in the observed state (and whose attempt, if
// any, is unfinished), the update, the attempt's outcome, the audit row
// and, with lines set, the invoice lines and balances. Invoices are locked
// in id order, as everywhere, so concurrent statements never deadlock on
// them.
func (s *Store) applyRows(ctx context.Context, reqs []applyReq) ([]applyRes, error) {
	now := s.now()
	n := len(reqs)
	var (
		ids, to, from, step, stepAt, actor, gref, ecode, emsg, rcode, aurl = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		expSettle, watch, settled, reason, lines                           = strs(n), strs(n), strs(n), strs(n), strs(n)
		attID, attStatus, attClass, attCode, attMsg, attRef, attRetry      = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		seqs, attempt, refunded, released                                  = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		anySeq, keep, audit, block, attInq                                 = make([]bool, n), make([]bool, n), make([]bool, n), make([]bool, n), make([]bool, n)
	)
	for i, r := range reqs {
		c := r.c
		ids[i], to[i], from[i], seqs[i], anySeq[i], keep[i] = c.PaymentID, string(c.To), string(c.From), int64(c.Seq), c.AnySeq, c.KeepSchedule
		if c.NextStep != payment.StepNone {
			step[i], stepAt[i] = string(c.NextStep), pgTime(c.NextStepAt)
		}
		actor[i], gref[i], ecode[i], emsg[i], rcode[i], aurl[i] = c.Actor, c.GatewayReference, c.ErrorCode, c.ErrorMessage, c.ReturnCode, c.ActionURL
		expSettle[i], watch[i], settled[i] = pgTimeP(c.ExpectedSettlementAt), pgTimeP(c.ReturnWatchUntil), pgTimeP(c.SettledAt)
		audit[i], reason[i], attempt[i] = c.From != c.To || c.Audit, c.Reason, int64(c.Attempt)
		if unauditedSucceeded && c.To == payment.StatusSucceeded {
			audit[i] = false // the I4 negative test's broken build only (audit_broken.go)
		}
		refunded[i], released[i] = c.RefundedDelta, c.RefundReleased
		lines[i] = r.lines
		block[i] = r.lines != "" && c.blocksAccount()
		if a := r.attempt; a != nil {
			attID[i], attStatus[i], attClass[i], attCode[i] = a.AttemptID, string(a.Status), string(a.FailureClass), a.ErrorCode
			attMsg[i], attRef[i], attRetry[i], attInq[i] = truncate(a.ErrorMessage, 500), a.GatewayReference, pgTimeP(a.NextRetryAt), a.CountInquiry
		}
	}
	var rows []struct {
		Ord int64 `db:"ord"`
		Seq int   `db:"step_seq"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		WITH r AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::bool[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
				$18::int8[], $19::int8[], $20::bool[], $21::text[], $22::int8[], $23::text[], $24::bool[],
				$25::text[], $26::text[], $27::text[], $28::text[], $29::text[], $30::text[], $31::text[], $32::bool[])
			WITH ORDINALITY AS r(payment_id, to_status, from_status, seq, any_seq, keep, next_step, next_step_at,
				actor, gref, ecode, emsg, rcode, aurl, exp_settle, watch, settled,
				refunded, released, audit, reason, attempt, lines, block,
				att_id, att_status, att_class, att_code, att_msg, att_ref, att_retry, att_inq, ord)),
		u AS (
			UPDATE payments p SET
				status = r.to_status,
				next_step = CASE WHEN r.keep THEN p.next_step ELSE NULLIF(r.next_step, '') END,
				next_step_at = CASE WHEN r.keep THEN p.next_step_at ELSE NULLIF(r.next_step_at, '')::timestamptz END,
				step_seq = CASE WHEN r.keep THEN p.step_seq ELSE p.step_seq + 1 END,
				swept = CASE WHEN r.keep THEN p.swept ELSE false END,
				updated_at = $33, updated_by = r.actor,
				gateway_reference = CASE WHEN r.gref <> '' THEN r.gref ELSE p.gateway_reference END,
				error_code = CASE WHEN r.ecode <> '' THEN r.ecode ELSE p.error_code END,
				error_message = CASE WHEN r.emsg <> '' THEN r.emsg ELSE p.error_message END,
				return_code = CASE WHEN r.rcode <> '' THEN r.rcode ELSE p.return_code END,
				action_url = CASE WHEN r.aurl <> '' THEN r.aurl WHEN r.to_status <> 'REQUIRES_ACTION' THEN '' ELSE p.action_url END,
				expected_settlement_at = COALESCE(NULLIF(r.exp_settle, '')::timestamptz, p.expected_settlement_at),
				return_watch_until = COALESCE(NULLIF(r.watch, '')::timestamptz, p.return_watch_until),
				settled_at = COALESCE(p.settled_at, NULLIF(r.settled, '')::timestamptz),
				refunded_amount = p.refunded_amount + r.refunded,
				refund_pending_amount = p.refund_pending_amount - r.refunded - r.released,
				succeeded_at = CASE WHEN r.to_status = 'SUCCEEDED' THEN COALESCE(p.succeeded_at, $33) ELSE p.succeeded_at END,
				failed_at    = CASE WHEN r.to_status = 'FAILED' THEN COALESCE(p.failed_at, $33) ELSE p.failed_at END,
				canceled_at  = CASE WHEN r.to_status = 'CANCELED' THEN COALESCE(p.canceled_at, $33) ELSE p.canceled_at END,
				sent_at      = CASE WHEN r.to_status = 'SENT' THEN COALESCE(p.sent_at, $33) ELSE p.sent_at END,
				returned_at  = CASE WHEN r.to_status = 'RETURNED' THEN COALESCE(p.returned_at, $33) ELSE p.returned_at END,
				refunded_at  = CASE WHEN r.to_status IN ('REFUNDED','PARTIALLY_REFUNDED') AND r.refunded > 0 THEN $33 ELSE p.refunded_at END
			FROM r
			WHERE p.id = r.payment_id AND p.id = ANY ($1::text[])
			  AND p.status = r.from_status AND (r.any_seq OR p.step_seq = r.seq)
			  AND (r.lines = '' OR p.surface <> 'payouts')
			  AND (r.att_id = '' OR EXISTS (SELECT 1 FROM payment_attempts a
			       WHERE a.id = r.att_id AND a.id = ANY ($25::text[]) AND a.payment_id = p.id AND a.status IN ('STARTED', 'UNKNOWN')))
			RETURNING r.*, p.step_seq, p.tenant_id),
		f AS (
			UPDATE payment_attempts a SET status = u.att_status, failure_class = u.att_class, error_code = u.att_code,
				error_message = u.att_msg,
				gateway_reference = CASE WHEN u.att_ref <> '' THEN u.att_ref ELSE a.gateway_reference END,
				next_retry_at = NULLIF(u.att_retry, '')::timestamptz,
				finished_at = CASE WHEN u.att_status IN ('SUCCEEDED', 'FAILED') THEN $33 END,
				updated_at = $33, inquiry_count = a.inquiry_count + CASE WHEN u.att_inq THEN 1 ELSE 0 END
			FROM u WHERE u.att_id <> '' AND a.id = u.att_id AND a.id = ANY ($25::text[]) AND a.status IN ('STARTED', 'UNKNOWN')),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT payment_id, tenant_id, from_status, to_status, reason, attempt, actor, $33 FROM u WHERE audit ORDER BY ord),
		la AS (
			UPDATE payment_applications pa SET state = 'applied'
			FROM u WHERE u.lines = 'apply' AND pa.payment_id = u.payment_id AND pa.payment_id = ANY ($1::text[])
			  AND pa.state = 'reserved'
			RETURNING pa.invoice_id, 0::int8 AS reserved, pa.applied_amount - pa.released_amount AS paid),
		lr AS (
			UPDATE payment_applications pa SET state = 'released', released_amount = pa.applied_amount
			FROM (SELECT x.id, x.applied_amount - x.released_amount AS left_amount, x.state AS old_state
			      FROM payment_applications x JOIN u ON u.lines = 'release' AND x.payment_id = u.payment_id
			      WHERE x.payment_id = ANY ($1::text[]) AND x.state <> 'released' AND x.applied_amount > x.released_amount) o
			WHERE pa.id = o.id AND pa.payment_id = ANY ($1::text[])
			RETURNING pa.invoice_id, -o.left_amount AS reserved, CASE WHEN o.old_state = 'applied' THEN -o.left_amount ELSE 0 END AS paid),
		d AS (
			SELECT invoice_id, sum(reserved)::int8 AS reserved, sum(paid)::int8 AS paid
			FROM (SELECT * FROM la UNION ALL SELECT * FROM lr) m GROUP BY invoice_id),
		li AS (
			SELECT i.id FROM d JOIN invoices i ON i.id = d.invoice_id
			WHERE i.id = ANY (ARRAY(SELECT invoice_id FROM d)) ORDER BY i.id FOR NO KEY UPDATE OF i),
		iv AS (
			UPDATE invoices i SET amount_reserved = i.amount_reserved + d.reserved, amount_paid = i.amount_paid + d.paid
			FROM d JOIN li ON li.id = d.invoice_id
			WHERE i.id = d.invoice_id AND i.id = ANY (ARRAY(SELECT invoice_id FROM d))),
		b AS (
			INSERT INTO blocked_accounts (tenant_id, account_fingerprint, return_code, payment_id, created_at)
			SELECT pd.tenant_id, pd.account_fingerprint, u.rcode, pd.payment_id, $33
			FROM payout_details pd JOIN u ON u.block AND pd.payment_id = u.payment_id AND pd.payment_id = ANY ($1::text[])
			ON CONFLICT DO NOTHING)
		SELECT ord, step_seq FROM u`,
		pq.Array(ids), pq.Array(to), pq.Array(from), pq.Array(seqs), pq.Array(anySeq), pq.Array(keep), pq.Array(step), pq.Array(stepAt),
		pq.Array(actor), pq.Array(gref), pq.Array(ecode), pq.Array(emsg), pq.Array(rcode), pq.Array(aurl),
		pq.Array(expSettle), pq.Array(watch), pq.Array(settled),
		pq.Array(refunded), pq.Array(released), pq.Array(audit), pq.Array(reason), pq.Array(attempt), pq.Array(lines), pq.Array(block),
		pq.Array(attID), pq.Array(attStatus), pq.Array(attClass), pq.Array(attCode), pq.Array(attMsg), pq.Array(attRef), pq.Array(attRetry),
		pq.Array(attInq), now)
	if err != nil {
		return nil, err
	}
	out := make([]applyRes, n)
	for _, r := range rows {
		out[r.Ord-1] = applyRes{seq: r.Seq, ok: true}
	}
	return out, nil
}

func strs(n int) []string { return make([]string, n) }

// PaymentState is a payment's status and when it entered it.
type PaymentState struct {
	Status payment.Status
	Since  time.Time // created_at of the audit row that moved it into Status
}

// PaymentStatuses reads the status of many payments at once (any tenant),
// by primary key only: the cheap poll of a load driver.
func (s *Store) PaymentStatuses(ctx context.Context, ids []string) (map[string]payment.Status, error) {
	var rows []struct {
		ID     string `db:"id"`
		Status string `db:"status"`
	}
	if err := sqlx.SelectContext(ctx, s.q, &rows, `SELECT id, status FROM payments WHERE id = ANY($1)`, pq.Array(ids)); err != nil {
		return nil, translate(fmt.Errorf("payment statuses: %w", err))
	}
	out := make(map[string]payment.Status, len(rows))
	for _, r := range rows {
		out[r.ID] = payment.Status(r.Status)
	}
	return out, nil
}

// PaymentStates reads the status of many payments at once (any tenant), for
// load drivers and checkers.
func (s *Store) PaymentStates(ctx context.Context, ids []string) (map[string]PaymentState, error) {
	var rows []struct {
		ID     string    `db:"id"`
		Status string    `db:"status"`
		Since  time.Time `db:"since"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		SELECT p.id, p.status, COALESCE((SELECT max(e.created_at) FROM payment_events e
			WHERE e.payment_id = p.id AND e.to_status = p.status), p.updated_at) AS since
		FROM payments p WHERE p.id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return nil, translate(fmt.Errorf("payment states: %w", err))
	}
	out := make(map[string]PaymentState, len(rows))
	for _, r := range rows {
		out[r.ID] = PaymentState{Status: payment.Status(r.Status), Since: r.Since.UTC()}
	}
	return out, nil
}

// LockPayment loads a payment and locks its row until the transaction ends,
// for decisions that depend on its current amounts (refunds).
func (s *Store) LockPayment(ctx context.Context, id string) (payment.Payment, error) {
	var r paymentRow
	err := s.q.QueryRowxContext(ctx, `SELECT `+paymentColumns+paymentFrom+` WHERE p.id = $1 FOR UPDATE OF p`, id).StructScan(&r)
	if err != nil {
		return payment.Payment{}, translate(fmt.Errorf("lock payment %s: %w", id, err))
	}
	return r.toPayment(), nil
}
