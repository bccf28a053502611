package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Every guarded update refuses a task that carries an old step sequence
// (or a run that observed an old status): it changes nothing, writes no
// audit row, and the step that is really due still runs at its own time.
// Each test here fails if its guard is taken out of the SQL.

// rowState is what a refused (stale) update must leave as it was.
type rowState struct {
	Status, NextStep string
	NextStepAt       sql.NullTime
	Seq, Attempts    int
	Swept            bool
	UpdatedAt        time.Time
	UpdatedBy        string
	AttemptRows      int
	AttemptsChanged  time.Time // latest updated_at of its attempts
	Events           int
	Refunded         int64
}

func readRow(t *testing.T, st *store.Store, id string) rowState {
	t.Helper()
	var r rowState
	var ns sql.NullString
	var changed sql.NullTime
	err := st.DB().QueryRow(`SELECT status, next_step, next_step_at, step_seq, attempt_count, swept, updated_at, updated_by,
			(SELECT count(*) FROM payment_attempts WHERE payment_id = p.id),
			(SELECT max(updated_at) FROM payment_attempts WHERE payment_id = p.id),
			(SELECT count(*) FROM payment_events WHERE payment_id = p.id), refunded_amount + refund_pending_amount
		FROM payments p WHERE id = $1`, id).Scan(&r.Status, &ns, &r.NextStepAt, &r.Seq, &r.Attempts, &r.Swept, &r.UpdatedAt,
		&r.UpdatedBy, &r.AttemptRows, &changed, &r.Events, &r.Refunded)
	if err != nil {
		t.Fatal(err)
	}
	r.NextStep, r.AttemptsChanged = ns.String, changed.Time
	return r
}

func sameRow(t *testing.T, what string, before, after rowState) {
	t.Helper()
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("%s changed the payment (-before +after):\n%s", what, d)
	}
}

// softDecline records a soft decline of the claimed attempt, as the submit
// handler does: PENDING again, the next submit an hour away.
func softDecline(t *testing.T, st *store.Store, c store.Claim) (int, time.Time) {
	t.Helper()
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	seq, err := st.Record(context.Background(), &store.AttemptResult{AttemptID: c.Attempt.ID, Status: payment.AttemptFailed,
		FailureClass: payment.FailureSoftDecline, ErrorCode: "insufficient_funds", NextRetryAt: &at},
		store.Change{PaymentID: c.Payment.ID, From: payment.StatusProcessing, To: payment.StatusPending, Seq: c.Payment.StepSeq,
			NextStep: payment.StepSubmit, NextStepAt: at, Attempt: c.Attempt.Number, Actor: "w",
			Reason: "attempt not charged (soft_decline, insufficient_funds): retry scheduled"})
	if err != nil {
		t.Fatal(err)
	}
	return seq, at
}

// TestClaimSubmitStaleSeqWhileRetryWaits: the first attempt was soft
// declined and its retry is scheduled an hour out. A late or duplicated
// submit task of the first attempt (its old sequence) is refused and
// changes nothing: no attempt, no audit row, the retry's time and sequence
// as they were. The retry's own task then claims attempt 2.
func TestClaimSubmitStaleSeqWhileRetryWaits(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	p := newPayment(t, st, tn, 1000)
	first := toSubmit(t, st, p)
	c1, err := st.ClaimSubmit(ctx, p.ID, first, time.Now().Add(time.Minute), "w")
	if err != nil {
		t.Fatal(err)
	}
	retry, at := softDecline(t, st, c1)
	before := readRow(t, st, p.ID)
	if before.Status != "PENDING" || before.NextStep != "submit" || !before.NextStepAt.Time.Equal(at) || before.Seq != retry {
		t.Fatalf("retry not scheduled: %+v", before)
	}
	// every sequence this payment had before the retry's
	for seq := 1; seq < retry; seq++ {
		if _, err := st.ClaimSubmit(ctx, p.ID, seq, time.Now().Add(time.Minute), "late"); !errors.Is(err, payment.ErrStale) {
			t.Fatalf("stale submit at %d (retry at %d): %v, want ErrStale", seq, retry, err)
		}
		if _, err := st.ClaimAttempt(ctx, p.ID, payment.StepCreate, seq, time.Now().Add(time.Minute), "late"); !errors.Is(err, payment.ErrStale) {
			t.Fatalf("stale create at %d: %v, want ErrStale", seq, err)
		}
	}
	sameRow(t, "a stale submit", before, readRow(t, st, p.ID))
	c2, err := st.ClaimSubmit(ctx, p.ID, retry, time.Now().Add(time.Minute), "w")
	if err != nil {
		t.Fatalf("the retry's own claim: %v", err)
	}
	if c2.Attempt.Number != 2 || c2.Attempt.IdempotencyKey != p.ID+":2" {
		t.Fatalf("retry claimed attempt %+v", c2.Attempt)
	}
}

// TestClaimCreateStaleSeqAfterRearm: the sweeper re-armed a create step
// whose task was stuck; the old create task, if it ever runs, claims
// nothing. The re-armed one claims the first attempt.
func TestClaimCreateStaleSeqAfterRearm(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	p := newPayment(t, st, tn, 1000)
	seq, err := st.Rearm(ctx, store.Due{PaymentID: p.ID, Step: payment.StepCreate, Seq: p.StepSeq})
	if err != nil {
		t.Fatal(err)
	}
	before := readRow(t, st, p.ID)
	if _, err := st.ClaimAttempt(ctx, p.ID, payment.StepCreate, p.StepSeq, time.Now().Add(time.Minute), "late"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("stale create: %v, want ErrStale", err)
	}
	sameRow(t, "a stale create", before, readRow(t, st, p.ID))
	if c, err := st.ClaimAttempt(ctx, p.ID, payment.StepCreate, seq, time.Now().Add(time.Minute), "w"); err != nil || c.Attempt.Number != 1 {
		t.Fatalf("re-armed create: %+v %v", c.Attempt, err)
	}
}

// TestClaimOnlyItsStep: a claim names the step it was enqueued for (a
// create claim of a payment whose step is submit is refused, even at its
// sequence), and only a PENDING payment is claimed.
func TestClaimOnlyItsStep(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	p := newPayment(t, st, tn, 1000)
	seq := toSubmit(t, st, p)
	// the step is submit: a create claim at its sequence is refused
	if _, err := st.ClaimAttempt(ctx, p.ID, payment.StepCreate, seq, time.Now().Add(time.Minute), "w"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("create claim of a submit step: %v", err)
	}
	c, err := st.ClaimSubmit(ctx, p.ID, seq, time.Now().Add(time.Minute), "w")
	if err != nil {
		t.Fatal(err)
	}
	// PROCESSING, waiting on its safety-net inquiry at c.Payment.StepSeq
	before := readRow(t, st, p.ID)
	if _, err := st.ClaimSubmit(ctx, p.ID, c.Payment.StepSeq, time.Now().Add(time.Minute), "w"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("submit claim of a PROCESSING payment: %v", err)
	}
	sameRow(t, "a claim of a PROCESSING payment", before, readRow(t, st, p.ID))
	// Whatever its schedule says, a payment that is not PENDING is never
	// claimed: payd never leaves a submit scheduled on a succeeded payment
	// (and the schema allows it), but if a code path ever did, the claim's
	// status guard is what keeps it from being charged again.
	q := newPayment(t, st, tn, 1000)
	qseq := toSubmit(t, st, q)
	if _, err := st.DB().Exec(`UPDATE payments SET status = 'SUCCEEDED' WHERE id = $1`, q.ID); err != nil {
		t.Fatal(err)
	}
	before = readRow(t, st, q.ID)
	if _, err := st.ClaimSubmit(ctx, q.ID, qseq, time.Now().Add(time.Minute), "w"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("submit claim of a SUCCEEDED payment: %v", err)
	}
	sameRow(t, "a claim of a SUCCEEDED payment", before, readRow(t, st, q.ID))
}

// TestRecordStaleSeq: the batched record (Record, the handlers' common
// path) refuses a change observed at an old sequence, or about an attempt
// already finished, and changes nothing.
func TestRecordStaleSeq(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	p := newPayment(t, st, tn, 1000)
	c1, err := st.ClaimSubmit(ctx, p.ID, toSubmit(t, st, p), time.Now().Add(time.Minute), "w")
	if err != nil {
		t.Fatal(err)
	}
	retry, _ := softDecline(t, st, c1)
	before := readRow(t, st, p.ID)
	// the same decision recorded again (a duplicate of the submit that
	// made it): its sequence is old and its attempt finished
	if _, err := st.Record(ctx, &store.AttemptResult{AttemptID: c1.Attempt.ID, Status: payment.AttemptFailed,
		FailureClass: payment.FailureSoftDecline}, store.Change{PaymentID: p.ID, From: payment.StatusProcessing,
		To: payment.StatusPending, Seq: c1.Payment.StepSeq, NextStep: payment.StepSubmit, NextStepAt: time.Now()}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("duplicate record: %v, want ErrStale", err)
	}
	// a change at an old sequence from the status the payment is in
	if _, err := st.Record(ctx, nil, store.Change{PaymentID: p.ID, From: payment.StatusPending, To: payment.StatusPending,
		Seq: c1.Payment.StepSeq - 1, NextStep: payment.StepSubmit, NextStepAt: time.Now()}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("record at an old sequence: %v, want ErrStale", err)
	}
	// at the current sequence, but about the finished attempt
	if _, err := st.Record(ctx, &store.AttemptResult{AttemptID: c1.Attempt.ID, Status: payment.AttemptSucceeded},
		store.Change{PaymentID: p.ID, From: payment.StatusPending, To: payment.StatusCanceled, Seq: retry}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("record about a finished attempt: %v, want ErrStale", err)
	}
	sameRow(t, "a stale record", before, readRow(t, st, p.ID))
	var status string
	if err := st.DB().QueryRow(`SELECT status FROM payment_attempts WHERE id = $1`, c1.Attempt.ID).Scan(&status); err != nil || status != "FAILED" {
		t.Fatalf("finished attempt is %s (%v)", status, err)
	}
	// a finished attempt never changes again
	if err := st.FinishAttempt(ctx, store.AttemptResult{AttemptID: c1.Attempt.ID, Status: payment.AttemptSucceeded}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("finish a finished attempt: %v, want ErrStale", err)
	}
	sameRow(t, "finishing a finished attempt", before, readRow(t, st, p.ID))
}

// TestCancelLosesToClaim: a cancel (AnySeq: guarded on the status it read
// only) that read PENDING while a worker claimed the payment is refused:
// a payment whose attempt is in flight is never canceled under it. A
// canceled payment is never claimed.
func TestCancelLosesToClaim(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	p := newPayment(t, st, tn, 1000)
	seq := toSubmit(t, st, p)
	if _, err := st.ClaimSubmit(ctx, p.ID, seq, time.Now().Add(time.Minute), "w"); err != nil {
		t.Fatal(err)
	}
	before := readRow(t, st, p.ID)
	cancel := store.Change{PaymentID: p.ID, From: payment.StatusPending, To: payment.StatusCanceled, AnySeq: true,
		Reason: "canceled by the merchant", Actor: "key_x"}
	if _, err := st.Apply(ctx, cancel); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("cancel of a claimed payment: %v, want ErrStale", err)
	}
	sameRow(t, "a cancel that read PENDING", before, readRow(t, st, p.ID))

	q := newPayment(t, st, tn, 1000)
	qseq := toSubmit(t, st, q)
	cancel.PaymentID = q.ID
	if _, err := st.Apply(ctx, cancel); err != nil {
		t.Fatal(err)
	}
	before = readRow(t, st, q.ID)
	if _, err := st.ClaimSubmit(ctx, q.ID, qseq, time.Now().Add(time.Minute), "w"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("claim of a canceled payment: %v, want ErrStale", err)
	}
	sameRow(t, "a claim of a canceled payment", before, readRow(t, st, q.ID))
}

// TestFinishRefundStaleSeq: a refund try is re-armed by the sweeper once
// per sequence, and finished only at its new sequence.
func TestFinishRefundStaleSeq(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	p := newPayment(t, st, tn, 1000)
	c, err := st.ClaimSubmit(ctx, p.ID, toSubmit(t, st, p), time.Now().Add(time.Minute), "w")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, store.Change{PaymentID: p.ID, From: payment.StatusProcessing, To: payment.StatusSucceeded, Seq: c.Payment.StepSeq}); err != nil {
		t.Fatal(err)
	}
	r, err := st.CreateRefund(ctx, tn.ID, p.ID, 400, "", "k")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := st.Rearm(ctx, store.Due{RefundID: r.ID, Step: store.StepRefund, Seq: r.StepSeq})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Rearm(ctx, store.Due{RefundID: r.ID, Step: store.StepRefund, Seq: r.StepSeq}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("second rearm of the same sequence: %v, want ErrStale", err)
	}
	if err := st.FinishRefund(ctx, r.ID, r.StepSeq, payment.RefundSucceeded, "re_1", ""); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("finish at the old sequence: %v, want ErrStale", err)
	}
	if got, _ := st.GetRefund(ctx, tn.ID, r.ID); got.Status != payment.RefundPending || got.StepSeq != seq {
		t.Fatalf("refund after a stale finish: %+v", got)
	}
	if err := st.FinishRefund(ctx, r.ID, seq, payment.RefundSucceeded, "re_1", ""); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRefund(ctx, r.ID, seq+1, payment.RefundFailed, "", "x"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("finish of a finished refund: %v, want ErrStale", err)
	}
}
