package bench

// What a run posts: the classes of -mix (payment method, payment method id,
// the status each must end in), and how its payments are dealt to classes,
// currencies, amounts and invoices.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/payment"
)

// scenario is one class of posted payments and where they must end.
type scenario struct {
	Name   string         `json:"name"`
	Weight int            `json:"weight"`
	Method payment.Method `json:"method"`
	PM     string         `json:"payment_method_id"`
	Expect payment.Status `json:"expect"`
}

// mixClasses are the classes -mix knows, by name.
var mixClasses = map[string]scenario{
	"card":         {Method: payment.MethodCard, PM: sandbox.CardVisa},
	"declined":     {Method: payment.MethodCard, PM: sandbox.CardDeclined},
	"insufficient": {Method: payment.MethodCard, PM: sandbox.CardInsufficientFunds},
	"flaky":        {Method: payment.MethodCard, PM: sandbox.CardFlaky},
	"timeout":      {Method: payment.MethodCard, PM: sandbox.CardTimeoutAfterCharge},
	"ach":          {Method: payment.MethodACH, PM: "ba_" + sandbox.BankAccountSettles},
	"ach_invalid":  {Method: payment.MethodACH, PM: "ba_" + sandbox.BankAccountInvalid},
	"ach_return":   {Method: payment.MethodACH, PM: "ba_" + sandbox.BankAccountReturnedR01},
	"offline":      {Method: payment.MethodOffline},
}

func mixClassNames() []string {
	var names []string
	for n := range mixClasses {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// scenarios is the run's mix: -mix, or the one class -method/-pm/-expect.
func scenarios(o Options) ([]scenario, error) {
	if o.mix == "" {
		sc := scenario{Name: "single", Weight: 1, Method: payment.Method(o.method), PM: o.pm, Expect: payment.Status(o.expect)}
		var err error
		if sc.Expect == "" {
			if sc.Expect, err = expectedStatus(sc.Method, sc.PM); err != nil {
				return nil, err
			}
		} else if !sc.Expect.Valid() {
			return nil, fmt.Errorf("bench: -expect %q is not a canonical status", o.expect)
		}
		return []scenario{sc}, nil
	}
	var out []scenario
	seen := map[string]bool{}
	for part := range strings.SplitSeq(o.mix, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		weight, err := strconv.Atoi(w)
		sc, known := mixClasses[name]
		switch {
		case !ok || err != nil || weight < 1 || weight > 1000:
			return nil, fmt.Errorf("bench: -mix %q: want class=weight (1 to 1000): %w", part, ErrUsage)
		case !known:
			return nil, fmt.Errorf("bench: -mix: unknown class %q (known: %s): %w", name, strings.Join(mixClassNames(), ", "), ErrUsage)
		case seen[name]:
			return nil, fmt.Errorf("bench: -mix: class %q twice: %w", name, ErrUsage)
		}
		seen[name] = true
		sc.Name, sc.Weight = name, weight
		if sc.Expect, err = expectedStatus(sc.Method, sc.PM); err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// classOf deals payment i to a class: within every run of sum(weights)
// payments, each class gets its weight, in -mix order.
func classOf(classes []scenario, i int) int {
	total := 0
	for _, c := range classes {
		total += c.Weight
	}
	r := i % total
	for k, c := range classes {
		if r < c.Weight {
			return k
		}
		r -= c.Weight
	}
	return 0
}

// expectedStatus is the canonical status the sandbox drives a payment to
// (its magic values, docs/surfaces.md "The sandbox gateway"), or an error for
// a payment method the bench cannot finish.
func expectedStatus(m payment.Method, pm string) (payment.Status, error) {
	switch {
	case m == payment.MethodOffline || m == payment.MethodCredits:
		return payment.StatusSucceeded, nil
	case m == payment.MethodCard:
		switch pm {
		case sandbox.CardDeclined, sandbox.CardInsufficientFunds:
			return payment.StatusFailed, nil
		case sandbox.Card3DS:
			return "", fmt.Errorf("bench: %s waits for a customer in a browser; pass -expect to bench it anyway", pm)
		}
		return payment.StatusSucceeded, nil
	case m.BankRail():
		acct := strings.TrimPrefix(pm, "ba_")
		switch {
		case strings.HasPrefix(acct, "11111111"):
			return payment.StatusFailed, nil
		case len(acct) == 5 && strings.HasPrefix(acct, "100"):
			return payment.StatusReturned, nil
		}
		return payment.StatusSucceeded, nil
	}
	return "", fmt.Errorf("bench: no expected outcome for method %s; pass -expect", m)
}

// done reports whether a payment in status st will not move on by itself
// towards the expected status. A final status counts, except SUCCEEDED when
// the expectation lies beyond it (a bank payment settles, then is returned).
func (s scenario) done(st payment.Status) bool {
	if st == s.Expect {
		return true
	}
	return st.Final() && !(st == payment.StatusSucceeded && payment.CanTransition(st, s.Expect))
}

// usesGateway reports whether payments of this method are charged through
// the gateway, and so appear in the sandbox ledger.
func usesGateway(m payment.Method) bool { return m == payment.MethodCard || m.BankRail() }

// smallAmount is what a small payment pays, in minor units of its currency
// (12.50 USD, 1250 JPY, 1.250 BHD): every payment of a run without -amounts.
const smallAmount = 1250

// maxAmount is the largest amount payd's API takes for a payment and for an
// invoice's amount due, in minor units (intake.Config.MaxAmountMinor's
// default): a trillion dollars.
const maxAmount = 100_000_000_000_000

// perInvoice is the most payments any one invoice of the run takes.
func perInvoice(o Options) int {
	perCurrency := (o.n + len(o.currencies) - 1) / len(o.currencies)
	return (perCurrency + o.invoices - 1) / o.invoices
}

// largeAmount is what a large payment pays: as much as an invoice taking
// perInvoice payments can be due (with -amounts mixed, with room for its
// small ones), so that -invoices equal to -n gives every payment maxAmount.
func largeAmount(o Options) int64 {
	k := int64(perInvoice(o))
	if o.amounts == amountsMixed {
		return maxAmount/k - smallAmount
	}
	return maxAmount / k
}

// plan deals every payment of a run its class, currency, amount and
// invoice. Payment i is in currency i mod C (C currencies); the payments of
// one currency, in order (q = i div C), take the classes of -mix as the
// payments of a run without -currencies would, and pay their currency's
// invoices round robin. With -amounts mixed, small and large alternate
// within every round of the mix and change places from one round to the
// next, so that every class gets both.
type plan struct {
	classes    []scenario
	currencies []string
	amounts    string
	invoices   int   // per currency
	large      int64 // minor units of a large payment
	weights    int   // sum of the classes' weights: one round of the mix
}

// deal is one payment's share of the plan.
type deal struct {
	class    int   // index into plan.classes
	currency int   // index into plan.currencies
	amount   int64 // minor units
	invoice  int   // index into the run's invoices: currency × invoices + ordinal
}

func newPlan(o Options, classes []scenario) plan {
	p := plan{classes: classes, currencies: o.currencies, amounts: o.amounts, invoices: o.invoices, large: largeAmount(o)}
	for _, c := range classes {
		p.weights += c.Weight
	}
	return p
}

func (p plan) deal(i int) deal {
	c := i % len(p.currencies)
	q := i / len(p.currencies)
	d := deal{class: classOf(p.classes, q), currency: c, amount: smallAmount, invoice: c*p.invoices + q%p.invoices}
	switch p.amounts {
	case amountsLarge:
		d.amount = p.large
	case amountsMixed:
		if (q/p.weights+q%p.weights)%2 == 1 {
			d.amount = p.large
		}
	}
	return d
}

// dues is what each of the run's invoices is due: the sum of the amounts of
// the payments dealt to it, so that a run that succeeds pays them in full.
func (p plan) dues(n int) []int64 {
	out := make([]int64, len(p.currencies)*p.invoices)
	for i := range n {
		d := p.deal(i)
		out[d.invoice] += d.amount
	}
	return out
}

// invoiceExternalID names invoice j of currency cur in run runID; a run in
// one currency keeps the names it had before -currencies.
func (p plan) invoiceExternalID(runID string, cur string, j int) string {
	switch {
	case len(p.currencies) > 1:
		return fmt.Sprintf("bench-%s-%s-%d", runID, cur, j)
	case p.invoices > 1:
		return fmt.Sprintf("bench-%s-%d", runID, j)
	}
	return "bench-" + runID
}

// mixed reports whether the run deals other currencies or amounts than a
// run without -currencies and -amounts (USD, small); only then does the
// text report show figures per currency.
func (p plan) mixed() bool {
	return len(p.currencies) != 1 || p.currencies[0] != "USD" || p.amounts != amountsSmall
}

// describe is the run's currencies and amounts in a few words, for reports.
func (p plan) describe() string {
	s := "currencies " + strings.Join(p.currencies, ", ") + "; amounts " + p.amounts
	switch p.amounts {
	case amountsLarge:
		s += " (" + strconv.FormatInt(p.large, 10) + " minor units each)"
	case amountsMixed:
		s += " (" + strconv.Itoa(smallAmount) + " and " + strconv.FormatInt(p.large, 10) + " minor units)"
	}
	return s
}
