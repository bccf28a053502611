package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// recordOnly creates a seed-001 payment with process_payment=false against a
// new invoice of due, as intake does, and returns it with its invoice id.
func recordOnly(t *testing.T, st *store.Store, tn payment.Tenant, ext, currency string, due, amount int64) (payment.Payment, string) {
	t.Helper()
	ctx := context.Background()
	inv, err := st.CreateInvoice(ctx, store.NewInvoice{TenantID: tn.ID, ExternalID: ext, Currency: currency, AmountDue: due})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.CreatePayment(ctx, store.PaymentCreate{NewPayment: store.NewPayment{TenantID: tn.ID, Surface: "payments",
		Amount: payment.Money{Minor: amount, Currency: currency}, Method: payment.MethodCard, PaymentMethodID: "pm_card_visa",
		DestinationType: "INVOICE", DestinationID: inv.ID, InvoiceID: inv.ID, ProcessPayment: false, TrackAttempts: true,
		Gateway: "sandbox", Options: payment.Options{SaveCardAndMakeDefault: true, SuccessURL: "https://example.com/ok"},
		Actor: "test"}})
	if err != nil || res.Outcome != store.Created {
		t.Fatalf("create: %+v %v", res, err)
	}
	p, err := st.GetPayment(ctx, tn.ID, res.Payment.ID)
	if err != nil {
		t.Fatal(err)
	}
	return p, inv.ID
}

func reserved(t *testing.T, st *store.Store, tn payment.Tenant, invoiceID string) int64 {
	t.Helper()
	inv, err := st.GetInvoice(context.Background(), tn.ID, invoiceID)
	if err != nil {
		t.Fatal(err)
	}
	return inv.AmountReserved
}

// TestUnprocessedPayment: a payment recorded with process_payment=false has
// no step (the sweeper and the create step leave it alone) but holds its
// invoice reservation; ProcessPayment schedules its create step exactly once
// however many callers race, with one audit row.
func TestUnprocessedPayment(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	for _, c := range []struct {
		currency    string
		due, amount int64
	}{{"JPY", 1000, 1000}, {"USD", 1250, 1250}, {"BHD", 12345, 12345}} {
		p, inv := recordOnly(t, st, tn, "unprocessed-"+c.currency, c.currency, c.due, c.amount)
		if !p.Unprocessed() || p.NextStep != payment.StepNone || p.NextStepAt != nil || p.Gateway != "sandbox" ||
			!p.Options.SaveCardAndMakeDefault || p.Options.SuccessURL != "https://example.com/ok" {
			t.Fatalf("%s recorded as %+v", c.currency, p)
		}
		// the whole amount is reserved on the invoice: no other payment can take it
		if got := reserved(t, st, tn, inv); got != c.amount {
			t.Fatalf("%s reserved %d, want %d", c.currency, got, c.amount)
		}
		// neither the sweeper (whatever its cutoff) nor a create step touch it
		due, err := st.ClaimDue(ctx, store.AllDueBefore(time.Now().Add(time.Hour)), time.Minute, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range due {
			if d.PaymentID == p.ID {
				t.Fatalf("the sweeper claimed an unprocessed payment: %+v", d)
			}
		}
		if _, err := st.ClaimAttempt(ctx, p.ID, payment.StepCreate, 1, time.Now().Add(time.Minute), "test"); !errors.Is(err, payment.ErrStale) {
			t.Fatalf("claim of an unprocessed payment: %v", err)
		}

		var wins, stale atomic.Int32
		var seqs sync.Map
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				seq, err := st.ProcessPayment(ctx, tn.ID, p.ID, "test")
				switch {
				case err == nil:
					wins.Add(1)
					seqs.Store(seq, true)
				case errors.Is(err, payment.ErrStale):
					stale.Add(1)
				default:
					t.Errorf("process: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || stale.Load() != 7 {
			t.Fatalf("%s: %d processed, %d stale; want 1 and 7", c.currency, wins.Load(), stale.Load())
		}
		q, err := st.GetPayment(ctx, tn.ID, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := seqs.Load(q.StepSeq); !ok || q.NextStep != payment.StepCreate || !q.ProcessPayment || q.Unprocessed() {
			t.Fatalf("processed payment %+v", q)
		}
		var n int
		if err := st.DB().QueryRow(`SELECT count(*) FROM payment_events WHERE payment_id = $1 AND reason LIKE 'processing requested%'`, p.ID).Scan(&n); err != nil || n != 1 {
			t.Fatalf("audit rows of the process: %d %v", n, err)
		}
		// now the sweeper would find it
		due, err = st.ClaimDue(ctx, store.AllDueBefore(time.Now().Add(time.Hour)), time.Minute, 1000)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range due {
			found = found || (d.PaymentID == p.ID && d.Step == payment.StepCreate)
		}
		if !found {
			t.Fatalf("the sweeper does not find a processed payment's create step")
		}
		// processed payments are neither deleted nor change their payment method
		if err := st.InTx(ctx, func(tx *store.Store) error { return tx.DeletePayment(ctx, tn.ID, p.ID, "test") }); !errors.Is(err, payment.ErrStale) {
			t.Fatalf("delete of a processed payment: %v", err)
		}
		pm := "pm_card_declined"
		if err := st.UpdatePayment(ctx, tn.ID, p.ID, store.PaymentUpdate{PaymentMethodID: &pm, Actor: "test", Reason: "x"}); !errors.Is(err, payment.ErrStale) {
			t.Fatalf("payment method change of a processed payment: %v", err)
		}
	}
}

// TestDeleteUnprocessedPayment: a delete cancels the payment, releases its
// invoice reservation and marks it deleted, audited; another tenant's id
// is refused; a delete outside a transaction is refused.
func TestDeleteUnprocessedPayment(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	other, err := st.CreateTenant(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, inv := recordOnly(t, st, tn, "deleted", "USD", 5000, 5000)
	if err := st.UpdatePayment(ctx, other.ID, p.ID, store.PaymentUpdate{Metadata: map[string]string{"a": "b"}, Actor: "x", Reason: "x"}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("another tenant's update: %v", err)
	}
	if err := st.UpdatePayment(ctx, tn.ID, p.ID, store.PaymentUpdate{Metadata: map[string]string{"a": "b"}, Actor: "test", Reason: "updated: metadata"}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeletePayment(ctx, tn.ID, p.ID, "test"); err == nil {
		t.Fatal("a delete outside a transaction ran")
	}
	if err := st.InTx(ctx, func(tx *store.Store) error { return tx.DeletePayment(ctx, other.ID, p.ID, "x") }); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("another tenant's delete: %v", err)
	}
	if err := st.InTx(ctx, func(tx *store.Store) error { return tx.DeletePayment(ctx, tn.ID, p.ID, "test") }); err != nil {
		t.Fatal(err)
	}
	q, err := st.GetPayment(ctx, tn.ID, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if q.Status != payment.StatusCanceled || q.DeletedAt == nil || q.Metadata["a"] != "b" || q.NextStep != payment.StepNone {
		t.Fatalf("deleted payment %+v", q)
	}
	if got := reserved(t, st, tn, inv); got != 0 {
		t.Fatalf("reserved after delete %d, want 0", got)
	}
	var n int
	if err := st.DB().QueryRow(`SELECT count(*) FROM payment_events WHERE payment_id = $1 AND (reason LIKE 'updated: metadata%'
		OR (from_status = 'PENDING' AND to_status = 'CANCELED' AND reason LIKE 'deleted by the merchant%'))`, p.ID).Scan(&n); err != nil || n != 2 {
		t.Fatalf("audit rows of the update and the delete: %d %v", n, err)
	}
	// a second delete finds nothing to delete
	if err := st.InTx(ctx, func(tx *store.Store) error { return tx.DeletePayment(ctx, tn.ID, p.ID, "test") }); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("second delete: %v", err)
	}
	// the schema refuses a deleted payment that is not a canceled one without attempts
	if _, err := st.DB().Exec(`UPDATE payments SET status = 'SUCCEEDED' WHERE id = $1`, p.ID); err == nil {
		t.Fatal("a deleted payment became SUCCEEDED")
	}
}
