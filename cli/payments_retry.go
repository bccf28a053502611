package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// retried is what `payments retry --json` prints.
type retried struct {
	PaymentID   string `json:"payment_id"` // the FAILED payment; it stays FAILED
	RetriedAs   string `json:"retried_as"` // the new payment
	Status      string `json:"status"`     // the new payment's: PENDING
	GatewaySays string `json:"gateway_says"`
	Gateway     string `json:"gateway_answer"`
	Enqueued    bool   `json:"enqueued"` // false: the sweeper enqueues it
	Operator    string `json:"operator"`
	Reason      string `json:"reason"`
}

func paymentsRetryCommand(open Opener, stdout io.Writer) *cobra.Command {
	var reason, operator string
	var asJSON bool
	c := &cobra.Command{
		Use:   "retry ID --reason TEXT --operator NAME [--json]",
		Short: "Retry a FAILED payment as a new payment, when the retry policy allows its failure; audited",
		Long: `Retry a FAILED payment that the retry policy would retry: its last attempt was confirmed not
charged and failed with a class the policy retries for its method (a soft decline, a rate
limit, a transient or unknown gateway error — never a hard decline), typically once the
processor's own retries ran out (the customer topped up, the gateway's outage is over).

FAILED is terminal: the payment stays FAILED, and its attempts' outcomes are final. The
retry is a new payment (pay_…, on the same tenant, surface, invoice, amount, method and
metadata, with no business idempotency key) whose attempts have their own gateway keys
(<new id>:1, …), so no key is ever used twice and the old attempts can never be charged by
it. It takes the normal job path: recorded PENDING with its create step due, its invoice
lines reserved again, then enqueued after commit (the sweeper enqueues it if that fails).
Before anything is recorded the gateway is asked about the last attempt (an inquiry, which
never charges, and after which the gateway refuses that key): a retry is refused if the
gateway says it charged. Everything is in one transaction on the failed payment's row lock:
the new payment with its creation audit row ("retry of pay_… by operator:NAME: REASON"), a
note on the failed payment's timeline naming the new one, and the link (a payment is
retried at most once; retry the new one if it fails too).

Refused (exit 3): a hard decline or another class the policy does not retry, an attempt
not confirmed as not charged, a payment with no gateway (OFFLINE, CREDITS, one recorded
before issue 25 with process_payment=false), one of a payment flow (the flow replaces it), of a payment session
(the customer submits again) or a payout (create a new payout), one retried already, one
whose invoice was paid meanwhile, and one the gateway says was charged.

Exit codes: 0 retried, 1 failure (database; the gateway did not answer), 2 usage,
3 refused, 4 no such payment, or not FAILED.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(map[string]*string{"reason": &reason, "operator": &operator}); err != nil {
				return err
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				out, err := retry(ctx, env, args[0], reason, operator)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(stdout, out)
				}
				queued := "enqueued"
				if !out.Enqueued {
					queued = "not enqueued: the sweeper will enqueue it"
				}
				_, err = fmt.Fprintf(stdout, "%s stays FAILED; retried as %s (%s, %s); the gateway says %s (%s) about its last attempt\n",
					out.PaymentID, out.RetriedAs, out.Status, queued, out.GatewaySays, out.Gateway)
				return err
			})
		},
	}
	f := c.Flags()
	f.StringVar(&reason, "reason", "", "why (recorded in both timelines)")
	f.StringVar(&operator, "operator", "", "who (recorded in both timelines)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func retry(ctx context.Context, env *Env, id, reason, operator string) (retried, error) {
	out := retried{PaymentID: id, Operator: operator, Reason: reason}
	pay, err := env.Store.GetPayment(ctx, "", id)
	if errors.Is(err, payment.ErrNotFound) {
		return out, fail(ExitNotFound, "no payment %s", id)
	}
	if err != nil {
		return out, fail(ExitFailure, "load %s: %w", id, err)
	}
	// decide before asking the gateway; the store decides again on the
	// locked row
	if err := retryRefusal(id, pay.Status, env.Policy.OperatorRetry(pay)); err != nil {
		return out, err
	}
	if as, _, err := env.Store.RetryOf(ctx, id); err != nil {
		return out, fail(ExitFailure, "load %s: %w", id, err)
	} else if as != "" {
		return out, fail(ExitRefused, "refused: %s was retried already, as %s", id, as)
	}
	att, _ := pay.LastAttempt()
	res, gerr := env.Gateway.Inquire(ctx, att.IdempotencyKey)
	out.GatewaySays, out.Gateway = gatewaySays(res, gerr)
	switch out.GatewaySays {
	case "charged":
		return out, fail(ExitRefused, "refused: the gateway says attempt %d (%s) charged: %s; not retried (reconciliation accounts for the charge)",
			att.Number, att.IdempotencyKey, out.Gateway)
	case "unknown":
		return out, fail(ExitFailure, "the gateway gave no usable answer about attempt %d (%s): %s; not retried, try again",
			att.Number, att.IdempotencyKey, out.Gateway)
	}
	np, err := env.Store.RetryPayment(ctx, store.Retry{PaymentID: id, Policy: env.Policy, Actor: "operator:" + operator, Reason: reason})
	var already *store.AlreadyRetriedError
	switch {
	case errors.As(err, &already):
		return out, fail(ExitRefused, "refused: %s was retried already, as %s", id, already.RetryID)
	case errors.Is(err, payment.ErrInvoiceOverApplied):
		return out, fail(ExitRefused, "refused: invoice %s cannot take the amount again (paid meanwhile?)", pay.InvoiceID)
	case err != nil:
		if r := retryRefusal(id, "", err); r != nil {
			return out, r
		}
		return out, fail(ExitFailure, "retry %s: %w", id, err)
	}
	out.RetriedAs, out.Status = np.ID, string(np.Status)
	if env.Enqueue != nil {
		out.Enqueued = env.Enqueue.Step(ctx, np.NextStep, np.ID, np.StepSeq, *np.NextStepAt) == nil
	}
	return out, nil
}

// retryRefusal maps the policy's answer to an exit code (nil for nil and
// for errors that are not the policy's).
func retryRefusal(id string, st payment.Status, err error) error {
	var refused *payment.RetryRefusedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, payment.ErrInvalidState):
		if st == "" {
			return fail(ExitNotFound, "payment %s is no longer FAILED", id)
		}
		return fail(ExitNotFound, "payment %s is %s, not FAILED", id, st)
	case errors.As(err, &refused):
		return fail(ExitRefused, "refused: %s: %s", id, refused.Reason)
	}
	return nil
}
