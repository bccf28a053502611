package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// startSessionPayment creates a session and records a submit's payment.
func startSessionPayment(t *testing.T, st *store.Store, tn payment.Tenant) (payment.Session, payment.Payment) {
	t.Helper()
	ctx := context.Background()
	s, _ := newSession(t, st, tn, time.Now().Add(time.Hour), 2)
	until := time.Now().Add(30 * time.Second).UTC().Truncate(time.Microsecond)
	locked, why, err := st.LockSessionSubmit(ctx, tn.ID, s.ID, until)
	if err != nil || why != store.SessionOK {
		t.Fatalf("lock: %v %v", why, err)
	}
	pay, err := st.StartSessionPayment(ctx, store.SessionPayment{Session: locked, LockUntil: until, Method: payment.MethodCard,
		Token: "tok_w", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s, pay
}

func woken(ch <-chan struct{}, within time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(within):
		return false
	}
}

// TestWaitPaymentWakesOnOutcome: the statement that records a session
// payment's outcome wakes its waiter at commit (LISTEN/NOTIFY); a move to a
// status a submit does not answer with wakes nobody; and a change made by
// another statement (here a raw UPDATE) sends no wake-up at all, which is
// why a waiter keeps a fallback poll (intake's awaitOutcome).
func TestWaitPaymentWakesOnOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, tn := open(t)
	_, pay := startSessionPayment(t, st, tn)
	// the listener connects with the first wait
	ch, stop, _ := st.WaitPayment(pay.ID)
	defer stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, stopNothing, live := st.WaitPayment("pay_nothing")
		stopNothing()
		if live {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	seq, err := st.Record(ctx, nil, store.Change{PaymentID: pay.ID, From: payment.StatusPending, To: payment.StatusProcessing,
		Seq: pay.StepSeq, NextStep: payment.StepInquire, NextStepAt: time.Now().Add(time.Minute), Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if woken(ch, 300*time.Millisecond) {
		t.Fatal("woken by PENDING → PROCESSING, which no submit answers with")
	}
	if _, err := st.Record(ctx, nil, store.Change{PaymentID: pay.ID, From: payment.StatusProcessing, To: payment.StatusSucceeded,
		Seq: seq, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if !woken(ch, 5*time.Second) {
		t.Fatal("not woken by the payment's success")
	}

	// a change that is not the worker's statement: no wake-up, the poll must find it
	_, quiet := startSessionPayment(t, st, tn)
	ch2, stop2, _ := st.WaitPayment(quiet.ID)
	defer stop2()
	if _, err := st.DB().ExecContext(ctx, `UPDATE payments SET status = 'SUCCEEDED', next_step = NULL, next_step_at = NULL WHERE id = $1`, quiet.ID); err != nil {
		t.Fatal(err)
	}
	if woken(ch2, 300*time.Millisecond) {
		t.Fatal("woken without a notification")
	}
	if p, err := st.PaymentHead(ctx, quiet.ID); err != nil || p.Status != payment.StatusSucceeded {
		t.Fatalf("read: %v %v", p.Status, err)
	}
}

// TestSessionBatchedStatements: a create under an Idempotency-Key stores
// its answer with the session (a second create finds the key used); a
// submit's first statement replays a stored answer, refuses another body,
// and takes no lock while the key answers; a lapsed submit names its
// payment; concurrent creates and submits share statements and each gets
// its own outcome.
func TestSessionBatchedStatements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, tn := open(t)
	k := store.IdemKey{TenantID: tn.ID, Route: "POST /v1/payment-sessions", Key: "create-1"}
	ns := store.NewSession{TenantID: tn.ID, Amount: payment.Money{Minor: 700, Currency: "USD"}, Locale: "en-GB",
		SuccessURL: "https://a/ok", FailureURL: "https://a/no", EnabledMethods: []string{"card"},
		ExpiresOn: time.Now().Add(time.Hour), RetryLimit: 1, Actor: "test"}
	respond := func(s payment.Session) (int, []byte, error) { return 201, []byte(`{"id":"` + s.ID + `"}`), nil }
	res, err := st.CreateSessionWith(ctx, store.SessionCreate{NewSession: ns, Idem: &store.IdemWrite{Key: k, Fingerprint: []byte("fp")},
		Respond: respond})
	if err != nil || res.Outcome != store.Created {
		t.Fatalf("create: %v %v", res.Outcome, err)
	}
	got, err := st.GetSession(ctx, tn.ID, res.Session.ID)
	if err != nil || got.Token != res.Session.Token || !got.ExpiresOn.Equal(res.Session.ExpiresOn) || got.Status != payment.SessionActive {
		t.Fatalf("stored %+v %v, built %+v", got, err, res.Session)
	}
	if rec, _ := st.LookupIdempotent(ctx, k, []byte("fp")); rec.State != store.IdemReplay || string(rec.Body) != `{"id":"`+res.Session.ID+`"}` {
		t.Errorf("create's answer %+v", rec)
	}
	again, err := st.CreateSessionWith(ctx, store.SessionCreate{NewSession: ns, Idem: &store.IdemWrite{Key: k, Fingerprint: []byte("fp")},
		Respond: respond})
	if err != nil || again.Outcome != store.KeyUsed {
		t.Fatalf("create again: %v %v", again.Outcome, err)
	}

	// the submit's first statement
	sess := res.Session
	sk := store.IdemKey{TenantID: tn.ID, Route: "submit " + sess.ID, Key: "sub-1"}
	until := time.Now().Add(30 * time.Second).UTC().Truncate(time.Microsecond)
	if _, err := st.BeginSubmit(ctx, "ten_other", sess.ID, &sk, []byte("a"), until); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("another tenant's session: %v", err)
	}
	b, err := st.BeginSubmit(ctx, tn.ID, sess.ID, &sk, []byte("a"), until)
	if err != nil || b.Refusal != store.SessionOK || b.Idem.State != store.IdemNew || !b.Session.SubmitLocked {
		t.Fatalf("begin: %+v %v", b, err)
	}
	pay, err := st.StartSessionPayment(ctx, store.SessionPayment{Session: b.Session, LockUntil: until, Method: payment.MethodCard,
		Token: "tok_b", Actor: "test", Idem: &sk, IdemFP: []byte("a"), IdemUntil: time.Now().Add(-time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	// its marker lapsed at once (IdemUntil in the past): a retry names the payment and locks nothing
	b, err = st.BeginSubmit(ctx, tn.ID, sess.ID, &sk, []byte("a"), until)
	if err != nil || b.LapsedPayment != pay.ID {
		t.Fatalf("lapsed: %+v %v", b, err)
	}
	if err := st.CompleteIdempotent(ctx, store.IdemWrite{Key: sk, Fingerprint: []byte("a"), Code: 201, Body: []byte(`{"done":1}`)}); err != nil {
		t.Fatal(err)
	}
	b, err = st.BeginSubmit(ctx, tn.ID, sess.ID, &sk, []byte("a"), until)
	if err != nil || b.Idem.State != store.IdemReplay || b.Idem.Code != 201 || string(b.Idem.Body) != `{"done":1}` {
		t.Fatalf("replay: %+v %v", b, err)
	}
	if b, _ = st.BeginSubmit(ctx, tn.ID, sess.ID, &sk, []byte("b"), until); b.Idem.State != store.IdemMismatch {
		t.Errorf("another body: %+v", b.Idem)
	}
	// without the key: the session is PROCESSING, busy
	if b, _ = st.BeginSubmit(ctx, tn.ID, sess.ID, nil, nil, until); b.Refusal != store.SessionIsBusy {
		t.Errorf("second submit: %q", b.Refusal)
	}

	// concurrent creates and submits share statements, each with its own outcome
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			s, _, err := st.CreateSession(ctx, ns)
			if err != nil {
				errs <- err
				return
			}
			u := time.Now().Add(30 * time.Second).UTC().Truncate(time.Microsecond)
			b, err := st.BeginSubmit(ctx, tn.ID, s.ID, nil, nil, u)
			if err != nil || b.Refusal != store.SessionOK {
				errs <- errors.Join(err, errors.New("begin refused: "+string(b.Refusal)))
				return
			}
			p, err := st.StartSessionPayment(ctx, store.SessionPayment{Session: b.Session, LockUntil: u, Method: payment.MethodCard,
				Token: "tok_c", Actor: "test"})
			if err == nil && p.SessionID != s.ID {
				err = errors.New("payment of another session")
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
