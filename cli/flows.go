package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/payd/payd/payment"
)

func flowsCommand(open Opener, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "flows", Short: "Payment flows: their plans and how they got there", RunE: group}
	c.AddCommand(flowsShowCommand(open, stdout))
	return c
}

func flowsShowCommand(open Opener, stdout io.Writer) *cobra.Command {
	var versions, asJSON bool
	c := &cobra.Command{
		Use:   "show FLOW_ID [--versions] [--json]",
		Short: "Show a payment flow's plan as a tree: batches, what blocks what, payments; --versions adds its history",
		Long: `Show a payment flow (any tenant's, by id) and its latest plan: the flow's status and
blocked reason, the money (due, collected, paid out, platform remainder, shortfall) in major
and minor units, then each batch with its status, the batches it waits for and what blocks
it, and its payments (direction, user, amount, status, payment id or "not created",
generation of a replacement). --versions adds what changed from each plan version to the
next. --json prints the flow and its plan (and with --versions every version) in the API's
shape, amounts as strings of minor units.

Exit codes: 0 shown, 1 failure, 2 usage, 4 no such flow.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				id := args[0]
				f, err := env.Store.FlowByID(ctx, id)
				if errors.Is(err, payment.ErrNotFound) {
					return fail(ExitNotFound, "no payment flow %s", id)
				}
				if err != nil {
					return fail(ExitFailure, "load flow %s: %w", id, err)
				}
				var plans []payment.Plan
				if versions {
					if plans, err = env.Store.FlowPlansByID(ctx, id); err != nil {
						return fail(ExitFailure, "load the plans of %s: %w", id, err)
					}
				}
				if asJSON {
					out := flowShow{Flow: toFlowJSON(f)}
					if f.Plan != nil {
						pj := toPlanJSON(*f.Plan)
						out.Plan = &pj
					}
					if versions {
						out.Versions = make([]planJSON, len(plans))
						for i, p := range plans {
							out.Versions[i] = toPlanJSON(p)
						}
					}
					return writeJSON(stdout, out)
				}
				return printFlow(stdout, f, plans, versions)
			})
		},
	}
	c.Flags().BoolVar(&versions, "versions", false, "also show every plan version and what changed between them")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printFlow(w io.Writer, f payment.Flow, plans []payment.Plan, versions bool) error {
	if f.Plan == nil {
		// Not reachable through the API (the create plans at once), but a
		// flow row may exist without a plan.
		if _, err := fmt.Fprintf(w, "flow %s  %s  no plan yet\n  invoice %s\n", f.ID, f.Status, f.InvoiceID); err != nil {
			return err
		}
	} else if err := RenderPlan(w, f, *f.Plan); err != nil {
		return err
	}
	if !versions {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\nhistory (%d plan versions)\n", len(plans)); err != nil {
		return err
	}
	return RenderPlanChanges(w, plans)
}

// flowShow is what `flows show --json` prints: the flow, its latest plan,
// and with --versions every plan version, oldest first.
type flowShow struct {
	Flow     flowJSON   `json:"flow"`
	Plan     *planJSON  `json:"plan"`
	Versions []planJSON `json:"versions,omitempty"`
}

type flowJSON struct {
	ID            string          `json:"id"`
	TenantID      string          `json:"tenant_id"`
	ExternalID    string          `json:"external_id"`
	Type          string          `json:"type"`
	Invoice       flowInvoiceJSON `json:"invoice"`
	Status        string          `json:"status"`
	BlockedReason *string         `json:"blocked_reason"`
	PlanVersion   int             `json:"plan_version"`
	Created       time.Time       `json:"created"`
	Modified      time.Time       `json:"modified"`
	SettledAt     *time.Time      `json:"settled_at"`
	CanceledAt    *time.Time      `json:"canceled_at"`
}

type flowInvoiceJSON struct {
	ID         string  `json:"id"`
	ExternalID *string `json:"external_id"`
}

// planJSON is a plan in the shape of the API's payment_plan (seed 000),
// with the plan's status and reason and each payment's generation.
type planJSON struct {
	Version       int         `json:"version"`
	GeneratedAt   time.Time   `json:"generated_at"`
	InvoiceID     string      `json:"invoice_id"`
	Status        string      `json:"status"`
	BlockedReason *string     `json:"blocked_reason"`
	Amounts       planAmounts `json:"amounts"`
	Batches       []batchJSON `json:"batches"`
}

// planAmounts: strings of minor units, as the API writes them.
type planAmounts struct {
	Due               string `json:"due"`
	Collected         string `json:"collected"`
	PaidOut           string `json:"paid_out"`
	PlatformRemainder string `json:"platform_remainder"`
	Shortfall         string `json:"shortfall"`
}

type batchJSON struct {
	BatchID       string            `json:"batch_id"`
	Label         string            `json:"label"`
	DependsOn     []string          `json:"depends_on"`
	Status        string            `json:"status"`
	BlockedReason *string           `json:"blocked_reason"`
	Payments      []planPaymentJSON `json:"payments"`
}

type planPaymentJSON struct {
	Direction  string       `json:"direction"`
	User       planUserJSON `json:"user"`
	Amount     string       `json:"amount"`
	Currency   string       `json:"currency"`
	Status     string       `json:"status"`
	PaymentID  *string      `json:"payment_id"` // null until created
	Generation int          `json:"generation"`
}

type planUserJSON struct {
	ID         string `json:"id"`
	ExternalID string `json:"external_id"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toFlowJSON(f payment.Flow) flowJSON {
	return flowJSON{ID: f.ID, TenantID: f.TenantID, ExternalID: f.ExternalID, Type: f.Type,
		Invoice: flowInvoiceJSON{ID: f.InvoiceID, ExternalID: optional(f.InvoiceExtID)}, Status: string(f.Status),
		BlockedReason: optional(f.BlockedReason), PlanVersion: f.PlanVersion, Created: f.CreatedAt, Modified: f.UpdatedAt,
		SettledAt: f.SettledAt, CanceledAt: f.CanceledAt}
}

func toPlanJSON(p payment.Plan) planJSON {
	m := func(n int64) string { return strconv.FormatInt(n, 10) }
	out := planJSON{Version: p.Version, GeneratedAt: p.GeneratedAt.UTC(), InvoiceID: p.InvoiceID, Status: string(p.Status),
		BlockedReason: optional(p.BlockedReason), Batches: make([]batchJSON, 0, len(p.Batches)),
		Amounts: planAmounts{Due: m(p.Due), Collected: m(p.Collected), PaidOut: m(p.PaidOut),
			PlatformRemainder: m(p.PlatformRemainder), Shortfall: m(p.Shortfall)}}
	for _, b := range p.Batches {
		bj := batchJSON{BatchID: b.ID, Label: b.Label, DependsOn: append([]string{}, b.DependsOn...), Status: b.Status,
			BlockedReason: optional(b.BlockedReason), Payments: make([]planPaymentJSON, 0, len(b.Payments))}
		for _, pp := range b.Payments {
			bj.Payments = append(bj.Payments, planPaymentJSON{Direction: pp.Direction,
				User: planUserJSON{ID: pp.UserID, ExternalID: pp.UserExternalID}, Amount: m(pp.Amount), Currency: pp.Currency,
				Status: pp.Status, PaymentID: optional(pp.PaymentID), Generation: pp.Generation})
		}
		out.Batches = append(out.Batches, bj)
	}
	return out
}
