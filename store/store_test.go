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

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	k := store.IdemKey{TenantID: tn.ID, Route: "POST /x", Key: "k1"}
	fp, other := []byte("fp1"), []byte("fp2")
	rec, err := st.BeginIdempotent(ctx, k, fp, 200*time.Millisecond, time.Hour)
	if err != nil || rec.State != store.IdemNew {
		t.Fatalf("first: %+v %v", rec, err)
	}
	stalled := rec.Owner
	if rec, _ = st.BeginIdempotent(ctx, k, fp, time.Second, time.Hour); rec.State != store.IdemInFlight {
		t.Fatalf("duplicate in flight: %+v", rec)
	}
	if rec, _ = st.BeginIdempotent(ctx, k, other, time.Second, time.Hour); rec.State != store.IdemMismatch {
		t.Fatalf("other body: %+v", rec)
	}
	// the owner died: after the lease a retry of the same request takes over
	time.Sleep(300 * time.Millisecond)
	if rec, _ = st.BeginIdempotent(ctx, k, fp, time.Second, time.Hour); rec.State != store.IdemNew {
		t.Fatalf("takeover after lease: %+v", rec)
	}
	// the stalled first request can no longer complete or release the key
	if err := st.CompleteIdempotent(ctx, k, stalled, 201, []byte(`{"id":"stale"}`)); !errors.Is(err, store.ErrIdemLost) {
		t.Fatalf("stalled owner completed: %v", err)
	}
	if err := st.ReleaseIdempotent(ctx, k, stalled); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteIdempotent(ctx, k, rec.Owner, 201, []byte(`{"id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	rec, _ = st.BeginIdempotent(ctx, k, fp, time.Second, time.Hour)
	if rec.State != store.IdemReplay || rec.Code != 201 || string(rec.Body) != `{"id":"x"}` {
		t.Fatalf("replay: %+v", rec)
	}
	// another tenant's key with the same string is its own
	tb, _ := st.CreateTenant(ctx, "other")
	if rec, _ = st.BeginIdempotent(ctx, store.IdemKey{TenantID: tb.ID, Route: k.Route, Key: k.Key}, other, time.Second, time.Hour); rec.State != store.IdemNew {
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
			due, err := st.ClaimDue(ctx, future, 2*time.Hour, 20)
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
	due, err := st.ClaimDue(ctx, future, time.Minute, 100)
	if err != nil || len(due) != 0 {
		t.Fatalf("claimed again within the lease: %d %v", len(due), err)
	}
	due, err = st.ClaimDue(ctx, future.Add(2*time.Hour), time.Minute, 100)
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
