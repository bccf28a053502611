package store_test

import (
	"context"
	"errors"
	"math/big"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// The invoice side of refunds and returns (issue 19): every line a payment
// applies to an invoice gives back, in the refund's own transaction, its
// part of the payment's cumulative refunded amount, carved out of the lines
// oldest first and converted to each line's currency exactly; so the books
// balance to the minor unit for any amount the API accepts (1e14 minor
// units) in currencies of 0, 2 and 3 decimals.

var currencies = []string{"JPY", "USD", "BHD"}

// world is one check's invoices and payments, as the test expects them.
type world struct {
	st       *store.Store
	tenant   string
	cur      map[string]string // invoice id → currency
	invoices []string
	pays     []*mpay
}

type mpay struct {
	id       string
	currency string
	amount   int64
	refunded int64
	status   payment.Status
}

func (w *world) invoice(t *rapid.T, currency string, due int64) string {
	inv, err := w.st.CreateInvoice(context.Background(), store.NewInvoice{TenantID: w.tenant,
		ExternalID: store.NewID("x-"), Currency: currency, AmountDue: due})
	if err != nil {
		t.Fatalf("invoice of %d %s: %v", due, currency, err)
	}
	w.cur[inv.ID] = currency
	w.invoices = append(w.invoices, inv.ID)
	return inv.ID
}

// payment creates a card payment already PROCESSING (its attempt made).
func (w *world) payment(t *rapid.T, currency string, amount int64) *mpay {
	ctx := context.Background()
	p, err := w.st.InsertPayment(ctx, store.NewPayment{TenantID: w.tenant, Surface: "payments",
		Amount: payment.Money{Minor: amount, Currency: currency}, Method: payment.MethodCard, PaymentMethodID: "pm_card_visa",
		ProcessPayment: true, Actor: "test"})
	if err != nil {
		t.Fatalf("payment of %d %s: %v", amount, currency, err)
	}
	if _, err := w.st.Apply(ctx, store.Change{PaymentID: p.ID, From: payment.StatusPending, To: payment.StatusProcessing, AnySeq: true}); err != nil {
		t.Fatal(err)
	}
	mp := &mpay{id: p.ID, currency: currency, amount: amount, status: payment.StatusProcessing}
	w.pays = append(w.pays, mp)
	return mp
}

// line is a line of p on inv: applied in the invoice's currency, paid in the
// payment's (FX when they differ: any ratio of the two amounts).
func (w *world) line(t *rapid.T, p *mpay, inv string, applied, fxPaid int64) payment.Line {
	c := w.cur[inv]
	l := payment.Line{InvoiceID: inv, AppliedAmount: applied, PaymentAmount: applied, AppliedCurrency: c}
	if c != p.currency {
		l.PaymentAmount = fxPaid
	}
	return l
}

func (w *world) move(t *rapid.T, p *mpay, to payment.Status, c store.Change) {
	c.PaymentID, c.From, c.To, c.AnySeq = p.id, p.status, to, true
	if _, err := w.st.Apply(context.Background(), c); err != nil {
		t.Fatalf("%s → %s: %v", p.status, to, err)
	}
	p.status = to
}

// refund refunds amount of p as the refund worker does: reserve it, then,
// in one transaction under the payment's lock, record the refund's success
// and move the payment with RefundedDelta (processor/payment_refund.go).
// With fail the gateway declines it and the reservation is given back.
func (w *world) refund(t *rapid.T, p *mpay, amount int64, fail bool) {
	to, err := refundVia(context.Background(), w.st, w.tenant, p.id, amount, fail)
	if err != nil {
		t.Fatalf("refund %d of %+v (declined: %v): %v", amount, p, fail, err)
	}
	if !fail {
		p.refunded += amount
		p.status = to
	}
}

// halfUp is c·a/p rounded half up, in math/big: the oracle of a line's
// release, independent of payment.MulDiv.
func halfUp(c, a, p int64) int64 {
	n := new(big.Int).Mul(big.NewInt(c), big.NewInt(a))
	n.Lsh(n, 1).Add(n, big.NewInt(p))
	return n.Quo(n, big.NewInt(2*p)).Int64()
}

// check is the invariant after every step: each line has released exactly
// what the rule says for its payment's status and cumulative refunded
// amount; a payment of one currency has released exactly what was refunded
// (up to what its lines apply); no payment applies more than it kept; each
// invoice's paid and reserved amounts are exactly what its lines still apply,
// never negative, never above its amount due.
func (w *world) check(t *rapid.T) {
	ctx := context.Background()
	ids := make([]string, len(w.pays))
	for i, p := range w.pays {
		ids[i] = p.id
	}
	lines, err := w.st.Lines(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	paid, reserved := map[string]int64{}, map[string]int64{}
	for _, p := range w.pays {
		got, err := w.st.GetPayment(ctx, w.tenant, p.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != p.status || got.RefundedAmount != p.refunded || got.RefundPendingAmount != 0 {
			t.Fatalf("payment %+v is %s, refunded %d, pending %d", p, got.Status, got.RefundedAmount, got.RefundPendingAmount)
		}
		rest := p.refunded
		var sumPay, sumCarved, sumReleased int64
		oneCurrency := true
		for _, l := range lines[p.id] {
			var want int64
			wantState := "applied"
			switch p.status {
			case payment.StatusFailed, payment.StatusCanceled, payment.StatusReturned:
				want, wantState = l.AppliedAmount, "released"
			case payment.StatusPending, payment.StatusProcessing:
				want, wantState = 0, "reserved"
			default: // succeeded, partially refunded, refunded
				c := min(rest, l.PaymentAmount)
				rest -= c
				sumCarved += c
				want = halfUp(c, l.AppliedAmount, l.PaymentAmount)
				if want == l.AppliedAmount {
					wantState = "released"
				}
			}
			if l.ReleasedAmount != want || l.State != wantState {
				t.Fatalf("line %s of %+v (%d %s for %d %s): %s, released %d; want %s, %d (lines %+v)", l.ID, p,
					l.AppliedAmount, l.AppliedCurrency, l.PaymentAmount, p.currency, l.State, l.ReleasedAmount, wantState, want, lines[p.id])
			}
			sumPay += l.PaymentAmount
			sumReleased += l.ReleasedAmount
			oneCurrency = oneCurrency && l.AppliedCurrency == p.currency
			if l.State != "released" {
				reserved[l.InvoiceID] += l.AppliedAmount - l.ReleasedAmount
				if l.State == "applied" {
					paid[l.InvoiceID] += l.AppliedAmount - l.ReleasedAmount
				}
			}
		}
		if refundable(p) || p.status == payment.StatusRefunded {
			// releases add up to what was refunded, to the unit
			if oneCurrency && sumReleased != min(p.refunded, sumPay) {
				t.Fatalf("payment %+v refunded %d but its lines released %d", p, p.refunded, sumReleased)
			}
			// what the lines still apply is at most what the payment kept
			if sumPay-sumCarved > p.amount-p.refunded {
				t.Fatalf("payment %+v keeps %d but its lines still apply %d", p, p.amount-p.refunded, sumPay-sumCarved)
			}
		}
		// lines never apply more than the payment's amount (lines released
		// for a failure or a return no longer count)
		if sumPay > p.amount && p.status != payment.StatusFailed && p.status != payment.StatusReturned {
			t.Fatalf("payment %+v has lines of %d", p, sumPay)
		}
	}
	for _, id := range w.invoices {
		inv, err := w.st.GetInvoice(ctx, w.tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if inv.AmountPaid != paid[id] || inv.AmountReserved != reserved[id] {
			t.Fatalf("invoice %s (%s): paid %d reserved %d; its lines apply %d and reserve %d", id, inv.Currency,
				inv.AmountPaid, inv.AmountReserved, paid[id], reserved[id])
		}
		if inv.AmountPaid < 0 || inv.AmountPaid > inv.AmountReserved || inv.AmountReserved > inv.AmountDue {
			t.Fatalf("invoice %s: paid %d reserved %d due %d", id, inv.AmountPaid, inv.AmountReserved, inv.AmountDue)
		}
	}
}

func (w *world) pick(t *rapid.T, label string, ok func(*mpay) bool) *mpay {
	var from []*mpay
	for _, p := range w.pays {
		if ok(p) {
			from = append(from, p)
		}
	}
	if len(from) == 0 {
		t.Skip("no payment to " + label)
	}
	return rapid.SampledFrom(from).Draw(t, label)
}

func refundable(p *mpay) bool {
	return p.status == payment.StatusSucceeded || p.status == payment.StatusPartiallyRefunded
}

// TestRefundReleasesProperty: random invoices and payments in JPY, USD and
// BHD, amounts from one minor unit to 1e14, several lines per payment (FX
// ones too) over several invoices; then a random sequence of successes,
// failures, partial refunds, declined refunds, returns, and lines added or
// replaced (also after refunds); the books are checked after every step, and
// at the end, once every payment is refunded in full, returned or failed,
// every invoice is back to nothing paid and nothing reserved.
func TestRefundReleasesProperty(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	rapid.Check(t, func(t *rapid.T) {
		w := &world{st: st, tenant: tn.ID, cur: map[string]string{}}
		scale := rapid.SampledFrom([]int64{10, 1_000, 1e9, 1e14}).Draw(t, "scale")
		whole := rapid.Bool().Draw(t, "one line of up to the whole scale")
		nInv, nPay, maxLines, limit := rapid.IntRange(1, 3).Draw(t, "invoices"), rapid.IntRange(1, 2).Draw(t, "payments"), 3, max(scale/16, 3)
		if whole {
			nInv, nPay, maxLines, limit = 1, 1, 1, scale
		}
		amt := rapid.Int64Range(1, limit)
		slack := func(label string) int64 {
			if whole {
				return 0
			}
			return rapid.Int64Range(0, limit).Draw(t, label)
		}
		invCur := make([]string, nInv)
		for i := range invCur {
			invCur[i] = rapid.SampledFrom(currencies).Draw(t, "invoice currency")
		}
		// draw every line first: an invoice's amount due covers what its lines apply
		type draft struct {
			inv             int
			applied, fxPaid int64
		}
		drafts := make([][]draft, nPay)
		payCur := make([]string, nPay)
		due := make([]int64, nInv)
		for i := range drafts {
			payCur[i] = rapid.SampledFrom(currencies).Draw(t, "payment currency")
			for range rapid.IntRange(1, maxLines).Draw(t, "lines") {
				d := draft{inv: rapid.IntRange(0, nInv-1).Draw(t, "invoice"), applied: amt.Draw(t, "applied"), fxPaid: amt.Draw(t, "fx paid")}
				due[d.inv] += d.applied
				drafts[i] = append(drafts[i], d)
			}
		}
		invIDs := make([]string, nInv)
		for i := range invIDs {
			invIDs[i] = w.invoice(t, invCur[i], due[i]+slack("invoice slack"))
		}
		for i, ds := range drafts {
			lines := make([]payment.Line, 0, len(ds))
			var sum int64
			p := &mpay{currency: payCur[i]}
			for _, d := range ds {
				l := w.line(t, p, invIDs[d.inv], d.applied, d.fxPaid)
				sum += l.PaymentAmount
				lines = append(lines, l)
			}
			p = w.payment(t, payCur[i], sum+slack("unapplied"))
			if err := st.ApplyLines(context.Background(), p.id, lines, true); err != nil {
				t.Fatalf("apply %+v: %v", lines, err)
			}
		}
		w.check(t)
		t.Repeat(map[string]func(*rapid.T){
			"": w.check,
			"succeed": func(t *rapid.T) {
				w.move(t, w.pick(t, "to succeed", func(p *mpay) bool { return p.status == payment.StatusProcessing }), payment.StatusSucceeded, store.Change{})
			},
			"fail": func(t *rapid.T) {
				w.move(t, w.pick(t, "to fail", func(p *mpay) bool { return p.status == payment.StatusProcessing }), payment.StatusFailed, store.Change{})
			},
			"return": func(t *rapid.T) {
				w.move(t, w.pick(t, "to return", func(p *mpay) bool { return p.status == payment.StatusSucceeded }), payment.StatusReturned,
					store.Change{ReturnCode: "R01"})
			},
			"refund part": func(t *rapid.T) {
				p := w.pick(t, "to refund", refundable)
				left := p.amount - p.refunded
				r := rapid.OneOf(rapid.Int64Range(1, left), rapid.Int64Range(1, min(left, 100)), rapid.Just(left)).Draw(t, "refund")
				w.refund(t, p, r, false)
			},
			"refund declined": func(t *rapid.T) {
				p := w.pick(t, "to refund", refundable)
				w.refund(t, p, rapid.Int64Range(1, p.amount-p.refunded).Draw(t, "declined refund"), true)
			},
			"lines": func(t *rapid.T) {
				p := w.pick(t, "to apply lines to", func(*mpay) bool { return true })
				var lines []payment.Line
				for range rapid.IntRange(1, 2).Draw(t, "new lines") {
					lines = append(lines, w.line(t, p, rapid.SampledFrom(invIDs).Draw(t, "invoice"), amt.Draw(t, "applied"), amt.Draw(t, "fx paid")))
				}
				replace := rapid.Bool().Draw(t, "replace")
				before, _ := st.Lines(context.Background(), []string{p.id})
				err := st.ApplyLines(context.Background(), p.id, lines, replace)
				var over *payment.InvoiceOverAppliedError
				switch {
				case errors.Is(err, payment.ErrLinesExceedAmount), errors.As(err, &over):
					after, _ := st.Lines(context.Background(), []string{p.id})
					if !slices.EqualFunc(before[p.id], after[p.id], func(a, b payment.Line) bool { return a.ID == b.ID && a.ReleasedAmount == b.ReleasedAmount }) {
						t.Fatalf("refused lines changed the payment's lines")
					}
				case err != nil:
					t.Fatalf("apply %+v (replace %v) to %+v: %v", lines, replace, p, err)
				}
			},
		})
		// The end: whatever is still open is settled, and every payment that
		// succeeded is refunded in full. Nothing is left on any invoice.
		for _, p := range w.pays {
			if p.status == payment.StatusProcessing {
				w.move(t, p, payment.StatusSucceeded, store.Change{})
			}
			if refundable(p) {
				w.refund(t, p, p.amount-p.refunded, false)
			}
		}
		w.check(t)
		for _, id := range invIDs {
			inv, err := st.GetInvoice(context.Background(), tn.ID, id)
			if err != nil || inv.AmountPaid != 0 || inv.AmountReserved != 0 {
				t.Fatalf("after every payment was refunded or returned, invoice %s: paid %d reserved %d, %v", id, inv.AmountPaid, inv.AmountReserved, err)
			}
		}
	})
}

// TestRefundReleasesIssue19: the reported invoice of 60,000,000.00 USD paid
// 50,000,000.00 and refunded in full shows 0.00 paid (it showed
// 36,893,488.15: the int64 product overflowed); partial refunds in any
// split, on the largest amounts the API accepts, give back exactly what was
// refunded.
func TestRefundReleasesIssue19(t *testing.T) {
	t.Parallel()
	st, tn := open(t)
	ctx := context.Background()
	for _, c := range []struct {
		name          string
		currency      string
		due, amount   int64
		refunds       []int64
		wantPaidAfter []int64
	}{
		{"issue 19", "USD", 60_000_000_00, 50_000_000_00, []int64{50_000_000_00}, []int64{0}},
		{"past 2^63 when multiplied", "USD", 1e14, 1e14, []int64{3_037_000_500, 1e14 - 3_037_000_500}, []int64{1e14 - 3_037_000_500, 0}},
		{"largest JPY in three", "JPY", 1e14, 1e14, []int64{1, 33_333_333_333_333, 66_666_666_666_666}, []int64{1e14 - 1, 66_666_666_666_666, 0}},
		{"largest BHD by one unit, then the rest", "BHD", 1e14, 1e14 - 1, []int64{1, 1, 1e14 - 3}, []int64{1e14 - 2, 1e14 - 3, 0}},
	} {
		inv, err := st.CreateInvoice(ctx, store.NewInvoice{TenantID: tn.ID, ExternalID: "issue19-" + c.name, Currency: c.currency, AmountDue: c.due})
		if err != nil {
			t.Fatal(err)
		}
		p, err := st.InsertPayment(ctx, store.NewPayment{TenantID: tn.ID, Surface: "payments",
			Amount: payment.Money{Minor: c.amount, Currency: c.currency}, Method: payment.MethodCard, PaymentMethodID: "pm_card_visa",
			ProcessPayment: true, Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.ApplyLines(ctx, p.ID, []payment.Line{{InvoiceID: inv.ID, AppliedAmount: c.amount, PaymentAmount: c.amount,
			AppliedCurrency: c.currency}}, true); err != nil {
			t.Fatal(err)
		}
		for _, to := range []payment.Status{payment.StatusProcessing, payment.StatusSucceeded} {
			cur, _ := st.GetPayment(ctx, tn.ID, p.ID)
			if _, err := st.Apply(ctx, store.Change{PaymentID: p.ID, From: cur.Status, To: to, AnySeq: true}); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range c.refunds {
			if _, err := refundVia(ctx, st, tn.ID, p.ID, r, false); err != nil {
				t.Fatalf("%s: refund %d: %v", c.name, r, err)
			}
			got, err := st.GetInvoice(ctx, tn.ID, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.AmountPaid != c.wantPaidAfter[i] || got.AmountReserved != c.wantPaidAfter[i] || got.AmountRemaining() != c.due-c.wantPaidAfter[i] {
				t.Errorf("%s: after refund %d of %s %s the invoice shows paid %s, reserved %s; want %s", c.name, i+1,
					payment.FormatMajor(r, c.currency), c.currency, payment.FormatMajor(got.AmountPaid, c.currency),
					payment.FormatMajor(got.AmountReserved, c.currency), payment.FormatMajor(c.wantPaidAfter[i], c.currency))
			}
		}
		if got, _ := st.GetPayment(ctx, tn.ID, p.ID); got.Status != payment.StatusRefunded {
			t.Errorf("%s: payment is %s after its full refund", c.name, got.Status)
		}
	}
}

// refundVia refunds amount of a payment as the refund worker does: reserve
// it, then, in one transaction under the payment's lock, record the refund's
// outcome and move the payment with RefundedDelta
// (processor/payment_refund.go). With fail the gateway declined it and the
// reservation is given back. It returns the payment's new status.
func refundVia(ctx context.Context, st *store.Store, tenant, paymentID string, amount int64, fail bool) (payment.Status, error) {
	r, err := st.CreateRefund(ctx, tenant, paymentID, amount, "", "test")
	if err != nil {
		return "", err
	}
	var to payment.Status
	err = st.InTx(ctx, func(tx *store.Store) error {
		cur, err := tx.LockPayment(ctx, paymentID)
		if err != nil {
			return err
		}
		to = cur.Status
		if fail {
			if err := tx.FinishRefund(ctx, r.ID, r.StepSeq, payment.RefundFailed, "", "declined"); err != nil {
				return err
			}
			_, err := tx.Apply(ctx, store.Change{PaymentID: paymentID, From: cur.Status, To: cur.Status, AnySeq: true,
				KeepSchedule: true, RefundReleased: amount})
			return err
		}
		if err := tx.FinishRefund(ctx, r.ID, r.StepSeq, payment.RefundSucceeded, "re_1", ""); err != nil {
			return err
		}
		to = payment.StatusPartiallyRefunded
		if cur.RefundedAmount+amount == cur.Amount.Minor {
			to = payment.StatusRefunded
		}
		_, err = tx.Apply(ctx, store.Change{PaymentID: paymentID, From: cur.Status, To: to, AnySeq: true, KeepSchedule: true,
			Audit: true, RefundedDelta: amount, Reason: "refund"})
		return err
	})
	return to, err
}
