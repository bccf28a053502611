package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// IdemState is what LookupIdempotent found.
type IdemState int

const (
	IdemNew      IdemState = iota // nothing stored: the request may run
	IdemInFlight                  // another request with this key is running
	IdemReplay                    // a completed response is stored
	IdemMismatch                  // the key was used with another body
)

// IdemRecord is a stored response.
type IdemRecord struct {
	State IdemState
	Code  int
	Body  []byte
}

// IdemKey scopes an Idempotency-Key.
type IdemKey struct {
	TenantID string
	Route    string
	Key      string
}

// The Idempotency-Key protocol of intake, in one transaction (or one
// statement) with the request's effects:
//
//  1. LookupIdempotent: a stored answer is replayed (or the key's reuse
//     with another body refused) before any work;
//  2. the request's transaction takes the key's advisory lock
//     (LockIdempotent, or in CreatePayment's statement): a duplicate that
//     arrives while the first still runs finds it taken and answers 409;
//  3. the answer is written with the effects (PutIdempotent): both commit,
//     or neither. A crash leaves nothing behind, so there is no lease to
//     wait out, and a request that lost its connection can never commit
//     after a retry did.

// IdemWrite is the record a request stores with its effects.
type IdemWrite struct {
	Key         IdemKey
	Fingerprint []byte
	TTL         time.Duration // 0: kept forever
	Code        int
	Body        []byte
}

// lockID names the key's advisory lock: 8 bytes of SHA-256 of the scoped
// key. A collision between two keys only makes one of them wait for (409)
// the other.
func (k IdemKey) lockID() int64 {
	h := sha256.New()
	for _, p := range []string{k.TenantID, k.Route, k.Key} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

// LookupIdempotent reports what is stored for a key: IdemNew when nothing
// (or only an expired record) is, else a replay, a mismatch (another body
// under this key) or, for a record an older payd left in flight whose lease
// is still running, IdemInFlight.
func (s *Store) LookupIdempotent(ctx context.Context, k IdemKey, fingerprint []byte) (IdemRecord, error) {
	var row struct {
		Fingerprint []byte        `db:"fingerprint"`
		State       string        `db:"state"`
		Code        sql.NullInt64 `db:"response_code"`
		Body        []byte        `db:"response_body"`
		Live        bool          `db:"live"`
	}
	err := s.q.QueryRowxContext(ctx, `SELECT fingerprint, state, response_code, response_body,
			(expires_at IS NULL OR expires_at > $4) AND (state = 'done' OR locked_until > $4) AS live
		FROM idempotency_keys WHERE tenant_id = $1 AND route = $2 AND key = $3`,
		k.TenantID, k.Route, k.Key, s.now()).StructScan(&row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return IdemRecord{State: IdemNew}, nil
	case err != nil:
		return IdemRecord{}, translate(fmt.Errorf("read idempotency key: %w", err))
	case !row.Live:
		return IdemRecord{State: IdemNew}, nil
	case !bytes.Equal(row.Fingerprint, fingerprint):
		return IdemRecord{State: IdemMismatch}, nil
	case row.State != "done":
		return IdemRecord{State: IdemInFlight}, nil
	}
	return IdemRecord{State: IdemReplay, Code: int(row.Code.Int64), Body: row.Body}, nil
}

// ErrIdemInFlight: another request holds the key right now.
var ErrIdemInFlight = errors.New("idempotency key in use by a request in flight")

// ErrIdemTaken: the key was stored by another request after this one
// looked it up; look it up again for the answer to replay.
var ErrIdemTaken = errors.New("idempotency key stored meanwhile")

// LockIdempotent takes the key's advisory lock for the rest of the
// transaction, or returns ErrIdemInFlight when another request holds it.
func (s *Store) LockIdempotent(ctx context.Context, k IdemKey) error {
	if s.tx == nil {
		return errors.New("LockIdempotent needs a transaction")
	}
	var got bool
	if err := s.q.QueryRowxContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, k.lockID()).Scan(&got); err != nil {
		return translate(fmt.Errorf("lock idempotency key: %w", err))
	}
	if !got {
		return ErrIdemInFlight
	}
	return nil
}

// PutIdempotent stores a request's answer in its transaction, replacing
// only an expired record (or one an older payd left in flight past its
// lease); a live one is ErrIdemTaken.
func (s *Store) PutIdempotent(ctx context.Context, w IdemWrite) error {
	now := s.now()
	var expires any
	if w.TTL > 0 {
		expires = now.Add(w.TTL)
	}
	res, err := s.q.ExecContext(ctx, `
		INSERT INTO idempotency_keys (tenant_id, route, key, fingerprint, state, owner, locked_until, expires_at, created_at,
			response_code, response_body)
		VALUES ($1, $2, $3, $4, 'done', '', $5, $6, $5, $7, $8)
		ON CONFLICT (tenant_id, route, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'done', owner = '',
			locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at,
			response_code = EXCLUDED.response_code, response_body = EXCLUDED.response_body
		WHERE (idempotency_keys.expires_at IS NOT NULL AND idempotency_keys.expires_at <= $5)
		   OR (idempotency_keys.state <> 'done' AND idempotency_keys.locked_until <= $5)`,
		w.Key.TenantID, w.Key.Route, w.Key.Key, w.Fingerprint, now, expires, w.Code, w.Body)
	if err != nil {
		return translate(fmt.Errorf("store idempotent answer: %w", err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrIdemTaken
	}
	return nil
}

// ForgetIdempotent deletes a key's record if it is expired (or an older
// payd's in-flight marker past its lease), so a new request may use it.
func (s *Store) ForgetIdempotent(ctx context.Context, k IdemKey) error {
	_, err := s.q.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND route = $2 AND key = $3
		AND ((expires_at IS NOT NULL AND expires_at <= $4) OR (state <> 'done' AND locked_until <= $4))`,
		k.TenantID, k.Route, k.Key, s.now())
	return translate(err)
}
