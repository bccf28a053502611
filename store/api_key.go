package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

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
}

// Authenticate finds the tenant of a secret key. Unknown and revoked keys
// are payment.ErrNotFound.
func (s *Store) Authenticate(ctx context.Context, secret string) (Principal, error) {
	sum := sha256.Sum256([]byte(secret))
	var row struct {
		ID       string `db:"id"`
		TenantID string `db:"tenant_id"`
		Hash     []byte `db:"key_hash"`
	}
	err := s.q.QueryRowxContext(ctx, `
		SELECT id, tenant_id, key_hash FROM api_keys
		WHERE key_hash = $1 AND revoked_at IS NULL`, sum[:]).StructScan(&row)
	if err != nil {
		return Principal{}, translate(fmt.Errorf("authenticate: %w", err))
	}
	// The index found the row by hash; compare again in constant time so the
	// decision itself does not depend on early-exit byte comparison.
	if subtle.ConstantTimeCompare(row.Hash, sum[:]) != 1 {
		return Principal{}, payment.ErrNotFound
	}
	return Principal{TenantID: row.TenantID, KeyID: row.ID}, nil
}
