package intake

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/payd/payd/store"
)

// TestAuthCache: the cache forgets a changed key at once (and every key on
// KeysChanged(nil)); does not cache a lookup that raced with a change;
// trusts an entry only for the fallback TTL while the key watch is not
// listening; and never keeps an entry past its key's scheduled revocation.
func TestAuthCache(t *testing.T) {
	t.Parallel()
	h1, h2 := sha256.Sum256([]byte("sk_one")), sha256.Sum256([]byte("sk_two"))
	p1, p2 := store.Principal{TenantID: "ten_a", KeyID: "key_1"}, store.Principal{TenantID: "ten_a", KeyID: "key_2"}
	c := newAuthCache(time.Minute, 50*time.Millisecond, nil)
	c.Listening(time.Now().Add(time.Hour))

	c.put(h1, p1, c.generation())
	c.put(h2, p2, c.generation())
	if _, ok := c.get(h1); !ok {
		t.Fatal("a fresh entry is missing")
	}
	c.KeysChanged([]string{"key_1"})
	if _, ok := c.get(h1); ok {
		t.Error("a changed key is still cached")
	}
	if _, ok := c.get(h2); !ok {
		t.Error("another key was forgotten")
	}
	c.KeysChanged(nil)
	if _, ok := c.get(h2); ok {
		t.Error("KeysChanged(nil) left a key cached")
	}

	// a lookup that read the key before a change heard since is not cached
	gen := c.generation()
	c.KeysChanged([]string{"key_9"})
	c.put(h1, p1, gen)
	if _, ok := c.get(h1); ok {
		t.Error("a lookup that raced with a change was cached")
	}

	// the watch is down: entries are trusted for the fallback TTL only
	c.put(h1, p1, c.generation())
	c.Listening(time.Time{})
	if _, ok := c.get(h1); !ok {
		t.Error("a fresh entry is not trusted while the watch is down")
	}
	time.Sleep(60 * time.Millisecond)
	if _, ok := c.get(h1); ok {
		t.Error("an entry older than the fallback TTL is trusted while the watch is down")
	}
	c.Listening(time.Now().Add(time.Hour))
	if _, ok := c.get(h1); !ok {
		t.Error("the entry is not trusted once the watch listens again")
	}

	// a rotation's grace: never cached past the key's revocation
	p3 := store.Principal{TenantID: "ten_a", KeyID: "key_3", RevokesAt: time.Now().Add(40 * time.Millisecond)}
	c.put(h2, p3, c.generation())
	if _, ok := c.get(h2); !ok {
		t.Error("a key in its grace is not cached")
	}
	time.Sleep(60 * time.Millisecond)
	if _, ok := c.get(h2); ok {
		t.Error("a key is cached past its scheduled revocation")
	}
}
