package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

func open(t *testing.T) (*store.Store, payment.Tenant) {
	t.Helper()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		t.Fatal(err)
	}
	// migrations run again are a no-op
	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		t.Fatal(err)
	}
	// the store runs as the app role, without DDL rights (roles_test.go)
	st, err := store.Open(ctx, store.Config{URL: app, MaxOpenConns: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tn, err := st.CreateTenant(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	return st, tn
}

func newPayment(t *testing.T, st *store.Store, tn payment.Tenant, amount int64) payment.Payment {
	t.Helper()
	p, err := st.InsertPayment(context.Background(), store.NewPayment{TenantID: tn.ID, Surface: "payments",
		Amount: payment.Money{Minor: amount, Currency: "USD"}, Method: payment.MethodCard, PaymentMethodID: "pm_card_visa",
		ProcessPayment: true, TrackAttempts: true, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// toSubmit moves a new payment's step from create to submit.
func toSubmit(t *testing.T, st *store.Store, p payment.Payment) int {
	t.Helper()
	seq, err := st.Apply(context.Background(), store.Change{PaymentID: p.ID, From: payment.StatusPending, To: payment.StatusPending,
		Seq: p.StepSeq, NextStep: payment.StepSubmit, NextStepAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func TestAPIKeysHashedAndIsolated(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	_, secret, err := st.CreateAPIKey(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := st.Authenticate(ctx, secret)
	if err != nil || pr.TenantID != tn.ID {
		t.Fatalf("authenticate: %+v %v", pr, err)
	}
	if _, err := st.Authenticate(ctx, secret+"x"); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("wrong key: %v", err)
	}
	var n int
	if err := st.DB().QueryRow(`SELECT count(*) FROM api_keys WHERE position($1::bytea in key_hash) > 0 OR hint = $2`, []byte(secret), secret).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("the secret is stored")
	}
}

// TestClaimSubmitOnce: many workers race for one step; exactly one claims
// it and records one attempt intent.
func TestClaimSubmitOnce(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	p := newPayment(t, st, tn, 1000)
	seq := toSubmit(t, st, p)
	var wins, stale atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.ClaimSubmit(context.Background(), p.ID, seq, time.Now().Add(time.Minute), "w")
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, payment.ErrStale):
				stale.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || stale.Load() != 19 {
		t.Fatalf("wins %d stale %d", wins.Load(), stale.Load())
	}
	got, err := st.GetPayment(context.Background(), tn.ID, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != payment.StatusProcessing || len(got.Attempts) != 1 || got.Attempts[0].IdempotencyKey != p.ID+":1" ||
		got.NextStep != payment.StepInquire {
		t.Fatalf("after claim: %+v", got)
	}
}

// TestApplyGuards: a change applies only from the observed status and step
// sequence, writes one audit row, and refuses pairs outside the lifecycle.
func TestApplyGuards(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	p := newPayment(t, st, tn, 1000)
	if _, err := st.Apply(ctx, store.Change{PaymentID: p.ID, From: payment.StatusPending, To: payment.StatusSucceeded, Seq: p.StepSeq}); err == nil {
		t.Fatal("PENDING → SUCCEEDED applied")
	}
	if _, err := st.Apply(ctx, store.Change{PaymentID: p.ID, From: payment.StatusPending, To: payment.StatusCanceled, Seq: p.StepSeq + 7}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("wrong seq: %v", err)
	}
	if _, err := st.Apply(ctx, store.Change{PaymentID: p.ID, From: payment.StatusProcessing, To: payment.StatusFailed, Seq: p.StepSeq}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("wrong status: %v", err)
	}
	if _, err := st.Apply(ctx, store.Change{PaymentID: p.ID, From: payment.StatusPending, To: payment.StatusCanceled, Seq: p.StepSeq, Reason: "r", Actor: "a"}); err != nil {
		t.Fatal(err)
	}
	evs, err := st.Events(ctx, tn.ID, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].From != payment.StatusPending || evs[1].To != payment.StatusCanceled || evs[1].Reason != "r" {
		t.Fatalf("events %+v", evs)
	}
	got, _ := st.GetPayment(ctx, tn.ID, p.ID)
	if got.CanceledAt == nil || got.NextStep != payment.StepNone {
		t.Fatalf("canceled payment %+v", got)
	}
	// the schema refuses a schedule on an absorbing state
	if _, err := st.Apply(ctx, store.Change{PaymentID: p.ID, From: payment.StatusCanceled, To: payment.StatusCanceled, AnySeq: true,
		NextStep: payment.StepSubmit, NextStepAt: time.Now()}); err == nil {
		t.Fatal("scheduled a step on a canceled payment")
	}
}

// TestRefundsNeverExceedCaptured: concurrent refunds reserve against the
// payment under a row lock; the schema's CHECK is the backstop (I3).
func TestRefundsNeverExceedCaptured(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	p := newPayment(t, st, tn, 1000)
	if _, err := st.CreateRefund(ctx, tn.ID, p.ID, 100, "", "k"); !errors.Is(err, payment.ErrInvalidState) {
		t.Fatalf("refund of a pending payment: %v", err)
	}
	seq := toSubmit(t, st, p)
	c, err := st.ClaimSubmit(ctx, p.ID, seq, time.Now().Add(time.Minute), "w")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, store.Change{PaymentID: p.ID, From: payment.StatusProcessing, To: payment.StatusSucceeded, Seq: c.Payment.StepSeq}); err != nil {
		t.Fatal(err)
	}
	var ok, tooLarge atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.CreateRefund(ctx, tn.ID, p.ID, 100, "", "k")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, payment.ErrRefundTooLarge):
				tooLarge.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || tooLarge.Load() != 20 {
		t.Fatalf("ok %d too large %d; want 10 and 20", ok.Load(), tooLarge.Load())
	}
	if _, err := st.DB().Exec(`UPDATE payments SET refunded_amount = amount + 1 WHERE id = $1`, p.ID); err == nil {
		t.Fatal("schema accepted refunded > amount")
	}
}

// TestIdempotencyKeys: a key's lock is held for its request's transaction
// only, its answer is stored with the request's effects (or not at all),
// and only an expired record may be replaced.
func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	k := store.IdemKey{TenantID: tn.ID, Route: "POST /x", Key: "k1"}
	fp, other := []byte("fp1"), []byte("fp2")
	if rec, err := st.LookupIdempotent(ctx, k, fp); err != nil || rec.State != store.IdemNew {
		t.Fatalf("fresh key: %+v %v", rec, err)
	}
	// the first request holds the key inside its transaction
	held := make(chan struct{})
	release := make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- st.InTx(ctx, func(tx *store.Store) error {
			if err := tx.LockIdempotent(ctx, k); err != nil {
				return err
			}
			close(held)
			<-release
			return tx.PutIdempotent(ctx, store.IdemWrite{Key: k, Fingerprint: fp, TTL: time.Hour, Code: 201, Body: []byte(`{"id":"x"}`)})
		})
	}()
	<-held
	// a duplicate meanwhile finds it in flight, and stores nothing
	err := st.InTx(ctx, func(tx *store.Store) error { return tx.LockIdempotent(ctx, k) })
	if !errors.Is(err, store.ErrIdemInFlight) {
		t.Fatalf("duplicate in flight: %v", err)
	}
	if rec, _ := st.LookupIdempotent(ctx, k, fp); rec.State != store.IdemNew {
		t.Fatalf("uncommitted answer visible: %+v", rec)
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	rec, _ := st.LookupIdempotent(ctx, k, fp)
	if rec.State != store.IdemReplay || rec.Code != 201 || string(rec.Body) != `{"id":"x"}` {
		t.Fatalf("replay: %+v", rec)
	}
	if rec, _ = st.LookupIdempotent(ctx, k, other); rec.State != store.IdemMismatch {
		t.Fatalf("other body: %+v", rec)
	}
	// a live record is never replaced
	err = st.InTx(ctx, func(tx *store.Store) error {
		return tx.PutIdempotent(ctx, store.IdemWrite{Key: k, Fingerprint: other, TTL: time.Hour, Code: 201, Body: []byte(`{}`)})
	})
	if !errors.Is(err, store.ErrIdemTaken) {
		t.Fatalf("live record replaced: %v", err)
	}
	// a request that fails stores nothing: its key stays free
	k2 := store.IdemKey{TenantID: tn.ID, Route: "POST /x", Key: "k2"}
	_ = st.InTx(ctx, func(tx *store.Store) error {
		if err := tx.LockIdempotent(ctx, k2); err != nil {
			return err
		}
		if err := tx.PutIdempotent(ctx, store.IdemWrite{Key: k2, Fingerprint: fp, Code: 201, Body: []byte(`{}`)}); err != nil {
			return err
		}
		return errors.New("the request failed after storing its answer")
	})
	if rec, _ = st.LookupIdempotent(ctx, k2, fp); rec.State != store.IdemNew {
		t.Fatalf("rolled-back answer stored: %+v", rec)
	}
	// an expired record reads as free, and may be replaced or forgotten
	if _, err := st.DB().Exec(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'k1'`); err != nil {
		t.Fatal(err)
	}
	if rec, _ = st.LookupIdempotent(ctx, k, other); rec.State != store.IdemNew {
		t.Fatalf("expired record: %+v", rec)
	}
	err = st.InTx(ctx, func(tx *store.Store) error {
		return tx.PutIdempotent(ctx, store.IdemWrite{Key: k, Fingerprint: other, TTL: time.Hour, Code: 200, Body: []byte(`{"id":"y"}`)})
	})
	if err != nil {
		t.Fatalf("replacing an expired record: %v", err)
	}
	if rec, _ = st.LookupIdempotent(ctx, k, other); rec.State != store.IdemReplay || string(rec.Body) != `{"id":"y"}` {
		t.Fatalf("after replacing: %+v", rec)
	}
	if err := st.ForgetIdempotent(ctx, k); err != nil {
		t.Fatal(err)
	}
	if rec, _ = st.LookupIdempotent(ctx, k, other); rec.State != store.IdemReplay {
		t.Fatalf("a live record was forgotten: %+v", rec)
	}
	// another tenant's key with the same string is its own
	tb, _ := st.CreateTenant(ctx, "other")
	if rec, _ = st.LookupIdempotent(ctx, store.IdemKey{TenantID: tb.ID, Route: k.Route, Key: k.Key}, other); rec.State != store.IdemNew {
		t.Fatalf("other tenant: %+v", rec)
	}
}

// TestClaimDue: the sweeper claims overdue steps once per lease, splits work
// between concurrent sweepers, reports steps it already swept, and re-arms
// them with a fresh sequence under a guard.
func TestClaimDue(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		newPayment(t, st, tn, 100)
	}
	future := time.Now().Add(time.Hour)
	var total atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due, err := st.ClaimDue(ctx, store.AllDueBefore(future), 2*time.Hour, 20)
			if err != nil {
				t.Error(err)
			}
			for _, d := range due {
				if d.Swept {
					t.Errorf("first claim reported swept: %+v", d)
				}
			}
			total.Add(int32(len(due)))
		}()
	}
	wg.Wait()
	if total.Load() != 50 {
		t.Fatalf("claimed %d, want 50 exactly once", total.Load())
	}
	due, err := st.ClaimDue(ctx, store.AllDueBefore(future), time.Minute, 100)
	if err != nil || len(due) != 0 {
		t.Fatalf("claimed again within the lease: %d %v", len(due), err)
	}
	due, err = st.ClaimDue(ctx, store.AllDueBefore(future.Add(2*time.Hour)), time.Minute, 100)
	if err != nil || len(due) != 50 || !due[0].Swept || due[0].Seq != 1 {
		t.Fatalf("second claim: %d %v %+v", len(due), err, due)
	}
	seq, err := st.Rearm(ctx, due[0])
	if err != nil || seq != 2 {
		t.Fatalf("rearm: %d %v", seq, err)
	}
	if _, err := st.Rearm(ctx, due[0]); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("second rearm of the same sequence: %v", err)
	}
}

// TestSessionSettings: payd's connections price sequential scans out (a
// cached plan must read by index however small a table was when it was
// planned), unless DATABASE_URL says otherwise.
func TestSessionSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	if err := store.Migrate(ctx, owner, testenv.AppRole); err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{app: "off", app + "&enable_seqscan=on": "on"} {
		st, err := store.Open(ctx, store.Config{URL: url}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := st.DB().QueryRowContext(ctx, `SHOW enable_seqscan`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if got != want {
			t.Errorf("enable_seqscan = %s, want %s (URL ends %q)", got, want, url[len(url)-25:])
		}
	}
}
