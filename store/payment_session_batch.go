package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/payd/payd/payment"
)

// The hot statements of payment sessions, batched like a card payment's
// (batch.go): a session's create with its audit row and Idempotency-Key
// answer (CreateSessionWith), a submit's payment with the session's move to
// PROCESSING and the key's in-flight marker (StartSessionPayment), and the
// submit's answer (CompleteIdempotent) each run as one multi-row statement
// shared by every concurrent request, one round trip and one commit for all
// of them. The submit's first statement (BeginSubmit) reads the session and
// the key and takes the submit lock in one round trip.

// SessionCreate is a new session and, if Idem is set, its Idempotency-Key
// answer, which Respond fills from the session as it will be stored before
// the statement runs (CreatePayment's protocol).
type SessionCreate struct {
	NewSession
	Idem    *IdemWrite
	Respond func(payment.Session) (code int, body []byte, err error)
}

// SessionCreateResult is what CreateSessionWith did: Outcome is Created,
// KeyInFlight, KeyUsed or InvoiceRefused (the invoice is gone, void,
// another tenant's or in another currency). Session and Secret are the
// session as stored and its secret (shown once); Code and Body the answer.
type SessionCreateResult struct {
	Outcome CreateOutcome
	Session payment.Session
	Secret  string
	Code    int
	Body    []byte
}

type sessionCreateReq struct {
	s          payment.Session
	secretHash []byte
	idem       *IdemWrite
}

// CreateSessionWith records an ACTIVE session with its creation audit row
// and its expiry step (next_at = expires_on, step_seq 1) and, with Idem,
// its Idempotency-Key answer, in one statement shared with concurrent
// creates. It makes the token (pst_ and 128 random bits) and the secret
// (pss_ and 256 random bits); the secret is stored only as its hash.
func (s *Store) CreateSessionWith(ctx context.Context, sc SessionCreate) (SessionCreateResult, error) {
	now := s.now().Truncate(time.Microsecond)
	secret := "pss_" + randomHex(32)
	req := sc.Request
	if len(req) == 0 {
		req = []byte("{}")
	}
	methods := sc.EnabledMethods
	if methods == nil {
		methods = []string{}
	}
	exp := sc.ExpiresOn.UTC().Truncate(time.Microsecond) // as stored
	sess := payment.Session{ID: NewID(payment.PrefixSession), TenantID: sc.TenantID, Status: payment.SessionActive,
		Amount: sc.Amount, Reference: sc.Reference, Description: sc.Description, DisplayName: sc.DisplayName,
		Locale: sc.Locale, SuccessURL: sc.SuccessURL, FailureURL: sc.FailureURL, EnabledMethods: methods, Request: req,
		Token: "pst_" + randomHex(16), InvoiceID: sc.InvoiceID, ExpiresOn: exp, RetryLimit: sc.RetryLimit,
		NextAt: &exp, StepSeq: 1, CreatedBy: sc.Actor, CreatedAt: now, UpdatedAt: now}
	cr := sessionCreateReq{s: sess, secretHash: SessionSecretHash(secret)}
	res := SessionCreateResult{Session: sess, Secret: secret}
	if sc.Respond != nil {
		code, body, err := sc.Respond(sess)
		if err != nil {
			return res, err
		}
		res.Code, res.Body = code, body
		if sc.Idem != nil {
			w := *sc.Idem
			w.Code, w.Body = code, body
			cr.idem = &w
		}
	}
	out, err := one(ctx, s, s.sessionCreates, (*Store).createSessions, cr)
	if err != nil {
		return res, translate(fmt.Errorf("insert session: %w", err))
	}
	res.Outcome = out.outcome
	return res, nil
}

// createSessions runs a batch of session creates as one statement, as
// createPayments does: each row takes its key's advisory lock, is skipped if
// a record for its key exists, and is written only if its invoice (if any)
// is the tenant's, in the session's currency and not void.
func (s *Store) createSessions(ctx context.Context, reqs []sessionCreateReq) ([]createRes, error) {
	n := len(reqs)
	var (
		ids, tenants, currencies, refs, descs, names, locales, oks, fails = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		methods, requests, tokens, invoices, expires, actors, created     = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		routes, ikeys, iexpires                                           = strs(n), strs(n), strs(n)
		amounts, retries, ilocks, icodes                                  = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		hashes, ifps, ibodies                                             = make([][]byte, n), make([][]byte, n), make([][]byte, n)
	)
	for i, r := range reqs {
		ss := r.s
		m, err := json.Marshal(ss.EnabledMethods)
		if err != nil {
			return nil, err
		}
		ids[i], tenants[i], amounts[i], currencies[i], refs[i], descs[i] = ss.ID, ss.TenantID, ss.Amount.Minor, ss.Amount.Currency, ss.Reference, ss.Description
		names[i], locales[i], oks[i], fails[i], methods[i], requests[i] = ss.DisplayName, ss.Locale, ss.SuccessURL, ss.FailureURL, string(m), string(ss.Request)
		tokens[i], hashes[i], invoices[i], expires[i], retries[i] = ss.Token, r.secretHash, ss.InvoiceID, pgTime(ss.ExpiresOn), int64(ss.RetryLimit)
		actors[i], created[i] = ss.CreatedBy, pgTime(ss.CreatedAt)
		ifps[i], ibodies[i] = []byte{}, []byte{}
		if w := r.idem; w != nil {
			routes[i], ikeys[i], ifps[i], ilocks[i], icodes[i], ibodies[i] = w.Key.Route, w.Key.Key, w.Fingerprint, w.Key.lockID(), int64(w.Code), w.Body
			if w.TTL > 0 {
				iexpires[i] = pgTime(ss.CreatedAt.Add(w.TTL))
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
			SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], $15::text[], $16::text[], $17::int8[],
				$18::text[], $19::text[], $20::text[], $21::text[], $22::bytea[], $23::int8[], $24::text[], $25::int8[], $26::bytea[])
			WITH ORDINALITY AS r(id, tenant_id, amount, currency, reference, description, display_name, locale, success_url,
				failure_url, methods, request, token, secret_hash, invoice_id, expires_on, retry_limit, actor, created_at,
				route, ikey, ifp, ilock, iexpires, icode, ibody, ord)),
		lk AS (SELECT ord, CASE WHEN ikey = '' THEN true ELSE pg_try_advisory_xact_lock(ilock) END AS got FROM r),
		kx AS (
			SELECT r.*, lk.got, r.ikey <> '' AND (SELECT true FROM idempotency_keys k
				WHERE k.tenant_id = r.tenant_id AND k.route = r.route AND k.key = r.ikey) IS NOT NULL AS used
			FROM r JOIN lk USING (ord)),
		go AS (SELECT * FROM kx WHERE got AND NOT used),
		ok AS (
			SELECT go.* FROM go WHERE go.invoice_id = '' OR EXISTS (SELECT 1 FROM invoices i
				WHERE i.id = go.invoice_id AND i.tenant_id = go.tenant_id AND i.currency = go.currency AND i.voided_at IS NULL)),
		ps AS (
			INSERT INTO payment_sessions (id, tenant_id, status, amount, currency, reference, description, display_name,
				locale, success_url, failure_url, enabled_methods, request, token, secret_hash, invoice_id, expires_on,
				retry_limit, next_at, step_seq, created_by, created_at, updated_at)
			SELECT id, tenant_id, 'ACTIVE', amount, currency, reference, description, display_name, locale, success_url,
				failure_url, ARRAY(SELECT jsonb_array_elements_text(methods::jsonb)), request::jsonb, token, secret_hash,
				NULLIF(invoice_id, ''), expires_on::timestamptz, retry_limit, expires_on::timestamptz, 1, actor,
				created_at::timestamptz, created_at::timestamptz
			FROM ok ORDER BY ord),
		e AS (
			INSERT INTO payment_session_events (session_id, tenant_id, from_status, to_status, reason, actor, created_at)
			SELECT id, tenant_id, NULL, 'ACTIVE', 'created', actor, created_at::timestamptz FROM ok ORDER BY ord),
		k AS (
			INSERT INTO idempotency_keys (tenant_id, route, key, fingerprint, state, owner, locked_until, expires_at, created_at,
				response_code, response_body)
			SELECT tenant_id, route, ikey, ifp, 'done', '', created_at::timestamptz, NULLIF(iexpires, '')::timestamptz,
				created_at::timestamptz, icode, ibody
			FROM ok WHERE ikey <> '')
		SELECT lk.ord, lk.got, EXISTS (SELECT 1 FROM go WHERE go.ord = lk.ord) AS free,
			EXISTS (SELECT 1 FROM ok WHERE ok.ord = lk.ord) AS created
		FROM lk`,
		pq.Array(ids), pq.Array(tenants), pq.Array(amounts), pq.Array(currencies), pq.Array(refs), pq.Array(descs),
		pq.Array(names), pq.Array(locales), pq.Array(oks), pq.Array(fails), pq.Array(methods), pq.Array(requests),
		pq.Array(tokens), pq.ByteaArray(hashes), pq.Array(invoices), pq.Array(expires), pq.Array(retries), pq.Array(actors),
		pq.Array(created), pq.Array(routes), pq.Array(ikeys), pq.ByteaArray(ifps), pq.Array(ilocks), pq.Array(iexpires),
		pq.Array(icodes), pq.ByteaArray(ibodies))
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

// SubmitStart is what BeginSubmit found and did.
type SubmitStart struct {
	// Idem is the Idempotency-Key's record (IdemNew without a key, or when
	// nothing live is stored); LapsedPayment the payment of a submit under
	// this key and body whose answer was never stored (LapsedSubmit).
	Idem          IdemRecord
	LapsedPayment string
	// Session as it was before the lock; Refusal SessionOK when the lock
	// was taken, else why the session takes no submit (nothing was locked).
	Session payment.Session
	Refusal SessionRefusal
}

// BeginSubmit is a submit's first statement: it reads the tenant's session
// (payment.ErrNotFound if there is none) and the Idempotency-Key's record
// (k may be nil) and, only if the key holds no live record nor a lapsed
// submit of this body, takes the session's submit lock until `until` as
// LockSessionSubmit does. One round trip for what LookupIdempotent,
// LapsedSubmit and LockSessionSubmit do apart.
func (s *Store) BeginSubmit(ctx context.Context, tenantID, id string, k *IdemKey, fingerprint []byte, until time.Time) (SubmitStart, error) {
	req := beginReq{tenantID: tenantID, id: id, until: until, fp: fingerprint}
	if k != nil {
		req.route, req.key = k.Route, k.Key
	}
	if req.fp == nil {
		req.fp = []byte{}
	}
	r, err := one(ctx, s, s.submitBegins, (*Store).beginSubmits, req)
	if err != nil {
		return SubmitStart{}, translate(fmt.Errorf("begin submit of session %s: %w", id, err))
	}
	if r.row == nil {
		return SubmitStart{}, fmt.Errorf("begin submit of session %s: %w", id, payment.ErrNotFound)
	}
	out := SubmitStart{Idem: IdemRecord{State: IdemNew}, Session: r.row.toSession()}
	switch {
	case !r.KFound:
	case r.KLapsed:
		out.LapsedPayment = r.KOwner
		return out, nil
	case !r.KLive:
	case string(r.KFP) != string(req.fp):
		out.Idem.State = IdemMismatch
		return out, nil
	case r.KState != "done":
		out.Idem.State = IdemInFlight
		return out, nil
	default:
		out.Idem = IdemRecord{State: IdemReplay, Code: int(r.KCode.Int64), Body: r.KBody}
		return out, nil
	}
	if r.Locked {
		out.Session.SubmitLocked = true
		return out, nil
	}
	out.Refusal = refusalOf(out.Session, r.now)
	return out, nil
}

type beginReq struct {
	tenantID, id, route, key string
	fp                       []byte
	until                    time.Time
}

// beginRes is a submit's session (nil: not the tenant's) as it was before
// the lock, whether the lock was taken, and the key's record.
type beginRes struct {
	row     *sessionRow
	now     time.Time
	Locked  bool
	KFound  bool
	KFP     []byte
	KState  string
	KCode   sql.NullInt64
	KBody   []byte
	KLive   bool
	KLapsed bool
	KOwner  string
}

// beginSubmits runs a batch of BeginSubmit as one statement. Two submits
// of one session in a batch: the update takes the lock for one of them;
// the other finds the session unlocked in its snapshot but no lock taken,
// and is told the session is busy (refusalOf).
func (s *Store) beginSubmits(ctx context.Context, reqs []beginReq) ([]beginRes, error) {
	now := s.now()
	n := len(reqs)
	ids, tenants, untils, routes, keys := strs(n), strs(n), strs(n), strs(n), strs(n)
	fps := make([][]byte, n)
	for i, r := range reqs {
		ids[i], tenants[i], untils[i], routes[i], keys[i], fps[i] = r.id, r.tenantID, pgTime(r.until), r.route, r.key, r.fp
	}
	var rows []struct {
		Ord int64 `db:"ord"`
		sessionRow
		Locked  bool          `db:"locked"`
		KFound  bool          `db:"k_found"`
		KFP     []byte        `db:"k_fp"`
		KState  string        `db:"k_state"`
		KCode   sql.NullInt64 `db:"k_code"`
		KBody   []byte        `db:"k_body"`
		KLive   bool          `db:"k_live"`
		KLapsed bool          `db:"k_lapsed"`
		KOwner  string        `db:"k_owner"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		WITH r AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])
			WITH ORDINALITY AS r(id, tenant_id, until, route, ikey, fp, ord)),
		cur AS (
			SELECT r.ord, c.* FROM r JOIN LATERAL (
				SELECT `+sessionColumns+` FROM payment_sessions ps
				WHERE ps.id = r.id AND ps.tenant_id = r.tenant_id AND ps.id = ANY ($1::text[])) c ON true),
		k AS (
			SELECT r.ord, k.fingerprint, k.state, k.response_code, k.response_body, k.owner,
				(k.expires_at IS NULL OR k.expires_at > $7) AND (k.state = 'done' OR k.locked_until > $7) AS live,
				k.state = 'in_flight' AND k.owner LIKE 'pay\_%' AND k.locked_until <= $7 AND k.fingerprint = r.fp AS lapsed
			FROM r JOIN idempotency_keys k ON r.ikey <> '' AND k.tenant_id = r.tenant_id AND k.route = r.route
			  AND k.key = r.ikey),
		u AS (
			UPDATE payment_sessions ps SET submit_lock_until = r.until::timestamptz
			FROM r
			WHERE ps.id = r.id AND ps.id = ANY ($1::text[]) AND ps.tenant_id = r.tenant_id
			  AND ps.status IN ('ACTIVE', 'FAILED') AND ps.expires_on > $7 AND ps.attempts_used < ps.retry_limit
			  AND (ps.submit_lock_until IS NULL OR ps.submit_lock_until <= $7)
			  AND NOT EXISTS (SELECT 1 FROM k WHERE k.ord = r.ord AND (k.live OR k.lapsed))
			RETURNING r.ord)
		SELECT cur.*, EXISTS (SELECT 1 FROM u WHERE u.ord = cur.ord) AS locked, k.fingerprint IS NOT NULL AS k_found,
			COALESCE(k.fingerprint, ''::bytea) AS k_fp, COALESCE(k.state, '') AS k_state, k.response_code AS k_code,
			k.response_body AS k_body, COALESCE(k.live, false) AS k_live, COALESCE(k.lapsed, false) AS k_lapsed,
			COALESCE(k.owner, '') AS k_owner
		FROM cur LEFT JOIN k USING (ord)`,
		pq.Array(ids), pq.Array(tenants), pq.Array(untils), pq.Array(routes), pq.Array(keys), pq.ByteaArray(fps), now)
	if err != nil {
		return nil, err
	}
	out := make([]beginRes, n)
	for i := range out {
		out[i].now = now
	}
	for _, r := range rows {
		row := r.sessionRow
		out[r.Ord-1] = beginRes{row: &row, now: now, Locked: r.Locked, KFound: r.KFound, KFP: r.KFP, KState: r.KState,
			KCode: r.KCode, KBody: r.KBody, KLive: r.KLive, KLapsed: r.KLapsed, KOwner: r.KOwner}
	}
	return out, nil
}

// refusalOf says why a session that could not be locked takes no submit.
func refusalOf(sess payment.Session, now time.Time) SessionRefusal {
	switch {
	case sess.Status == payment.SessionCompleted:
		return SessionIsComplete
	case sess.Status == payment.SessionCanceled:
		return SessionIsCanceled
	case sess.Status == payment.SessionExpired || !now.Before(sess.ExpiresOn):
		return SessionIsExpired
	case sess.Status == payment.SessionProcessing || sess.SubmitLocked:
		return SessionIsBusy
	case sess.AttemptsUsed >= sess.RetryLimit:
		return SessionNoRetries
	}
	// it changed between the read and the lock: let the client try again
	return SessionIsBusy
}

type startReq struct {
	p         payment.Payment
	lockUntil time.Time
	idem      *IdemKey
	idemFP    []byte
	idemUntil time.Time
}

type startRes struct {
	held bool // the session was still this submit's, in a state that takes it
	got  bool // the key's advisory lock was ours
}

// startSessionPayments runs a batch of submits' payments (sessions that
// settle no invoice) as one statement: for each session still held by the
// submit's lock, in a state that takes a submit, and whose key's advisory
// lock is free, the payment with its audit row, the session → PROCESSING
// with its audit row, and the key's in-flight marker. Sessions are locked in
// id order.
func (s *Store) startSessionPayments(ctx context.Context, reqs []startReq) ([]startRes, error) {
	now := s.now()
	n := len(reqs)
	var (
		ids, tenants, currencies, methods, tokens, sessions, metas, actors = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		created, locks, reasons, routes, ikeys, iuntil                     = strs(n), strs(n), strs(n), strs(n), strs(n), strs(n)
		amounts, ilocks                                                    = make([]int64, n), make([]int64, n)
		ifps                                                               = make([][]byte, n)
	)
	for i, r := range reqs {
		p := r.p
		meta, err := json.Marshal(p.Metadata)
		if err != nil {
			return nil, err
		}
		ids[i], tenants[i], amounts[i], currencies[i], methods[i], tokens[i] = p.ID, p.TenantID, p.Amount.Minor, p.Amount.Currency, string(p.Method), p.PaymentMethodID
		sessions[i], metas[i], actors[i], created[i], locks[i] = p.SessionID, string(meta), p.CreatedBy, pgTime(p.CreatedAt), pgTime(r.lockUntil)
		reasons[i] = "submitted (" + string(p.Method) + ")"
		ifps[i] = []byte{}
		if r.idem != nil {
			routes[i], ikeys[i], ifps[i], ilocks[i], iuntil[i] = r.idem.Route, r.idem.Key, r.idemFP, r.idem.lockID(), pgTime(r.idemUntil)
		}
	}
	var rows []struct {
		Ord  int64 `db:"ord"`
		Held bool  `db:"held"`
		Got  bool  `db:"got"`
	}
	err := sqlx.SelectContext(ctx, s.q, &rows, `
		WITH r AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bytea[], $16::int8[], $17::text[])
			WITH ORDINALITY AS r(id, tenant_id, amount, currency, method, token, session_id, metadata, actor, created_at,
				lock_until, reason, route, ikey, ifp, ilock, iuntil, ord)),
		s AS (
			SELECT ps.id, ps.status AS from_status FROM payment_sessions ps
			WHERE ps.id = ANY ($7::text[]) AND ps.status IN ('ACTIVE', 'FAILED') AND ps.expires_on > $18
			  AND ps.attempts_used < ps.retry_limit
			  AND ps.submit_lock_until = (SELECT r.lock_until::timestamptz FROM r WHERE r.session_id = ps.id LIMIT 1)
			ORDER BY ps.id FOR UPDATE),
		lk AS (
			SELECT r.ord, CASE WHEN r.ikey = '' THEN true ELSE pg_try_advisory_xact_lock(r.ilock) END AS got
			FROM r JOIN s ON s.id = r.session_id),
		ok AS (SELECT r.*, s.from_status FROM r JOIN s ON s.id = r.session_id JOIN lk USING (ord) WHERE lk.got),
		p AS (
			INSERT INTO payments (id, tenant_id, surface, amount, currency, method, payment_method_id,
				destination_type, destination_id, invoice_id, process_payment, track_attempts, status, next_step,
				next_step_at, step_seq, metadata, created_by, updated_by, created_at, updated_at, session_id)
			SELECT id, tenant_id, 'sessions', amount, currency, method, token, 'SESSION', session_id, NULL, true, true,
				'PENDING', 'create', created_at::timestamptz, 1, metadata::jsonb, actor, actor, created_at::timestamptz,
				created_at::timestamptz, session_id
			FROM ok ORDER BY ord),
		pe AS (
			INSERT INTO payment_events (payment_id, tenant_id, from_status, to_status, reason, attempt_number, actor, created_at)
			SELECT id, tenant_id, NULL, 'PENDING', 'created by a payment session submit', 0, actor, created_at::timestamptz
			FROM ok ORDER BY ord),
		su AS (
			UPDATE payment_sessions ps SET status = 'PROCESSING', payment_id = ok.id, attempts_used = ps.attempts_used + 1,
				submit_lock_until = NULL, last_error_code = '', last_error_msg = '', updated_at = ok.created_at::timestamptz
			FROM ok WHERE ps.id = ok.session_id AND ps.id = ANY ($7::text[])),
		se AS (
			INSERT INTO payment_session_events (session_id, tenant_id, payment_id, from_status, to_status, reason, actor, created_at)
			SELECT session_id, tenant_id, id, from_status, 'PROCESSING', reason, actor, created_at::timestamptz FROM ok ORDER BY ord),
		k AS (
			INSERT INTO idempotency_keys (tenant_id, route, key, fingerprint, state, owner, locked_until, expires_at, created_at)
			SELECT tenant_id, route, ikey, ifp, 'in_flight', id, iuntil::timestamptz, iuntil::timestamptz, created_at::timestamptz
			FROM ok WHERE ikey <> ''
			ON CONFLICT (tenant_id, route, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'in_flight',
				owner = EXCLUDED.owner, locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
				created_at = EXCLUDED.created_at, response_code = NULL, response_body = NULL
			WHERE (idempotency_keys.expires_at IS NOT NULL AND idempotency_keys.expires_at <= EXCLUDED.created_at)
			   OR (idempotency_keys.state <> 'done' AND idempotency_keys.locked_until <= EXCLUDED.created_at))
		SELECT r.ord, lk.ord IS NOT NULL AS held, COALESCE(lk.got, false) AS got FROM r LEFT JOIN lk USING (ord)`,
		pq.Array(ids), pq.Array(tenants), pq.Array(amounts), pq.Array(currencies), pq.Array(methods), pq.Array(tokens),
		pq.Array(sessions), pq.Array(metas), pq.Array(actors), pq.Array(created), pq.Array(locks), pq.Array(reasons),
		pq.Array(routes), pq.Array(ikeys), pq.ByteaArray(ifps), pq.Array(ilocks), pq.Array(iuntil), now)
	if err != nil {
		return nil, err
	}
	out := make([]startRes, n)
	for _, r := range rows {
		out[r.Ord-1] = startRes{held: r.Held, got: r.Got}
	}
	return out, nil
}

// completeIdempotents stores a batch of answers of requests whose keys
// were marked in flight (CompleteIdempotent), in one statement.
func (s *Store) completeIdempotents(ctx context.Context, ws []IdemWrite) ([]struct{}, error) {
	now := s.now()
	n := len(ws)
	tenants, routes, keys, expires := strs(n), strs(n), strs(n), strs(n)
	fps, bodies := make([][]byte, n), make([][]byte, n)
	codes := make([]int64, n)
	for i, w := range ws {
		tenants[i], routes[i], keys[i], fps[i], codes[i], bodies[i] = w.Key.TenantID, w.Key.Route, w.Key.Key, w.Fingerprint, int64(w.Code), w.Body
		if w.TTL > 0 {
			expires[i] = pgTime(now.Add(w.TTL))
		}
		if fps[i] == nil {
			fps[i] = []byte{}
		}
		if bodies[i] == nil {
			bodies[i] = []byte{}
		}
	}
	_, err := s.q.ExecContext(ctx, `
		UPDATE idempotency_keys k SET state = 'done', owner = '', locked_until = $8,
			expires_at = NULLIF(r.expires, '')::timestamptz, response_code = r.code, response_body = r.body
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::int8[], $7::bytea[])
			AS r(tenant_id, route, key, fp, expires, code, body)
		WHERE k.tenant_id = r.tenant_id AND k.route = r.route AND k.key = r.key AND k.fingerprint = r.fp
		  AND k.state = 'in_flight'`,
		pq.Array(tenants), pq.Array(routes), pq.Array(keys), pq.ByteaArray(fps), pq.Array(expires), pq.Array(codes),
		pq.ByteaArray(bodies), now)
	if err != nil {
		return nil, err
	}
	return make([]struct{}, n), nil
}
