package intake

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// authCache keeps recent key lookups for a short TTL, keyed by the key's
// SHA-256 (never the secret itself), so hot keys cost no database round trip.
//
// A revoked key must be refused by every intake process within a second,
// TTL or not: the store's key watch (store.WatchAPIKeys, Postgres
// LISTEN/NOTIFY) tells the cache which keys changed, and it forgets them.
// While the watch is not known to be listening (not connected yet, lost,
// or its pings unanswered), an entry is trusted only for fallbackTTL after
// it was looked up. A lookup that raced with a change (it read the key
// before the change committed, the change was heard before the lookup was
// cached) is not cached: gen counts the changes heard.
type authCache struct {
	ttl, fallbackTTL time.Duration
	dbNow            func() time.Time // the store's clock, which RevokesAt is on

	mu         sync.RWMutex
	m          map[[32]byte]authEntry
	gen        uint64    // changes heard so far
	trustUntil time.Time // the watch is listening until then (zero: it is not)
}

type authEntry struct {
	p       store.Principal
	put     time.Time
	expires time.Time
}

func newAuthCache(ttl, fallbackTTL time.Duration, dbNow func() time.Time) *authCache {
	if dbNow == nil {
		dbNow = time.Now
	}
	return &authCache{ttl: ttl, fallbackTTL: fallbackTTL, dbNow: dbNow, m: map[[32]byte]authEntry{}}
}

func (c *authCache) get(h [32]byte) (store.Principal, bool) {
	now := time.Now()
	c.mu.RLock()
	e, ok := c.m[h]
	live := now.Before(c.trustUntil)
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) || (!live && now.Sub(e.put) >= c.fallbackTTL) {
		return store.Principal{}, false
	}
	return e.p, true
}

// generation is taken before a lookup and given back to put.
func (c *authCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches a lookup made at generation gen, unless a change was heard
// since; never past the key's scheduled revocation.
func (c *authCache) put(h [32]byte, p store.Principal, gen uint64) {
	now := time.Now()
	expires := now.Add(c.ttl)
	if !p.RevokesAt.IsZero() {
		if at := now.Add(p.RevokesAt.Sub(c.dbNow())); at.Before(expires) {
			expires = at
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.m) > 10000 {
		clear(c.m)
	}
	c.m[h] = authEntry{p: p, put: now, expires: expires}
}

// KeysChanged implements store.KeyWatcher: forget the keys (all for nil).
func (c *authCache) KeysChanged(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if ids == nil {
		clear(c.m)
		return
	}
	for h, e := range c.m {
		for _, id := range ids {
			if e.p.KeyID == id {
				delete(c.m, h)
			}
		}
	}
}

// Listening implements store.KeyWatcher.
func (c *authCache) Listening(until time.Time) {
	c.mu.Lock()
	c.trustUntil = until
	c.mu.Unlock()
}

// apiKey reads the secret from Authorization: Bearer <key>, a bare
// Authorization: <key> (the payment-sessions vendor's own clients send that
// for keys not shaped like the vendor's), or x-api-key.
func apiKey(r *http.Request) string {
	if k := r.Header.Get("x-api-key"); k != "" {
		return strings.TrimSpace(k)
	}
	a := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	if a != "" && !strings.ContainsAny(a, " \t") {
		return a // a bare key: one token, no scheme
	}
	return ""
}

// authenticate resolves the tenant of the request's key, then applies the
// tenant's rate limit.
func (s *Server) authenticate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := apiKey(r)
		if secret == "" || len(secret) > 200 {
			s.writeError(w, r, errUnauthorized)
			return
		}
		sum := sha256.Sum256([]byte(secret))
		p, ok := s.auth.get(sum)
		if !ok {
			gen := s.auth.generation()
			var err error
			p, err = s.store.Authenticate(r.Context(), secret)
			if errors.Is(err, payment.ErrNotFound) {
				s.writeError(w, r, errUnauthorized)
				return
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			s.auth.put(sum, p, gen)
		}
		if !s.allow(w, r, p) {
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyPrincipal, p)))
	})
}

// allow applies the per-tenant token bucket kept in Redis. Tokens are
// taken from it a few at a time (rateLeases), so a busy tenant costs one
// Redis round trip per chunk rather than per request. If Redis cannot
// answer, the request is let through: taking payments matters more than
// throttling them, and Postgres is the source of truth.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, p store.Principal) bool {
	if s.limiter == nil {
		return true
	}
	lim := redis_rate.Limit{Rate: s.cfg.RateLimit, Burst: max(s.cfg.RateBurst, 1), Period: time.Second}
	l := s.leases.of(p.TenantID)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.tokens == 0 || now.After(l.expires) {
		ctx, cancel := context.WithTimeout(r.Context(), 250*time.Millisecond)
		res, err := s.limiter.AllowAtMost(ctx, "payd:rate:"+p.TenantID, lim, leaseChunk(lim))
		cancel()
		if err != nil {
			s.log.WarnContext(r.Context(), "rate limiter unavailable; allowing", "err", err)
			return true
		}
		l.tokens, l.expires, l.last = res.Allowed, now.Add(leaseTTL), res
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(lim.Burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(l.last.Remaining+max(l.tokens-1, 0)))
	h.Set("RateLimit-Reset", strconv.Itoa(int((l.last.ResetAfter+time.Second-1)/time.Second)))
	if l.tokens > 0 {
		l.tokens--
		return true
	}
	retry := int((l.last.RetryAfter + time.Second - 1) / time.Second)
	s.writeError(w, r, &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimited, Codes: []string{"rate_limited"},
		Message: "too many requests for this tenant; retry after the Retry-After delay", Retryable: true, RetryAfter: max(retry, 1)})
	return false
}

// Tokens taken from the shared bucket and not used within leaseTTL are
// dropped, so a process never holds more than a chunk (1/50 of a second's
// rate, at most 50) it may not need: the tenant's rate is enforced across
// processes to within a chunk per process per second.
const leaseTTL = time.Second

func leaseChunk(l redis_rate.Limit) int {
	return max(1, min(l.Rate/50, l.Burst, 50))
}

// rateLeases are the tokens each tenant's requests draw from.
type rateLeases struct {
	mu sync.Mutex
	m  map[string]*rateLease
}

type rateLease struct {
	mu      sync.Mutex
	tokens  int // taken from Redis, not used yet
	expires time.Time
	last    *redis_rate.Result // Redis's last answer, for the RateLimit-* headers
}

func (rl *rateLeases) of(tenant string) *rateLease {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.m == nil || len(rl.m) > 10000 {
		rl.m = map[string]*rateLease{}
	}
	l, ok := rl.m[tenant]
	if !ok {
		l = &rateLease{}
		rl.m[tenant] = l
	}
	return l
}
