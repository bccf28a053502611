package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

func paymentsCommand(open Opener, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "payments", Short: "Payments: look up, list, retry; those in review, and their resolution", RunE: group}
	c.AddCommand(paymentsGetCommand(open, stdout), paymentsListCommand(open, stdout), paymentsRetryCommand(open, stdout),
		reviewCommand(open, stdout), resolveCommand(open, stdout))
	return c
}

// reviewItem is one payment in review as `payments review --json` prints it.
type reviewItem struct {
	ID          string            `json:"id"`
	TenantID    string            `json:"tenant_id"`
	Amount      string            `json:"amount"`
	Currency    string            `json:"currency"`
	Method      string            `json:"method"`
	InReviewFor string            `json:"in_review_for"`
	Since       time.Time         `json:"since"`
	NextInquiry *time.Time        `json:"next_inquiry_at"`
	LastAnswer  string            `json:"last_answer"`
	Attempts    []reviewAttempt   `json:"attempts"`
	InvoiceID   string            `json:"invoice_id,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

type reviewAttempt struct {
	Number           int    `json:"number"`
	Status           string `json:"status"`
	Key              string `json:"idempotency_key"`
	ErrorCode        string `json:"error_code"`
	ErrorMessage     string `json:"error_message"`
	Inquiries        int    `json:"inquiries"`
	GatewayReference string `json:"gateway_reference"`
}

func reviewCommand(open Opener, stdout io.Writer) *cobra.Command {
	var asJSON bool
	var limit int
	c := &cobra.Command{
		Use:   "review",
		Short: "List payments in REQUIRES_REVIEW, longest first, with their attempts and the last answer of the gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				pays, err := env.Store.ReviewPayments(ctx, limit)
				if err != nil {
					return fail(ExitFailure, "list payments in review: %w", err)
				}
				now := env.Store.Now()
				items := make([]reviewItem, len(pays))
				for i, p := range pays {
					items[i] = toReviewItem(p, now)
				}
				if asJSON {
					return writeJSON(stdout, items)
				}
				return printReview(stdout, items)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many payments")
	return c
}

func toReviewItem(p store.InReview, now time.Time) reviewItem {
	it := reviewItem{ID: p.ID, TenantID: p.TenantID, Amount: payment.FormatMajor(p.Amount.Minor, p.Amount.Currency),
		Currency: p.Amount.Currency, Method: string(p.Method), Since: p.Since, InReviewFor: now.Sub(p.Since).Round(time.Second).String(),
		NextInquiry: p.NextStepAt, InvoiceID: p.InvoiceID, Metadata: p.Metadata}
	for _, a := range p.Attempts {
		it.Attempts = append(it.Attempts, reviewAttempt{Number: a.Number, Status: string(a.Status), Key: a.IdempotencyKey,
			ErrorCode: a.ErrorCode, ErrorMessage: a.ErrorMessage, Inquiries: a.InquiryCount, GatewayReference: a.GatewayReference})
		if a.Number == p.AttemptCount {
			it.LastAnswer = strings.TrimSpace(a.ErrorCode + ": " + a.ErrorMessage)
		}
	}
	return it
}

func printReview(w io.Writer, items []reviewItem) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "no payments in review")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PAYMENT\tTENANT\tAMOUNT\tMETHOD\tIN REVIEW\tATTEMPTS\tINQUIRIES\tNEXT INQUIRY\tLAST ANSWER")
	for _, it := range items {
		next, inq := "operator only", 0
		if it.NextInquiry != nil {
			next = it.NextInquiry.UTC().Format(time.RFC3339)
		}
		for _, a := range it.Attempts {
			inq += a.Inquiries
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%d\t%d\t%s\t%s\n", it.ID, it.TenantID, it.Amount, it.Currency, it.Method,
			it.InReviewFor, len(it.Attempts), inq, next, it.LastAnswer)
	}
	return tw.Flush()
}

// resolution is what `payments resolve --json` prints.
type resolution struct {
	PaymentID   string `json:"payment_id"`
	From        string `json:"from"`
	To          string `json:"to"`
	GatewaySays string `json:"gateway_says"` // charged, not_charged, unknown
	Gateway     string `json:"gateway_answer"`
	Forced      bool   `json:"forced"`
	Operator    string `json:"operator"`
	Reason      string `json:"reason"`
}

func resolveCommand(open Opener, stdout io.Writer) *cobra.Command {
	var succeeded, failed, force, asJSON bool
	var reason, operator string
	c := &cobra.Command{
		Use:   "resolve ID (--succeeded | --failed) --reason TEXT --operator NAME",
		Short: "Resolve a payment in review, after asking the gateway; audited with the operator and reason",
		Long: `Resolve a payment in REQUIRES_REVIEW as SUCCEEDED or FAILED. The gateway is asked first
(an inquiry by the attempt's idempotency key, which never charges): a resolution that
contradicts its answer (it says charged, you say failed; it says not charged, you say
succeeded) is refused with exit code 3 unless --force. The transition is guarded (the
payment must still be in review) and audited: the timeline shows operator and reason.
Its invoice lines move with it (paid on SUCCEEDED, released on FAILED).

Exit codes: 0 resolved, 1 failure, 2 usage, 3 refused (contradicts the gateway),
4 no such payment, or not in review.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if succeeded == failed {
				return fail(ExitUsage, "say --succeeded or --failed")
			}
			if strings.TrimSpace(reason) == "" || strings.TrimSpace(operator) == "" {
				return fail(ExitUsage, "--reason and --operator are required")
			}
			to := payment.StatusSucceeded
			if failed {
				to = payment.StatusFailed
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				out, err := resolve(ctx, env, args[0], to, strings.TrimSpace(reason), strings.TrimSpace(operator), force)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(stdout, out)
				}
				forced := ""
				if out.Forced {
					forced = " (forced)"
				}
				_, err = fmt.Fprintf(stdout, "%s: %s → %s%s; the gateway says %s (%s)\n", out.PaymentID, out.From, out.To,
					forced, out.GatewaySays, out.Gateway)
				return err
			})
		},
	}
	f := c.Flags()
	f.BoolVar(&succeeded, "succeeded", false, "the payment was charged")
	f.BoolVar(&failed, "failed", false, "the payment was not charged")
	f.StringVar(&reason, "reason", "", "why (recorded in the timeline)")
	f.StringVar(&operator, "operator", "", "who (recorded in the timeline)")
	f.BoolVar(&force, "force", false, "resolve even against the gateway's answer")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func resolve(ctx context.Context, env *Env, id string, to payment.Status, reason, operator string, force bool) (resolution, error) {
	out := resolution{PaymentID: id, From: string(payment.StatusRequiresReview), To: string(to), Operator: operator, Reason: reason}
	pay, err := env.Store.GetPayment(ctx, "", id)
	if errors.Is(err, payment.ErrNotFound) {
		return out, fail(ExitNotFound, "no payment %s", id)
	}
	if err != nil {
		return out, fail(ExitFailure, "load %s: %w", id, err)
	}
	if pay.Status != payment.StatusRequiresReview {
		return out, fail(ExitNotFound, "payment %s is %s, not in review", id, pay.Status)
	}
	var att payment.Attempt
	for _, a := range pay.Attempts {
		if a.Number == pay.AttemptCount {
			att = a
		}
	}
	if att.ID == "" {
		return out, fail(ExitFailure, "payment %s has no attempt to resolve", id)
	}
	res, gerr := env.Gateway.Inquire(ctx, att.IdempotencyKey)
	out.GatewaySays, out.Gateway = gatewaySays(res, gerr)
	contradicts := (out.GatewaySays == "charged" && to == payment.StatusFailed) ||
		(out.GatewaySays == "not_charged" && to == payment.StatusSucceeded)
	if contradicts && !force {
		return out, fail(ExitRefused, "refused: the gateway says %s (%s) about attempt %d; resolve as the gateway says, or use --force",
			out.GatewaySays, out.Gateway, att.Number)
	}
	out.Forced = contradicts
	why := fmt.Sprintf("resolved by operator %s: %s (the gateway says %s: %s", operator, reason, out.GatewaySays, out.Gateway)
	if out.Forced {
		why += "; forced against it"
	}
	why += ")"
	ref := ""
	if to == payment.StatusSucceeded {
		ref = res.Reference
	}
	err = env.Store.ResolveReview(ctx, store.Resolution{PaymentID: id, To: to, Attempt: att, GatewayReference: ref,
		Actor: "operator:" + operator, Reason: why})
	if errors.Is(err, payment.ErrStale) {
		return out, fail(ExitNotFound, "payment %s left review meanwhile", id)
	}
	if err != nil {
		return out, fail(ExitFailure, "resolve %s: %w", id, err)
	}
	return out, nil
}

// gatewaySays reads an inquiry's answer: charged, not_charged or unknown,
// and the answer in words.
func gatewaySays(res connector.Result, err error) (string, string) {
	if err != nil {
		return "unknown", "no answer: " + connector.AsError(err).Code
	}
	switch res.Status {
	case connector.StatusSucceeded, connector.StatusSettled:
		return "charged", string(res.Status) + " " + res.Reference
	case connector.StatusDeclined, connector.StatusNotFound, connector.StatusVoided, connector.StatusReturned:
		return "not_charged", strings.TrimSpace(string(res.Status) + " " + res.Code)
	}
	return "unknown", string(res.Status)
}
