package store

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
)

// Waking a payment session's submit when its payment's outcome commits,
// instead of polling the payment: the statement that records a session
// payment's move to a status a submit answers with (SUCCEEDED, FAILED,
// CANCELED, REQUIRES_ACTION, SENT) sends the payment's id on
// SessionPaymentChannel (pg_notify in applyRows, delivered at commit), and
// every process that waits listens on one connection of its own.
//
// A notification is only a hint to read the payment again: Postgres stays
// the truth. One can be lost (the listener's connection drops, a
// transition made by another statement sends none); the waiter then learns
// the outcome from its fallback poll, later. After a reconnect every
// waiter is woken, as anything may have been missed meanwhile.

// SessionPaymentChannel is the LISTEN/NOTIFY channel of session payments'
// outcomes: the payload is a comma-separated list of payment ids.
const SessionPaymentChannel = "payd_session_payment"

// paymentWaits is the process's listener and its waiters, shared by every
// Store derived from one Open; it starts with the first WaitPayment.
type paymentWaits struct {
	url string

	mu      sync.Mutex
	started bool
	live    bool // the listener is connected and listening
	waiters map[string][]chan struct{}
}

// WaitPayment returns a channel closed when a notification names the
// payment (or the listener reconnected), and a func that stops waiting.
// live is false while the listener is not connected: the caller should
// then poll as if there were no wake-ups.
func (s *Store) WaitPayment(id string) (woken <-chan struct{}, stop func(), live bool) {
	w := s.waits
	ch := make(chan struct{})
	w.mu.Lock()
	if !w.started {
		w.started = true
		go w.listen(s.bg)
	}
	w.waiters[id] = append(w.waiters[id], ch)
	live = w.live
	w.mu.Unlock()
	return ch, func() { w.drop(id, ch) }, live
}

func (w *paymentWaits) drop(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.waiters, id)
	} else {
		w.waiters[id] = list
	}
}

// wake closes the channels of the payments named (all of them for nil).
func (w *paymentWaits) wake(ids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ids == nil {
		for id, list := range w.waiters {
			for _, c := range list {
				close(c)
			}
			delete(w.waiters, id)
		}
		return
	}
	for _, id := range ids {
		for _, c := range w.waiters[id] {
			close(c)
		}
		delete(w.waiters, id)
	}
}

func (w *paymentWaits) setLive(live bool) {
	w.mu.Lock()
	w.live = live
	w.mu.Unlock()
}

// listen holds the LISTEN connection until ctx ends (Store.Close),
// reconnecting as lib/pq's Listener does.
func (w *paymentWaits) listen(ctx context.Context) {
	l := pq.NewListener(w.url, 50*time.Millisecond, 2*time.Second, func(ev pq.ListenerEventType, _ error) {
		switch ev {
		case pq.ListenerEventReconnected: // lib/pq listens again before it reports this
			w.setLive(true)
		case pq.ListenerEventDisconnected, pq.ListenerEventConnectionAttemptFailed:
			w.setLive(false)
		}
	})
	defer l.Close()
	// live from the LISTEN's acknowledgement: a wake-up cannot be missed
	// after it (Listen waits for a connection; Close ends that wait)
	go func() {
		if err := l.Listen(SessionPaymentChannel); err == nil {
			w.setLive(true)
		}
	}()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			w.setLive(false)
			w.wake(nil)
			return
		case n := <-l.Notify:
			if n == nil {
				// reconnected: notifications may have been lost meanwhile
				w.wake(nil)
				continue
			}
			w.wake(strings.Split(n.Extra, ","))
		case <-ping.C:
			_ = l.Ping()
		}
	}
}
