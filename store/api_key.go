package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/payd/payd/payment"
)

// KeyPrefix starts every secret API key.
const KeyPrefix = "sk_"

// CreateTenant inserts a tenant, or returns the existing one with that name.
func (s *Store) CreateTenant(ctx context.Context, name string) (payment.Tenant, error) {
	t := payment.Tenant{ID: NewID(payment.PrefixTenant), Name: name}
	err := s.q.QueryRowxContext(ctx, `
		INSERT INTO tenants (id, name) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
		RETURNING id`, t.ID, name).Scan(&t.ID)
	if err != nil {
		return t, translate(fmt.Errorf("create tenant: %w", err))
	}
	return t, nil
}

// CreateAPIKey makes a new secret key for a tenant. The secret is returned
// once and only its SHA-256 is stored.
func (s *Store) CreateAPIKey(ctx context.Context, tenantID string) (keyID, secret string, err error) {
	secret = KeyPrefix + randomHex(24)
	keyID = NewID(payment.PrefixKey)
	sum := sha256.Sum256([]byte(secret))
	_, err = s.q.ExecContext(ctx, `
		INSERT INTO api_keys (id, tenant_id, key_hash, hint) VALUES ($1, $2, $3, $4)`,
		keyID, tenantID, sum[:], secret[len(secret)-4:])
	if err != nil {
		return "", "", translate(fmt.Errorf("create api key: %w", err))
	}
	return keyID, secret, nil
}

// Principal is who made a request.
type Principal struct {
	TenantID string
	KeyID    string
	// RevokesAt is when the key stops being accepted, when a rotation's
	// grace scheduled it (zero: not scheduled). A cache of the lookup must
	// not outlive it.
	RevokesAt time.Time
}

// Authenticate finds the tenant of a secret key. Unknown keys, and keys
// revoked (at or before the store's now), are payment.ErrNotFound.
func (s *Store) Authenticate(ctx context.Context, secret string) (Principal, error) {
	sum := sha256.Sum256([]byte(secret))
	var row struct {
		ID        string       `db:"id"`
		TenantID  string       `db:"tenant_id"`
		Hash      []byte       `db:"key_hash"`
		RevokedAt sql.NullTime `db:"revoked_at"`
	}
	err := s.q.QueryRowxContext(ctx, `
		SELECT id, tenant_id, key_hash, revoked_at FROM api_keys
		WHERE key_hash = $1 AND (revoked_at IS NULL OR revoked_at > $2)`, sum[:], s.now()).StructScan(&row)
	if err != nil {
		return Principal{}, translate(fmt.Errorf("authenticate: %w", err))
	}
	// The index found the row by hash; compare again in constant time so the
	// decision itself does not depend on early-exit byte comparison.
	if subtle.ConstantTimeCompare(row.Hash, sum[:]) != 1 {
		return Principal{}, payment.ErrNotFound
	}
	p := Principal{TenantID: row.TenantID, KeyID: row.ID}
	if row.RevokedAt.Valid {
		p.RevokesAt = row.RevokedAt.Time.UTC()
	}
	return p, nil
}

// FindTenant returns the tenant with this id or, failing that, this name.
func (s *Store) FindTenant(ctx context.Context, idOrName string) (payment.Tenant, error) {
	var t payment.Tenant
	err := s.q.QueryRowxContext(ctx, `SELECT id, name FROM tenants WHERE id = $1 OR name = $1
		ORDER BY id = $1 DESC LIMIT 1`, idOrName).Scan(&t.ID, &t.Name)
	if err != nil {
		return t, translate(fmt.Errorf("find tenant %q: %w", idOrName, err))
	}
	return t, nil
}

// APIKey is what an operator may see of a key: never its secret or its
// hash, only the secret's last four characters (Hint).
type APIKey struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	TenantName string     `json:"tenant_name"`
	Hint       string     `json:"hint"` // the secret's last 4 characters
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at"` // in the future while a rotation's grace runs
	// ReplacedBy is the key a rotation created in its place.
	ReplacedBy string `json:"replaced_by,omitempty"`
}

type apiKeyRow struct {
	ID         string       `db:"id"`
	TenantID   string       `db:"tenant_id"`
	TenantName string       `db:"tenant_name"`
	Hint       string       `db:"hint"`
	CreatedAt  time.Time    `db:"created_at"`
	RevokedAt  sql.NullTime `db:"revoked_at"`
	ReplacedBy string       `db:"replaced_by"`
}

func (r apiKeyRow) toKey() APIKey {
	return APIKey{ID: r.ID, TenantID: r.TenantID, TenantName: r.TenantName, Hint: r.Hint, CreatedAt: r.CreatedAt.UTC(),
		RevokedAt: tp(r.RevokedAt), ReplacedBy: r.ReplacedBy}
}

const apiKeySelect = `SELECT k.id, k.tenant_id, t.name AS tenant_name, k.hint, k.created_at, k.revoked_at,
	COALESCE((SELECT e.replaced_by FROM api_key_events e WHERE e.key_id = k.id AND e.replaced_by IS NOT NULL
		ORDER BY e.id DESC LIMIT 1), '') AS replaced_by
	FROM api_keys k JOIN tenants t ON t.id = k.tenant_id`

// APIKeys lists the keys of a tenant (every tenant's for ""), by tenant
// name, then oldest first.
func (s *Store) APIKeys(ctx context.Context, tenantID string) ([]APIKey, error) {
	var rows []apiKeyRow
	if err := sqlx.SelectContext(ctx, s.q, &rows, apiKeySelect+` WHERE $1 = '' OR k.tenant_id = $1
		ORDER BY t.name, k.created_at, k.id`, tenantID); err != nil {
		return nil, translate(fmt.Errorf("list api keys: %w", err))
	}
	out := make([]APIKey, len(rows))
	for i, r := range rows {
		out[i] = r.toKey()
	}
	return out, nil
}

// APIKeyByID returns one key.
func (s *Store) APIKeyByID(ctx context.Context, id string) (APIKey, error) {
	var r apiKeyRow
	if err := s.q.QueryRowxContext(ctx, apiKeySelect+` WHERE k.id = $1`, id).StructScan(&r); err != nil {
		return APIKey{}, translate(fmt.Errorf("load api key %s: %w", id, err))
	}
	return r.toKey(), nil
}

// KeyChange is an operator's revocation or rotation of a key.
type KeyChange struct {
	KeyID  string
	Actor  string // operator:<name>
	Reason string
	// Grace (rotation only) keeps the old key accepted this long after the
	// new one exists; 0 revokes it at once.
	Grace time.Duration
}

// RevokeAPIKey stops accepting a key now, guarded on it still being
// accepted (a key whose rotation grace is running is revoked early), with
// its audit row. payment.ErrNotFound: no such key; payment.ErrStale: it is
// revoked already. Every intake process hears of it at commit (the
// payd_api_keys notification) and drops it from its cache.
func (s *Store) RevokeAPIKey(ctx context.Context, c KeyChange) (APIKey, error) {
	var out APIKey
	err := s.InTx(ctx, func(tx *Store) error {
		now := tx.now()
		k, err := tx.revokeKey(ctx, c.KeyID, now)
		if err != nil {
			return err
		}
		if err := tx.keyEvent(ctx, k, "revoked", now, "", c, now); err != nil {
			return err
		}
		out, err = tx.APIKeyByID(ctx, c.KeyID)
		return err
	})
	return out, err
}

// RotateAPIKey creates a new key for the tenant of an accepted key and
// revokes the old one at now + c.Grace, in one transaction with the audit
// row (which names the new key). The new secret is returned once; only its
// SHA-256 is stored. Errors as RevokeAPIKey's.
func (s *Store) RotateAPIKey(ctx context.Context, c KeyChange) (old APIKey, newKeyID, secret string, err error) {
	err = s.InTx(ctx, func(tx *Store) error {
		now := tx.now()
		k, err := tx.revokeKey(ctx, c.KeyID, now.Add(c.Grace))
		if err != nil {
			return err
		}
		if newKeyID, secret, err = tx.CreateAPIKey(ctx, k.TenantID); err != nil {
			return err
		}
		if err := tx.keyEvent(ctx, k, "rotated", now.Add(c.Grace), newKeyID, c, now); err != nil {
			return err
		}
		old, err = tx.APIKeyByID(ctx, c.KeyID)
		return err
	})
	if err != nil {
		return APIKey{}, "", "", err
	}
	return old, newKeyID, secret, nil
}

// revokeKey sets a key's revoked_at to at, only while the key is accepted
// (not revoked, or its revocation still ahead).
func (s *Store) revokeKey(ctx context.Context, id string, at time.Time) (APIKey, error) {
	var k APIKey
	err := s.q.QueryRowxContext(ctx, `UPDATE api_keys SET revoked_at = $2
		WHERE id = $1 AND (revoked_at IS NULL OR revoked_at > $3) RETURNING id, tenant_id`, id, at, s.now()).
		Scan(&k.ID, &k.TenantID)
	if err == nil {
		return k, nil
	}
	if err = translate(err); !errors.Is(err, payment.ErrNotFound) {
		return k, fmt.Errorf("revoke api key %s: %w", id, err)
	}
	var exists bool
	if err := s.q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)`, id).Scan(&exists); err != nil {
		return k, translate(fmt.Errorf("look up api key %s: %w", id, err))
	}
	if exists {
		return k, fmt.Errorf("api key %s is revoked already: %w", id, payment.ErrStale)
	}
	return k, fmt.Errorf("api key %s: %w", id, payment.ErrNotFound)
}

func (s *Store) keyEvent(ctx context.Context, k APIKey, action string, revokedAt time.Time, replacedBy string, c KeyChange, now time.Time) error {
	var repl any
	if replacedBy != "" {
		repl = replacedBy
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO api_key_events (key_id, tenant_id, action, revoked_at, replaced_by, actor, reason, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, k.ID, k.TenantID, action, revokedAt, repl, c.Actor, c.Reason, now)
	return translate(err)
}
