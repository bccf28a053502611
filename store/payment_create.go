package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// Creating payments: one row with its audit row, or (CreatePayment) the
// batched statement of a payment, its invoice line and Idempotency-Key answer.

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
	// Gateway is the connector the payment is bound for; empty for none.
	Gateway string
	Options payment.Options
	Actor   string
	// Reason is the creation audit row's reason ("created" when empty).
	Reason string
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
	var gateway any
	if np.Gateway != "" {
		gateway = np.Gateway
	}
	opts, err := json.Marshal(np.Options)
	if err != nil {
		return payment.Payment{}, fmt.Errorf("encode options: %w", err)
	}
	// One statement: the row, its creation audit row, and the row as stored
	// (with the invoice number) for the response.
	var r paymentRow
	err = s.q.QueryRowxContext(ctx, `
		WITH p AS (
			INSERT INTO payments (id, tenant_id, surface, amount, currency, method, payment_method_id,
				destination_type, destination_id, invoice_id, idempotency_key, request_fingerprint,
				process_payment, track_attempts, status, next_step, next_step_at, step_seq, metadata,
				created_by, updated_by, created_at, updated_at, gateway, options)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,'PENDING','create',$15,1,$16,$17,$17,$15,$15,$19,$20)
			RETURNING *),
		e AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, NULL, 'PENDING', COALESCE(NULLIF($18, ''), 'created'), 0, created_by, created_at FROM p)
		SELECT `+paymentColumns+` FROM p LEFT JOIN invoices i ON i.id = p.invoice_id`,
		id, np.TenantID, np.Surface, np.Amount.Minor, np.Amount.Currency, string(np.Method), np.PaymentMethodID,
		np.DestinationType, np.DestinationID, invoiceID, key, np.Fingerprint,
		np.ProcessPayment, np.TrackAttempts, now, meta, np.Actor, np.Reason, gateway, string(opts)).StructScan(&r)
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

// CreatePayment records a new PENDING payment whose next step is create
// (none when it is not to be processed yet: process_payment=false), its
// creation audit row, its invoice line (the amount reserved on the
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
		Metadata: nonNil(pc.Metadata), CreatedBy: pc.Actor, UpdatedBy: pc.Actor, CreatedAt: now, UpdatedAt: now,
		Gateway: pc.Gateway, Options: pc.Options}
	if !pc.ProcessPayment {
		// recorded, not processed: no step until POST /v1/payments/{id}/process
		// (ProcessPayment), so neither the queue nor the sweeper touch it
		p.NextStep, p.NextStepAt = payment.StepNone, nil
	}
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
		gateways, options                                                        = strs(n), strs(n)
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
		opts, err := json.Marshal(p.Options)
		if err != nil {
			return nil, fmt.Errorf("encode options: %w", err)
		}
		gateways[i], options[i] = p.Gateway, string(opts)
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
				$18::text[], $19::text[], $20::text[], $21::bytea[], $22::int8[], $23::text[], $24::int8[], $25::bytea[],
				$26::text[], $27::text[])
			WITH ORDINALITY AS r(id, tenant_id, surface, amount, currency, method, payment_method_id, destination_type,
				destination_id, invoice_id, bkey, fingerprint, process_payment, track_attempts, metadata, actor, created_at,
				line_id, route, ikey, ifp, ilock, iexpires, icode, ibody, gateway, options, ord)),
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
				created_by, updated_by, created_at, updated_at, gateway, options)
			SELECT id, tenant_id, surface, amount, currency, method, payment_method_id, destination_type, destination_id,
				invoice_id, NULLIF(bkey, ''), fingerprint, process_payment, track_attempts, 'PENDING',
				CASE WHEN process_payment THEN 'create' END, CASE WHEN process_payment THEN created_at::timestamptz END,
				1, metadata::jsonb, actor, actor, created_at::timestamptz, created_at::timestamptz,
				NULLIF(gateway, ''), options::jsonb
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
		pq.ByteaArray(ibodies), pq.Array(gateways), pq.Array(options))
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
