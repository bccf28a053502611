package sandbox

import (
	"context"
	"fmt"
	"math/big"
	"math/bits"
	"strings"
	"testing"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// TestReferencesUnguessable: every charge and refund reference is ch_ or re_
// and 32 hex digits (128 bits), never repeated, in no order, with its bits
// evenly set, and not derived from Config.Seed: two sandboxes with the same
// seed give different references. A challenge page's URL is its reference,
// so none can be found by counting (ch_1, ch_2, …) or by knowing the seed.
func TestReferencesUnguessable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 400
	a, b := New(Config{Seed: 7}), New(Config{Seed: 7})
	seen := map[string]bool{}
	var charges []*big.Int
	ones, total := 0, 0
	record := func(ref string, re bool) {
		t.Helper()
		if re && !refundRefRE.MatchString(ref) || !re && !chargeRefRE.MatchString(ref) {
			t.Fatalf("reference %q, want %s and 32 hex digits", ref, map[bool]string{true: "re_", false: "ch_"}[re])
		}
		if seen[ref] {
			t.Fatalf("reference %s given twice", ref)
		}
		seen[ref] = true
		v, _ := new(big.Int).SetString(ref[3:], 16)
		for _, w := range v.Bits() {
			ones += bits.OnesCount(uint(w))
		}
		total += 128
		if !re {
			charges = append(charges, v)
		}
	}
	pms := []string{CardVisa, Card3DS, CardDeclined}
	for i := range n {
		for _, sb := range []*Sandbox{a, b} {
			req := card(fmt.Sprintf("pay_ref_%d", i), 1, pms[i%len(pms)])
			if i%4 == 3 {
				req = bank(req.PaymentID, 1, payment.MethodACH, BankAccountSettles)
			}
			res := must(t)(sb.Charge(ctx, req))
			record(res.Reference, false)
			if res.Status == connector.StatusRequiresAction && !strings.HasSuffix(res.ActionURL, "/challenge/"+res.Reference) {
				t.Errorf("ActionURL %s does not name the reference %s", res.ActionURL, res.Reference)
			}
			if res.Status == connector.StatusSucceeded && i%2 == 0 {
				record(must(t)(sb.Refund(ctx, connector.RefundRequest{IdempotencyKey: "re_" + req.PaymentID, PaymentID: req.PaymentID,
					GatewayReference: res.Reference, Amount: payment.Money{Minor: 1, Currency: "USD"}})).Reference, true)
			}
		}
	}
	// no sequence: neither rising nor falling, no constant step
	up, down, steps := 0, 0, map[string]bool{}
	for i := 1; i < len(charges); i++ {
		switch charges[i].Cmp(charges[i-1]) {
		case 1:
			up++
		case -1:
			down++
		}
		steps[new(big.Int).Sub(charges[i], charges[i-1]).String()] = true
	}
	if up < len(charges)/4 || down < len(charges)/4 || len(steps) < len(charges)-1 {
		t.Errorf("charge references in a sequence: %d rises, %d falls, %d distinct steps of %d", up, down, len(steps), len(charges)-1)
	}
	// about half the bits set (expected ±1σ ≈ 0.3% here; allow 2%)
	if frac := float64(ones) / float64(total); frac < 0.48 || frac > 0.52 {
		t.Errorf("%.4f of the reference bits are set, want about half", frac)
	}
}
