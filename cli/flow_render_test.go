package cli_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/payd/payd/cli"
	"github.com/payd/payd/payment"
)

// update rewrites the golden files of the flow rendering:
//
//	go test ./cli -run FlowRender -update
var update = flag.Bool("update", false, "rewrite testdata/flow_*.golden")

var r0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// sim is a flow's life as the store runs it, without the store: each
// recompute plans from the payments so far, creates what the plan calls
// for (ids pay_1, pay_2, …), plans again, and keeps a new version when the
// plan changed (store.RecomputeFlow's rules).
type sim struct {
	in    payment.FlowInput
	plans []payment.Plan
	n     int
}

func newSim() *sim {
	party := func(id string, amount int64, method string) payment.FlowParty {
		return payment.FlowParty{UserID: "usr_" + id, UserExternalID: id, Amount: amount, MethodID: method}
	}
	return &sim{in: payment.FlowInput{InvoiceID: "inv_demo", Currency: "USD", AmountDue: 10000,
		Payers: []payment.FlowParty{party("alice", 6000, "pm_card_visa"), party("bob", 4000, "ba_123456789")},
		Payees: []payment.FlowParty{party("carol", 5500, "acct_carol"), party("dave", 3500, "acct_dave")},
		Now:    r0}}
}

// recompute runs one recompute at minute m.
func (s *sim) recompute(m int) {
	s.in.Now = r0.Add(time.Duration(m) * time.Minute)
	plan := payment.PlanFlow(s.in)
	created := plan.ToCreate()
	for _, pp := range created {
		s.n++
		batch := payment.BatchPayins
		if pp.Direction == payment.DirectionPayout {
			batch = payment.BatchPayouts
		}
		s.in.Payments = append(s.in.Payments, payment.FlowPayment{PaymentID: fmt.Sprintf("pay_%d", s.n), Batch: batch,
			UserID: pp.UserID, Generation: pp.Generation, Amount: pp.Amount, MethodID: s.method(pp.UserID),
			Status: payment.StatusPending, CreatedAt: s.in.Now})
	}
	if len(created) > 0 {
		plan = payment.PlanFlow(s.in)
	}
	if len(s.plans) > 0 && plan.Equal(s.plans[len(s.plans)-1]) {
		return
	}
	plan.Version = len(s.plans) + 1
	s.plans = append(s.plans, plan)
}

func (s *sim) method(user string) string {
	for _, p := range append(append([]payment.FlowParty{}, s.in.Payers...), s.in.Payees...) {
		if p.UserID == user {
			return p.MethodID
		}
	}
	return ""
}

// set moves the user's latest payment in batch to a status.
func (s *sim) set(batch, user string, st payment.Status, settled bool) {
	i := -1
	for j, p := range s.in.Payments {
		if p.Batch == batch && p.UserID == "usr_"+user {
			i = j
		}
	}
	if i < 0 {
		panic("no payment of " + user + " in " + batch)
	}
	s.in.Payments[i].Status, s.in.Payments[i].Settled = st, settled
}

// returned marks the user's latest payment in batch returned at minute m.
func (s *sim) returned(batch, user string, m int) {
	s.set(batch, user, payment.StatusReturned, true)
	at := r0.Add(time.Duration(m) * time.Minute)
	for j := len(s.in.Payments) - 1; j >= 0; j-- {
		if p := s.in.Payments[j]; p.Batch == batch && p.UserID == "usr_"+user {
			s.in.Payments[j].ReturnedAt = &at
			return
		}
	}
}

func (s *sim) last() payment.Plan { return s.plans[len(s.plans)-1] }

// flow is the stored flow of the simulated plan.
func (s *sim) flow() payment.Flow {
	p := s.last()
	return payment.Flow{ID: "flw_demo", ExternalID: "order-42", Type: payment.FlowTypeSingleInvoice, InvoiceID: p.InvoiceID,
		InvoiceExtID: "inv-42", Status: p.Status, BlockedReason: p.BlockedReason, PlanVersion: p.Version, Plan: &p}
}

// settled2x2: two payers, two payees, everything settled (the platform keeps 10.00).
func settled2x2() *sim {
	s := newSim()
	s.recompute(0)
	s.set(payment.BatchPayins, "alice", payment.StatusSucceeded, true)
	s.set(payment.BatchPayins, "bob", payment.StatusSent, false)
	s.recompute(1)
	s.set(payment.BatchPayins, "bob", payment.StatusSucceeded, true)
	s.recompute(3)
	s.set(payment.BatchPayouts, "carol", payment.StatusSucceeded, true)
	s.set(payment.BatchPayouts, "dave", payment.StatusSucceeded, true)
	s.recompute(6)
	return s
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "flow_"+name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -run FlowRender -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (rerun with -update if the change is intended):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func renderPlan(t *testing.T, s *sim) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := cli.RenderPlan(&b, s.flow(), s.last()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestFlowRenderPlan: the plan trees of a settled 2×2 flow, a flow failed
// on a payin, and a flow short of money after a payin came back once the
// payouts had gone.
func TestFlowRenderPlan(t *testing.T) {
	t.Parallel()
	t.Run("settled", func(t *testing.T) {
		s := settled2x2()
		if got := s.last().Status; got != payment.FlowSettled {
			t.Fatalf("the settled case's flow is %s", got)
		}
		golden(t, "settled", renderPlan(t, s))
	})
	t.Run("payin_failed", func(t *testing.T) {
		s := newSim()
		s.recompute(0)
		s.set(payment.BatchPayins, "alice", payment.StatusSucceeded, true)
		s.set(payment.BatchPayins, "bob", payment.StatusFailed, false)
		s.recompute(1)
		if p := s.last(); p.Status != payment.FlowFailed || p.BlockedReason != payment.BlockedPayinFailed {
			t.Fatalf("the payin_failed case's flow is %s %q", p.Status, p.BlockedReason)
		}
		golden(t, "payin_failed", renderPlan(t, s))
	})
	t.Run("replacement", func(t *testing.T) {
		// bob's payin failed, then bob gave a new method: generation 2
		s := newSim()
		s.recompute(0)
		s.set(payment.BatchPayins, "alice", payment.StatusSucceeded, true)
		s.set(payment.BatchPayins, "bob", payment.StatusFailed, false)
		s.recompute(1)
		s.in.Payers[1].MethodID = "pm_card_mastercard"
		s.recompute(2)
		if p := s.last(); p.Status != payment.FlowProcessing || len(p.Batches[0].Payments) != 3 {
			t.Fatalf("the replacement case's flow is %s with %d payins", p.Status, len(p.Batches[0].Payments))
		}
		golden(t, "replacement", renderPlan(t, s))
	})
	t.Run("returned_after_payout", func(t *testing.T) {
		s := settled2x2()
		s.returned(payment.BatchPayins, "bob", 9)
		s.recompute(9)
		p := s.last()
		if p.Status != payment.FlowFailed || p.BlockedReason != payment.BlockedPayinReturnedAfterPayout || p.Shortfall != 4000 {
			t.Fatalf("the returned case's flow is %s %q shortfall %d", p.Status, p.BlockedReason, p.Shortfall)
		}
		golden(t, "returned_after_payout", renderPlan(t, s))
	})
}

// TestFlowRenderChanges: a flow's history over four versions — payins
// created, one settled and one on its way, payins settled and payouts
// created, everything settled.
func TestFlowRenderChanges(t *testing.T) {
	t.Parallel()
	s := settled2x2()
	if len(s.plans) != 4 {
		t.Fatalf("%d versions, want 4", len(s.plans))
	}
	var b bytes.Buffer
	if err := cli.RenderPlanChanges(&b, s.plans); err != nil {
		t.Fatal(err)
	}
	golden(t, "history", b.Bytes())
}
