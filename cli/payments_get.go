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

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// paymentItem is one payment as `payments get` and `payments list` print
// it: its canonical status and the status its API surface shows.
type paymentItem struct {
	ID        string `json:"id"`
	TenantID  string `json:"tenant_id"`
	Surface   string `json:"surface"`
	Status    string `json:"status"`               // canonical
	APIStatus string `json:"api_status,omitempty"` // as its surface's API shows it (payments, payouts)
	Amount    string `json:"amount"`               // major units, exact
	// AmountMinor is the amount in minor units of Currency.
	AmountMinor    int64  `json:"amount_minor"`
	Currency       string `json:"currency"`
	Method         string `json:"method"`
	RefundedAmount string `json:"refunded_amount"`
	// PaymentMethodID is the merchant's reference; left out for a session's
	// payment (the gateway's one-time token) and a payout (the
	// beneficiary's account key), as the events leave them out.
	PaymentMethodID  string            `json:"payment_method_id,omitempty"`
	InvoiceID        string            `json:"invoice_id,omitempty"`
	InvoiceNumber    string            `json:"invoice_number,omitempty"`
	NextStep         string            `json:"next_step,omitempty"`
	NextStepAt       *time.Time        `json:"next_step_at,omitempty"`
	Attempts         int               `json:"attempt_count"`
	GatewayReference string            `json:"gateway_reference,omitempty"`
	ErrorCode        string            `json:"error_code,omitempty"`
	ErrorMessage     string            `json:"error_message,omitempty"`
	SessionID        string            `json:"session_id,omitempty"`
	FlowID           string            `json:"flow_id,omitempty"`
	RetryOf          string            `json:"retry_of,omitempty"`   // the FAILED payment this one retries
	RetriedAs        string            `json:"retried_as,omitempty"` // the payment an operator retried this one as
	Metadata         map[string]string `json:"metadata,omitempty"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

// apiStatus is the status a payment's own API shows ("" for a surface
// whose objects are not payments: sessions show the session's status).
func apiStatus(p payment.Payment, imported string) string {
	switch p.Surface {
	case store.SurfacePayments:
		return payment.PaymentsStatusName(p.Status)
	case store.SurfacePayouts:
		return payment.PayoutStatusName(p.Status, p.Method, imported)
	}
	return ""
}

func toPaymentItem(p payment.Payment, imported string) paymentItem {
	it := paymentItem{ID: p.ID, TenantID: p.TenantID, Surface: p.Surface, Status: string(p.Status),
		APIStatus: apiStatus(p, imported), Amount: payment.FormatMajor(p.Amount.Minor, p.Amount.Currency),
		AmountMinor: p.Amount.Minor, Currency: p.Amount.Currency, Method: string(p.Method),
		RefundedAmount: payment.FormatMajor(p.RefundedAmount, p.Amount.Currency), InvoiceID: p.InvoiceID,
		InvoiceNumber: p.InvoiceNumber, NextStep: string(p.NextStep), NextStepAt: p.NextStepAt, Attempts: p.AttemptCount,
		GatewayReference: p.GatewayReference, ErrorCode: p.ErrorCode, ErrorMessage: p.ErrorMessage, SessionID: p.SessionID,
		FlowID: p.FlowID, Metadata: p.Metadata, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
	if p.Surface == store.SurfacePayments {
		it.PaymentMethodID = p.PaymentMethodID
	}
	if len(it.Metadata) == 0 {
		it.Metadata = nil
	}
	return it
}

type attemptItem struct {
	Number           int        `json:"number"`
	Status           string     `json:"status"`
	Key              string     `json:"idempotency_key"`
	FailureClass     string     `json:"failure_class,omitempty"`
	ErrorCode        string     `json:"error_code,omitempty"`
	ErrorMessage     string     `json:"error_message,omitempty"`
	GatewayReference string     `json:"gateway_reference,omitempty"`
	Inquiries        int        `json:"inquiries"`
	NextRetryAt      *time.Time `json:"next_retry_at,omitempty"`
	StartedAt        time.Time  `json:"started_at"`
	FinishedAt       *time.Time `json:"finished_at,omitempty"`
}

// eventItem is one audit row, in the canonical vocabulary, as the API's
// timeline shows it (from is null for the creation).
type eventItem struct {
	SessionID string  `json:"session_id,omitempty"` // a session's own transition
	From      *string `json:"from"`
	To        string  `json:"to"`
	Reason    string  `json:"reason"`
	Attempt   int     `json:"attempt_number"`
	Actor     string  `json:"actor"`
	At        string  `json:"created_at"`
}

// paymentDetail is what `payments get --json` prints.
type paymentDetail struct {
	Payment  paymentItem   `json:"payment"`
	Attempts []attemptItem `json:"attempts"`
	Timeline []eventItem   `json:"timeline"`
	// SessionEvents: the transitions of the payment session that recorded
	// the payment (all its payments'), oldest first.
	SessionEvents []eventItem `json:"session_events,omitempty"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func paymentsGetCommand(open Opener, stdout io.Writer) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "get ID [--json]",
		Short: "Show a payment (any tenant's): its status as payd and as its API name it, its attempts and its timeline",
		Long: `Show one payment of any tenant by id: the payment (canonical status and the status its API
surface shows, amount, method, invoice, next step, the payment it retries or was retried as),
every attempt (status, gateway idempotency key, failure class, error, gateway reference,
inquiries) and its timeline — the audit rows GET /v1/payments/{id}/timeline shows: every
transition and note with its reason, attempt and actor — and, for a payment a payment
session recorded, the session's transitions.

Exit codes: 0 shown, 1 failure, 2 usage, 4 no such payment.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				d, err := loadPaymentDetail(ctx, env.Store, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(stdout, d)
				}
				return printPaymentDetail(stdout, d)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func loadPaymentDetail(ctx context.Context, st *store.Store, id string) (paymentDetail, error) {
	var d paymentDetail
	p, err := st.GetPayment(ctx, "", id)
	if errors.Is(err, payment.ErrNotFound) {
		return d, fail(ExitNotFound, "no payment %s", id)
	}
	if err != nil {
		return d, fail(ExitFailure, "load %s: %w", id, err)
	}
	imported, err := st.ImportedStatuses(ctx, []string{p.ID})
	if err != nil {
		return d, fail(ExitFailure, "load %s: %w", id, err)
	}
	d.Payment = toPaymentItem(p, imported[p.ID])
	if d.Payment.RetriedAs, d.Payment.RetryOf, err = st.RetryOf(ctx, p.ID); err != nil {
		return d, fail(ExitFailure, "load %s: %w", id, err)
	}
	d.Attempts = make([]attemptItem, len(p.Attempts))
	for i, a := range p.Attempts {
		d.Attempts[i] = attemptItem{Number: a.Number, Status: string(a.Status), Key: a.IdempotencyKey,
			FailureClass: string(a.FailureClass), ErrorCode: a.ErrorCode, ErrorMessage: a.ErrorMessage,
			GatewayReference: a.GatewayReference, Inquiries: a.InquiryCount, NextRetryAt: a.NextRetryAt,
			StartedAt: a.StartedAt, FinishedAt: a.FinishedAt}
	}
	evs, err := st.Events(ctx, p.TenantID, p.ID)
	if err != nil {
		return d, fail(ExitFailure, "load the timeline of %s: %w", id, err)
	}
	d.Timeline = make([]eventItem, len(evs))
	for i, e := range evs {
		d.Timeline[i] = eventItem{From: strOrNil(string(e.From)), To: string(e.To), Reason: e.Reason,
			Attempt: e.AttemptNumber, Actor: e.Actor, At: e.CreatedAt.UTC().Format(time.RFC3339Nano)}
	}
	if p.SessionID != "" {
		sevs, err := st.SessionEvents(ctx, p.TenantID, p.SessionID)
		if err != nil {
			return d, fail(ExitFailure, "load the session timeline of %s: %w", id, err)
		}
		for _, e := range sevs {
			d.SessionEvents = append(d.SessionEvents, eventItem{SessionID: e.SessionID, From: strOrNil(string(e.From)),
				To: string(e.To), Reason: e.Reason, Actor: e.Actor, At: e.CreatedAt.UTC().Format(time.RFC3339Nano)})
		}
	}
	return d, nil
}

func printPaymentDetail(w io.Writer, d paymentDetail) error {
	p := d.Payment
	status := p.Status
	if p.APIStatus != "" && p.APIStatus != p.Status {
		status += " (" + p.Surface + " API: " + p.APIStatus + ")"
	}
	fmt.Fprintf(w, "payment %s  %s\n", p.ID, status)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
	}
	row("tenant", p.TenantID)
	row("surface", p.Surface)
	row("amount", p.Amount+" "+p.Currency)
	if p.RefundedAmount != payment.FormatMajor(0, p.Currency) {
		row("refunded", p.RefundedAmount+" "+p.Currency)
	}
	row("method", strings.TrimSpace(p.Method+" "+p.PaymentMethodID))
	row("invoice", strings.TrimSpace(p.InvoiceID+" "+p.InvoiceNumber))
	if p.NextStep != "" && p.NextStepAt != nil {
		row("next step", p.NextStep+" at "+p.NextStepAt.UTC().Format(time.RFC3339))
	}
	row("gateway ref", p.GatewayReference)
	row("error", strings.TrimSpace(p.ErrorCode+" "+p.ErrorMessage))
	row("session", p.SessionID)
	row("flow", p.FlowID)
	row("retry of", p.RetryOf)
	row("retried as", p.RetriedAs)
	row("created", p.CreatedAt.UTC().Format(time.RFC3339))
	row("updated", p.UpdatedAt.UTC().Format(time.RFC3339))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nattempts (%d)\n", len(d.Attempts))
	if len(d.Attempts) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tSTATUS\tKEY\tCLASS\tERROR\tGATEWAY REF\tINQUIRIES\tSTARTED\tFINISHED")
		for _, a := range d.Attempts {
			fin := ""
			if a.FinishedAt != nil {
				fin = a.FinishedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.Number, a.Status, a.Key, a.FailureClass,
				strings.TrimSpace(a.ErrorCode+" "+a.ErrorMessage), a.GatewayReference, a.Inquiries,
				a.StartedAt.UTC().Format(time.RFC3339), fin)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := printTimeline(w, "timeline", d.Timeline); err != nil {
		return err
	}
	if len(d.SessionEvents) > 0 {
		return printTimeline(w, "session "+d.SessionEvents[0].SessionID, d.SessionEvents)
	}
	return nil
}

func printTimeline(w io.Writer, title string, evs []eventItem) error {
	fmt.Fprintf(w, "\n%s (%d)\n", title, len(evs))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT\tFROM\tTO\tATTEMPT\tACTOR\tREASON")
	for _, e := range evs {
		from := "-"
		if e.From != nil {
			from = *e.From
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", e.At, from, e.To, e.Attempt, e.Actor, e.Reason)
	}
	return tw.Flush()
}
