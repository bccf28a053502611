package store

import (
	"context"
	"sync"
	"time"

	"github.com/lib/pq"
)

// Telling every process at once that an API key changed, so that caches of
// key lookups (intake's) never accept a revoked key for long: the trigger
// of migration 00020 sends the key's id on APIKeyChannel when its
// revocation changes (revoked now, or scheduled by a rotation's grace) or
// it is deleted, at commit, whichever statement made the change; every
// watching process LISTENs on a connection of its own.
//
// A notification can be missed only while the listener is not connected
// (or its connection hangs): the watcher is then told to trust its cache
// only briefly (Listening with a zero time), and when the listener is
// back, to forget everything (KeysChanged(nil)), as anything may have
// changed meanwhile. A ping every keyPing confirms the connection: each
// answer extends the trust by keyTrust, so a connection that hangs without
// breaking (no answer, no error) stops being trusted within keyTrust.

// APIKeyChannel is the LISTEN/NOTIFY channel of API key changes: the
// payload is the key's id.
const APIKeyChannel = "payd_api_keys"

const (
	keyPing  = 250 * time.Millisecond
	keyTrust = 750 * time.Millisecond
)

// KeyWatcher is told what to forget of its API key lookups.
type KeyWatcher interface {
	// KeysChanged: these keys changed (revoked, revocation scheduled,
	// deleted); nil: any key may have changed.
	KeysChanged(ids []string)
	// Listening: notifications are being received, and every change
	// committed before now will have been told, until until; a zero until
	// means the listener is down: any change may go unheard.
	Listening(until time.Time)
}

// WatchAPIKeys tells w of every API key change until the store is closed,
// from a listener connection of its own.
func (s *Store) WatchAPIKeys(w KeyWatcher) {
	go watchKeys(s.bg, s.waits.url, w)
}

func watchKeys(ctx context.Context, url string, w KeyWatcher) {
	// up: listening, with nothing missed left unforgotten. It is changed,
	// and the trust told, under mu, so that a ping's answer that arrives
	// as the connection is lost cannot extend the trust after it ended.
	var mu sync.Mutex
	up := false
	setUp := func(v bool, forget bool, until time.Time) {
		mu.Lock()
		defer mu.Unlock()
		up = v
		if forget {
			w.KeysChanged(nil)
		}
		w.Listening(until)
	}
	l := pq.NewListener(url, 50*time.Millisecond, 2*time.Second, func(ev pq.ListenerEventType, _ error) {
		switch ev {
		case pq.ListenerEventDisconnected, pq.ListenerEventConnectionAttemptFailed:
			setUp(false, false, time.Time{})
		}
	})
	defer l.Close()
	listened := make(chan error, 1)
	go func() { listened <- l.Listen(APIKeyChannel) }()
	// The pings run beside the loop: one that hangs must not hold up the
	// notifications, and only its answer extends the trust.
	go func() {
		t := time.NewTicker(keyPing)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sent := time.Now()
			if l.Ping() != nil {
				continue
			}
			mu.Lock()
			if up && ctx.Err() == nil {
				w.Listening(sent.Add(keyTrust))
			}
			mu.Unlock()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			setUp(false, false, time.Time{})
			return
		case err := <-listened:
			if err != nil {
				continue // Listen fails only when the listener is closed
			}
			// changes made before the LISTEN took effect were not heard
			setUp(true, true, time.Now().Add(keyTrust))
		case n := <-l.Notify:
			if n == nil {
				// reconnected (lib/pq listens again first): notifications
				// may have been lost meanwhile
				setUp(true, true, time.Now().Add(keyTrust))
				continue
			}
			w.KeysChanged([]string{n.Extra})
		}
	}
}
