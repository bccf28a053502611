package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/payd/payd/connector"
)

// NotifyOrder is the order in which a batch of notifications is delivered.
type NotifyOrder string

const (
	NotifyInOrder  NotifyOrder = ""         // as the events happened
	NotifyReversed NotifyOrder = "reversed" // newest first: a return before its settlement
	NotifyShuffled NotifyOrder = "shuffled" // seeded by Config.Seed
)

// NotifyConfig makes the sandbox push signed notifications, as a real PSP
// or bank does, when a card charge completes (charge.succeeded,
// charge.failed), a bank payment settles (payment.settled) and when it is
// returned (payment.returned). Each is a POST of a connector.Notification
// with the connector.NotificationSignatureHeader. The delivery knobs make
// them arrive duplicated, late and out of order, as real ones may.
type NotifyConfig struct {
	// URL receives the notifications; empty sends nothing until SetNotifyURL.
	URL string
	// Secret signs them (HMAC-SHA256); it is never sent or logged.
	Secret string
	// Copies delivers every notification this many times (0 or 1: once).
	Copies int
	// Order is applied to each batch, copies included.
	Order NotifyOrder
	// Delay holds every batch this long before delivering it.
	Delay time.Duration
	// Batch gathers notifications for this long and delivers them together
	// (in Order); zero delivers each at once.
	Batch time.Duration
	// Hold gathers notifications until FlushNotifications (tests,
	// POST /notifications/flush).
	Hold bool
	// Client posts them; nil means a client with a 10 s timeout.
	Client *http.Client
}

const notifyTries = 5

// maxNotifyCopies bounds Copies (NotifyConfig and NotifyFaults).
const maxNotifyCopies = 100

type notifier struct {
	cfg NotifyConfig
	now func() time.Time

	mu      sync.Mutex
	url     string
	pending []connector.Notification
	drop    bool // NotifyFaults.Drop: emit sends nothing
	batch   *time.Timer
	timers  map[*time.Timer]bool
	rng     *mrand.Rand
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newNotifier(cfg NotifyConfig, now func() time.Time, seed int64) *notifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Copies < 1 {
		cfg.Copies = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := uint64(seed)
	return &notifier{cfg: cfg, now: now, url: cfg.URL, timers: map[*time.Timer]bool{},
		rng: mrand.New(mrand.NewPCG(s^0x5bd1e995, s)), ctx: ctx, cancel: cancel}
}

// setDelivery applies NotifyFaults (SetFaults).
func (n *notifier) setDelivery(f NotifyFaults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg.Copies = max(f.Copies, 1)
	n.cfg.Order, n.cfg.Delay, n.cfg.Batch, n.drop = f.Order, f.Delay, f.Batch, f.Drop
}

// SetNotifyURL points notifications at url (for a receiver that starts
// after the sandbox, such as an httptest server).
func (s *Sandbox) SetNotifyURL(url string) {
	if s.notify == nil {
		return
	}
	s.notify.mu.Lock()
	s.notify.url = url
	s.notify.mu.Unlock()
}

// FlushNotifications delivers every gathered notification now, in the
// configured order, and returns how many (before copies) it flushed.
func (s *Sandbox) FlushNotifications() int {
	if s.notify == nil {
		return 0
	}
	return s.notify.flush()
}

// Close stops the sandbox's notification timers and waits for deliveries in
// flight to end. The gateway calls keep working.
func (s *Sandbox) Close() {
	if s.notify == nil {
		return
	}
	n := s.notify
	n.mu.Lock()
	n.closed = true
	for t := range n.timers {
		t.Stop()
	}
	if n.batch != nil {
		n.batch.Stop()
	}
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
}

// notifyBookedLocked is called when money moved: a card charge notifies at
// once; a bank payment notifies when it settles and, for a 100XX account,
// when it is returned.
func (s *Sandbox) notifyBookedLocked(rec *chargeRecord) {
	if s.notify == nil {
		return
	}
	key, ref := rec.req.IdempotencyKey, rec.result.Reference
	if !rec.bank {
		s.notify.emit(connector.NotifyChargeSucceeded, key, ref, s.now())
		return
	}
	s.notify.at(rec.settleAt, connector.NotifyPaymentSettled, key, ref)
	if rec.returnCode != "" {
		s.notify.at(rec.settleAt.Add(s.cfg.ReturnDelay), connector.NotifyPaymentReturned, key, ref)
	}
}

// notifyDeclinedLocked is called when a charge was processed and declined.
func (s *Sandbox) notifyDeclinedLocked(rec *chargeRecord) {
	if s.notify == nil {
		return
	}
	s.notify.emit(connector.NotifyChargeFailed, rec.req.IdempotencyKey, rec.result.Reference, s.now())
}

// at emits a notification when the sandbox's clock reaches t.
func (n *notifier) at(t time.Time, typ, key, ref string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	var timer *time.Timer
	timer = time.AfterFunc(t.Sub(n.now()), func() {
		n.mu.Lock()
		delete(n.timers, timer)
		n.mu.Unlock()
		n.emit(typ, key, ref, t)
	})
	n.timers[timer] = true
}

func (n *notifier) emit(typ, key, ref string, at time.Time) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	msg := connector.Notification{ID: "evt_" + hex.EncodeToString(b), Type: typ, IdempotencyKey: key,
		GatewayReference: ref, OccurredAt: at.UTC()}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.drop {
		return
	}
	n.pending = append(n.pending, msg)
	switch {
	case n.cfg.Hold:
	case n.cfg.Batch > 0:
		if n.batch == nil {
			n.batch = time.AfterFunc(n.cfg.Batch, func() { n.flush() })
		}
	default:
		n.flushLocked()
	}
}

func (n *notifier) flush() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.flushLocked()
}

func (n *notifier) flushLocked() int {
	n.batch = nil
	batch := n.pending
	n.pending = nil
	if len(batch) == 0 || n.closed {
		return 0
	}
	var out []connector.Notification
	for _, m := range batch {
		for range n.cfg.Copies {
			out = append(out, m)
		}
	}
	switch n.cfg.Order {
	case NotifyReversed:
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case NotifyShuffled:
		n.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	url, delay := n.url, n.cfg.Delay
	n.wg.Add(1)
	go n.deliver(url, out, delay)
	return len(batch)
}

// deliver posts a batch in order, each with a few retries, as a gateway
// does; a notification that cannot be delivered is dropped (payd's polling
// does not depend on it).
func (n *notifier) deliver(url string, batch []connector.Notification, delay time.Duration) {
	defer n.wg.Done()
	if url == "" {
		return
	}
	if delay > 0 {
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	for _, m := range batch {
		body, err := json.Marshal(m)
		if err != nil {
			continue
		}
		for try := range notifyTries {
			if n.post(url, body) || n.ctx.Err() != nil {
				break
			}
			select {
			case <-n.ctx.Done():
			case <-time.After(50 * time.Millisecond << try):
			}
		}
	}
}

// post sends one notification; true when it need not be sent again.
func (n *notifier) post(url string, body []byte) bool {
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return true
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(connector.NotificationSignatureHeader, connector.SignNotification([]byte(n.cfg.Secret), n.now(), body))
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	// 5xx and 429 are worth another try; any other answer is final
	return resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests
}

func (s *Sandbox) handleFlushNotifications(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{"flushed": s.FlushNotifications()})
}
