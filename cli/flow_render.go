package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/payd/payd/payment"
)

// Rendering of payment flows (seed 000) for `payd flows show`: pure
// functions from a flow and its plans to text, so that the output is
// golden-tested (testdata/flow_*.golden) without a database.

// RenderPlan prints a flow's plan as a tree: the flow line (id, status,
// blocked reason, plan version, invoice), the plan's money in major and
// minor units, then each batch with its status, what it waits for and what
// blocks it, and its payments as branches (direction, user, amount, status,
// payment id or "not created", generation when it is a replacement).
func RenderPlan(w io.Writer, f payment.Flow, p payment.Plan) error {
	cur := planCurrency(p)
	var b strings.Builder
	id := f.ID
	if id == "" {
		id = "(unsaved flow)"
	}
	status := string(f.Status)
	if status == "" {
		status = string(p.Status)
	}
	fmt.Fprintf(&b, "flow %s  %s", id, status)
	if reason := flowReason(f.BlockedReason, f.ID == "", p.BlockedReason); reason != "" {
		fmt.Fprintf(&b, "  blocked_reason=%s", reason)
	}
	fmt.Fprintf(&b, "  plan v%d", p.Version)
	if !p.GeneratedAt.IsZero() {
		fmt.Fprintf(&b, " (generated %s)", stamp(p.GeneratedAt))
	}
	b.WriteByte('\n')
	inv := f.InvoiceID
	if inv == "" {
		inv = p.InvoiceID
	}
	fmt.Fprintf(&b, "  invoice %s", inv)
	if f.InvoiceExtID != "" {
		fmt.Fprintf(&b, " (%s)", f.InvoiceExtID)
	}
	if f.ExternalID != "" {
		fmt.Fprintf(&b, ", flow external id %s", f.ExternalID)
	}
	b.WriteByte('\n')
	if f.ID != "" && f.Status != "" && f.Status != p.Status && f.PlanVersion == p.Version {
		// A canceled flow keeps its status whatever its plan says.
		fmt.Fprintf(&b, "  (the plan says %s)\n", p.Status)
	}

	// Money: labels left, major units right-aligned, minor units in parentheses.
	label := "money"
	if cur != "" {
		label += " (" + cur + ")"
	}
	b.WriteString(label + "\n")
	money := []struct {
		name         string
		major, minor string
	}{{name: "due"}, {name: "collected"}, {name: "paid out"}, {name: "platform remainder"}, {name: "shortfall"}}
	wn, wa, wm := 0, 0, 0
	for i, v := range []int64{p.Due, p.Collected, p.PaidOut, p.PlatformRemainder, p.Shortfall} {
		money[i].major, money[i].minor = payment.FormatMajor(v, cur), "("+strconv.FormatInt(v, 10)+")"
		wn, wa, wm = max(wn, len(money[i].name)), max(wa, len(money[i].major)), max(wm, len(money[i].minor))
	}
	for _, m := range money {
		fmt.Fprintf(&b, "  %-*s  %*s  %*s\n", wn, m.name, wa, m.major, wm, m.minor)
	}

	// Batches.
	byID := map[string]payment.PlanBatch{}
	for _, bt := range p.Batches {
		byID[bt.ID] = bt
	}
	for _, bt := range p.Batches {
		b.WriteString("batch " + bt.ID + "  " + bt.Status)
		if len(bt.DependsOn) > 0 {
			b.WriteString("  waits for " + strings.Join(bt.DependsOn, ", "))
		}
		b.WriteByte('\n')
		for _, note := range batchNotes(bt, byID) {
			b.WriteString("│  " + note + "\n")
		}
		if len(bt.Payments) == 0 {
			b.WriteString("└─ (no payments)\n")
			continue
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for i, pp := range bt.Payments {
			branch := "├─"
			if i == len(bt.Payments)-1 {
				branch = "└─"
			}
			pid := pp.PaymentID
			if pid == "" {
				pid = "not created"
			}
			gen := ""
			if pp.Generation > 1 {
				gen = "generation " + strconv.Itoa(pp.Generation)
			}
			fmt.Fprintf(tw, "%s %s\t%s\t%s %s\t(%d)\t%s\t%s\t%s\n", branch, pp.Direction, userName(pp),
				payment.FormatMajor(pp.Amount, pp.Currency), pp.Currency, pp.Amount, pp.Status, pid, gen)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return writeTrimmed(w, b.String())
}

// writeTrimmed writes text without the spaces a table leaves at the ends
// of its lines.
func writeTrimmed(w io.Writer, text string) error {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// batchNotes says what blocks a batch: its own reason, and the batches it
// waits for that have not settled (with their reasons).
func batchNotes(bt payment.PlanBatch, byID map[string]payment.PlanBatch) []string {
	var notes []string
	if bt.BlockedReason != "" {
		notes = append(notes, "blocked: "+bt.BlockedReason)
	}
	if bt.Status == payment.BatchSettled || bt.Status == payment.BatchCanceled {
		return notes
	}
	started := slices.ContainsFunc(bt.Payments, func(pp payment.PlanPayment) bool { return pp.PaymentID != "" })
	for _, d := range bt.DependsOn {
		dep, ok := byID[d]
		var note string
		switch {
		case !ok:
			note = d + " is not in the plan"
		case dep.Status == payment.BatchSettled:
			continue
		case dep.BlockedReason != "":
			note = fmt.Sprintf("%s not settled (%s is %s: %s)", d, d, dep.Status, dep.BlockedReason)
		default:
			note = fmt.Sprintf("%s not settled (%s is %s)", d, d, dep.Status)
		}
		if started {
			notes = append(notes, "depends on "+strings.Replace(note, " not settled", ", not settled", 1))
		} else {
			notes = append(notes, "waiting: "+note)
		}
	}
	return notes
}

// RenderPlanChanges prints a flow's history, oldest version first: the
// first plan in a line, then for each later version what changed since the
// one before it (the flow's status, the money, batch statuses and reasons,
// payments planned, created and changing status).
func RenderPlanChanges(w io.Writer, plans []payment.Plan) error {
	if len(plans) == 0 {
		_, err := fmt.Fprintln(w, "no plan versions")
		return err
	}
	var b strings.Builder
	first := plans[0]
	fmt.Fprintf(&b, "v%d  %s  first plan: flow %s", first.Version, stamp(first.GeneratedAt), first.Status)
	if first.BlockedReason != "" {
		fmt.Fprintf(&b, " (%s)", first.BlockedReason)
	}
	n := 0
	for _, bt := range first.Batches {
		n += len(bt.Payments)
	}
	fmt.Fprintf(&b, ", %d payments planned\n", n)
	for _, bt := range first.Batches {
		fmt.Fprintf(&b, "    %s %s", bt.ID, bt.Status)
		if bt.BlockedReason != "" {
			fmt.Fprintf(&b, " (%s)", bt.BlockedReason)
		}
		created := 0
		for _, pp := range bt.Payments {
			if pp.PaymentID != "" {
				created++
			}
		}
		fmt.Fprintf(&b, ": %d payments, %d created\n", len(bt.Payments), created)
		for _, pp := range bt.Payments {
			if pp.PaymentID != "" {
				fmt.Fprintf(&b, "    + created %s %s\n", paymentName(pp), pp.PaymentID)
			}
		}
	}
	for i := 1; i < len(plans); i++ {
		prev, cur := plans[i-1], plans[i]
		fmt.Fprintf(&b, "v%d  %s\n", cur.Version, stamp(cur.GeneratedAt))
		changes := planChanges(prev, cur)
		if len(changes) == 0 {
			changes = []string{"(no change the history shows)"}
		}
		for _, c := range changes {
			fmt.Fprintf(&b, "    %s\n", c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// planChanges lists what changed from one plan version to the next.
func planChanges(prev, cur payment.Plan) []string {
	var out []string
	if prev.Status != cur.Status || prev.BlockedReason != cur.BlockedReason {
		out = append(out, fmt.Sprintf("flow %s → %s", withReason(string(prev.Status), prev.BlockedReason),
			withReason(string(cur.Status), cur.BlockedReason)))
	}
	curr := planCurrency(cur)
	for _, m := range []struct {
		name     string
		from, to int64
	}{{"due", prev.Due, cur.Due}, {"collected", prev.Collected, cur.Collected}, {"paid out", prev.PaidOut, cur.PaidOut},
		{"platform remainder", prev.PlatformRemainder, cur.PlatformRemainder}, {"shortfall", prev.Shortfall, cur.Shortfall}} {
		if m.from != m.to {
			out = append(out, fmt.Sprintf("%s %s → %s", m.name, payment.FormatMajor(m.from, curr), payment.FormatMajor(m.to, curr)))
		}
	}
	before := map[string]payment.PlanBatch{}
	for _, bt := range prev.Batches {
		before[bt.ID] = bt
	}
	for _, bt := range cur.Batches {
		old, ok := before[bt.ID]
		delete(before, bt.ID)
		if !ok {
			out = append(out, fmt.Sprintf("batch %s added (%s)", bt.ID, withReason(bt.Status, bt.BlockedReason)))
		} else if old.Status != bt.Status || old.BlockedReason != bt.BlockedReason {
			out = append(out, fmt.Sprintf("batch %s %s → %s", bt.ID, withReason(old.Status, old.BlockedReason),
				withReason(bt.Status, bt.BlockedReason)))
		}
		olds := map[string]payment.PlanPayment{}
		for _, pp := range old.Payments {
			olds[paymentKey(pp)] = pp
		}
		for _, pp := range bt.Payments {
			k := paymentKey(pp)
			op, had := olds[k]
			delete(olds, k)
			switch {
			case !had && pp.PaymentID != "":
				out = append(out, fmt.Sprintf("+ created %s %s (%s)", paymentName(pp), pp.PaymentID, pp.Status))
			case !had:
				out = append(out, fmt.Sprintf("+ planned %s (%s)", paymentName(pp), pp.Status))
			case op.PaymentID == "" && pp.PaymentID != "":
				out = append(out, fmt.Sprintf("+ created %s %s (%s)", paymentName(pp), pp.PaymentID, pp.Status))
			case op.PaymentID != pp.PaymentID:
				out = append(out, fmt.Sprintf("~ %s is now payment %s (was %s)", paymentName(pp), orNone(pp.PaymentID), op.PaymentID))
			}
			if had && op.Status != pp.Status {
				id := pp.PaymentID
				if id == "" {
					id = "not created"
				}
				out = append(out, fmt.Sprintf("~ %s %s: %s → %s", paymentName(pp), id, op.Status, pp.Status))
			}
			if had && op.Amount != pp.Amount {
				out = append(out, fmt.Sprintf("~ %s: amount %s → %s", paymentName(pp), payment.FormatMajor(op.Amount, pp.Currency),
					payment.FormatMajor(pp.Amount, pp.Currency)))
			}
		}
		gone := make([]string, 0, len(olds))
		for k := range olds {
			gone = append(gone, k)
		}
		slices.Sort(gone)
		for _, k := range gone {
			out = append(out, fmt.Sprintf("- %s no longer in the plan", paymentName(olds[k])))
		}
	}
	gone := make([]string, 0, len(before))
	for id := range before {
		gone = append(gone, id)
	}
	slices.Sort(gone)
	for _, id := range gone {
		out = append(out, "batch "+id+" no longer in the plan")
	}
	return out
}

// paymentKey identifies a plan payment across versions: its batch is the
// caller's; the direction, user and generation are stable.
func paymentKey(pp payment.PlanPayment) string {
	return pp.Direction + "\x00" + pp.UserID + "\x00" + strconv.Itoa(pp.Generation)
}

// paymentName is a plan payment in words: "payin alice 60.00 USD", with its
// generation when it is a replacement.
func paymentName(pp payment.PlanPayment) string {
	s := fmt.Sprintf("%s %s %s %s", pp.Direction, userName(pp), payment.FormatMajor(pp.Amount, pp.Currency), pp.Currency)
	if pp.Generation > 1 {
		s += " (generation " + strconv.Itoa(pp.Generation) + ")"
	}
	return s
}

func userName(pp payment.PlanPayment) string {
	if pp.UserExternalID != "" {
		return pp.UserExternalID
	}
	if pp.UserID != "" {
		return pp.UserID
	}
	return "?"
}

func withReason(status, reason string) string {
	if status == "" {
		status = "-"
	}
	if reason == "" {
		return status
	}
	return status + " (" + reason + ")"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// planCurrency is the plan's currency: its payments'. A plan without
// payments has none ("": amounts are formatted with two decimals).
func planCurrency(p payment.Plan) string {
	for _, bt := range p.Batches {
		for _, pp := range bt.Payments {
			if pp.Currency != "" {
				return pp.Currency
			}
		}
	}
	return ""
}

// flowReason is the flow's blocked reason, or the plan's when the flow is not a
// stored one (useFallback).
func flowReason(reason string, useFallback bool, fallback string) string {
	if reason == "" && useFallback {
		return fallback
	}
	return reason
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
