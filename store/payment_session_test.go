package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

func newSession(t *testing.T, st *store.Store, tn payment.Tenant, expires time.Time, retries int) (payment.Session, string) {
	t.Helper()
	s, secret, err := st.CreateSession(context.Background(), store.NewSession{TenantID: tn.ID,
		Amount: payment.Money{Minor: 500, Currency: "USD"}, Locale: "en-GB", SuccessURL: "https://a/ok", FailureURL: "https://a/no",
		EnabledMethods: []string{"card"}, ExpiresOn: expires, RetryLimit: retries, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s, secret
}

// TestSessionStore: the token lookup checks the secret; the submit lock
// admits one submit and says why a session takes none; a submit's payment
// and the session's move to PROCESSING commit together, guarded on the
// lock; the session follows its payment's terminal transition in the
// payment's own statement, with audit rows; expiry waits for expires_on,
// then expires, and the schema keeps a finished session with nothing due.
func TestSessionStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, tn := open(t)
	s, secret := newSession(t, st, tn, time.Now().Add(time.Hour), 2)
	if s.Status != payment.SessionActive || s.NextAt == nil || !s.NextAt.Equal(s.ExpiresOn) || s.StepSeq != 1 {
		t.Fatalf("new session %+v", s)
	}
	if got, err := st.SessionByToken(ctx, s.Token, secret); err != nil || got.ID != s.ID {
		t.Errorf("by token: %v %v", got.ID, err)
	}
	for _, bad := range []string{"", secret + "x", s.Token, secret[:len(secret)-1]} {
		if _, err := st.SessionByToken(ctx, s.Token, bad); !errors.Is(err, payment.ErrNotFound) {
			t.Errorf("secret %q: %v", bad, err)
		}
	}
	if _, err := st.SessionByToken(ctx, "pst_nope", secret); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
	var hash []byte
	if err := st.DB().QueryRowContext(ctx, `SELECT secret_hash FROM payment_sessions WHERE id = $1`, s.ID).Scan(&hash); err != nil ||
		string(hash) != string(store.SessionSecretHash(secret)) {
		t.Errorf("secret stored as %x, %v", hash, err)
	}
	if _, err := st.GetSession(ctx, "ten_other", s.ID); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("another tenant's session: %v", err)
	}

	until := time.Now().Add(30 * time.Second).UTC().Truncate(time.Microsecond)
	locked, why, err := st.LockSessionSubmit(ctx, tn.ID, s.ID, until)
	if err != nil || why != store.SessionOK {
		t.Fatalf("lock: %v %v", why, err)
	}
	if _, why, _ := st.LockSessionSubmit(ctx, tn.ID, s.ID, until.Add(time.Second)); why != store.SessionIsBusy {
		t.Errorf("second lock: %q", why)
	}
	// a submit holding a lock that is not its own records nothing
	if _, err := st.StartSessionPayment(ctx, store.SessionPayment{Session: locked, LockUntil: until.Add(time.Second),
		Method: payment.MethodCard, Token: "tok_x", Actor: "test"}); !errors.Is(err, payment.ErrStale) {
		t.Errorf("start under another lock: %v", err)
	}
	pay, err := st.StartSessionPayment(ctx, store.SessionPayment{Session: locked, LockUntil: until, Method: payment.MethodCard,
		Token: "tok_x", Reference: "sub-ref", Actor: "test"})
	if err != nil || pay.Status != payment.StatusPending || pay.SessionID != s.ID || pay.Surface != store.SurfaceSessions ||
		pay.PaymentMethodID != "tok_x" || pay.Amount.Minor != 500 {
		t.Fatalf("start: %+v %v", pay, err)
	}
	if pay.Metadata["payment_session_id"] != s.ID || pay.Metadata["reference"] != "sub-ref" {
		t.Errorf("payment metadata %v", pay.Metadata)
	}
	s2, _ := st.GetSession(ctx, tn.ID, s.ID)
	if s2.Status != payment.SessionProcessing || s2.PaymentID != pay.ID || s2.AttemptsUsed != 1 || s2.SubmitLocked {
		t.Fatalf("after start %+v", s2)
	}
	if _, why, _ := st.LockSessionSubmit(ctx, tn.ID, s.ID, until); why != store.SessionIsBusy {
		t.Errorf("lock while processing: %q", why)
	}
	// the payment fails: the session follows in the same statement
	seq, err := st.Apply(ctx, store.Change{PaymentID: pay.ID, From: payment.StatusPending, To: payment.StatusProcessing, Seq: pay.StepSeq,
		NextStep: payment.StepInquire, NextStepAt: time.Now().Add(time.Minute), Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if s3, _ := st.GetSession(ctx, tn.ID, s.ID); s3.Status != payment.SessionProcessing {
		t.Errorf("a non-terminal transition moved the session: %s", s3.Status)
	}
	if _, err := st.Apply(ctx, store.Change{PaymentID: pay.ID, From: payment.StatusProcessing, To: payment.StatusFailed, Seq: seq,
		ErrorCode: "card_declined", ErrorMessage: "declined", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	s4, _ := st.GetSession(ctx, tn.ID, s.ID)
	if s4.Status != payment.SessionFailed || s4.LastErrorCode != "card_declined" || s4.NextAt == nil || !s4.RetryAllowed(time.Now()) {
		t.Fatalf("after failure %+v", s4)
	}
	evs, err := st.SessionEvents(ctx, tn.ID, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	var tos []payment.SessionStatus
	for _, e := range evs {
		tos = append(tos, e.To)
	}
	if len(tos) != 3 || tos[0] != payment.SessionActive || tos[1] != payment.SessionProcessing || tos[2] != payment.SessionFailed {
		t.Errorf("events %v", tos)
	}
	// expiry: not before expires_on
	res, err := st.ExpireSession(ctx, s.ID, "test")
	if err != nil || res.Outcome != store.ExpireNotYet || !res.DueAt.Equal(s.ExpiresOn) {
		t.Errorf("early expiry: %+v %v", res, err)
	}
	// a session already past its expiry
	old, _ := newSession(t, st, tn, time.Now().Add(50*time.Millisecond), 1)
	time.Sleep(100 * time.Millisecond)
	if _, why, _ := st.LockSessionSubmit(ctx, tn.ID, old.ID, until); why != store.SessionIsExpired {
		t.Errorf("lock of an expired session: %q", why)
	}
	res, err = st.ExpireSession(ctx, old.ID, "test")
	if err != nil || res.Outcome != store.ExpireDone {
		t.Fatalf("expiry: %+v %v", res, err)
	}
	o2, _ := st.GetSession(ctx, tn.ID, old.ID)
	if o2.Status != payment.SessionExpired || o2.NextAt != nil || o2.ExpiredAt == nil {
		t.Errorf("expired %+v", o2)
	}
	if res, err := st.ExpireSession(ctx, old.ID, "test"); err != nil || res.Outcome != store.ExpireNothing {
		t.Errorf("expiry again: %+v %v", res, err)
	}
	// the schema refuses an expired session with something due
	if _, err := st.DB().ExecContext(ctx, `UPDATE payment_sessions SET next_at = now() WHERE id = $1`, old.ID); err == nil {
		t.Error("an EXPIRED session took a next_at")
	}
}

// TestClaimDueSessions: a session whose expiry is due is claimed by the
// sweeper (pushed out by the lease, marked swept), not before its cutoff,
// and Rearm gives it a fresh step sequence.
func TestClaimDueSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, tn := open(t)
	s, _ := newSession(t, st, tn, time.Now().Add(-time.Minute), 1) // due a minute ago
	later, _ := newSession(t, st, tn, time.Now().Add(time.Hour), 1)
	if got, err := st.ClaimDue(ctx, store.DueBefore{store.StepSession: time.Now().Add(-2 * time.Minute)}, time.Hour, 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed before its cutoff: %+v %v", got, err)
	}
	got, err := st.ClaimDue(ctx, store.AllDueBefore(time.Now()), time.Hour, 10)
	if err != nil || len(got) != 1 || got[0].SessionID != s.ID || got[0].Step != store.StepSession || got[0].Seq != 1 || got[0].Swept {
		t.Fatalf("claim: %+v %v", got, err)
	}
	if again, _ := st.ClaimDue(ctx, store.AllDueBefore(time.Now()), time.Hour, 10); len(again) != 0 {
		t.Errorf("claimed again within the lease: %+v", again)
	}
	seq, err := st.Rearm(ctx, got[0])
	if err != nil || seq != 2 {
		t.Errorf("rearm: %d %v", seq, err)
	}
	_ = later
}
