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

// maxList bounds --limit: a list is for reading, a bigger export is SQL's.
const maxList = 1000

func paymentsListCommand(open Opener, stdout io.Writer) *cobra.Command {
	var status, surface, sinceFlag, tenant string
	var limit int
	var asJSON bool
	c := &cobra.Command{
		Use:   "list [--status S] [--since DURATION|TIME] [--tenant ID|NAME] [--surface payments|payouts|…] [--limit N]",
		Short: "List payments, newest first, by status (canonical or as an API shows it), age, tenant and surface",
		Long: `List payments created since --since (a duration back from now, default 24h, or an RFC 3339
time), newest first, of one tenant (--tenant: its id or name) or all, with their canonical
status and the status their API shows.

--status takes a canonical status (PENDING, PROCESSING, REQUIRES_ACTION, SENT, SUCCEEDED,
PARTIALLY_REFUNDED, REFUNDED, RETURNED, FAILED, CANCELED, REQUIRES_REVIEW) or a word an API
shows (seed 001's payment_status on /v1/payments, seed 002's status on /v1/payouts: INITIATED,
SETTLED, PAID, …), in any case. The tables are payment's (payment/surface_status.go), the
ones the API itself uses. A word that is both canonical and an API word (PROCESSING, FAILED,
…) is read as canonical, unless --surface names the API whose word it is: --surface payments
--status PROCESSING lists every payment /v1/payments shows as PROCESSING (canonical
PROCESSING, REQUIRES_ACTION, SENT and REQUIRES_REVIEW); --status PROCESSING lists canonical
PROCESSING only, on every surface. A word only an API has (SETTLED, PAID, INITIATED) selects
that API's objects.

Exit codes: 0 listed (none is not an error), 1 failure, 2 usage, 4 no such tenant.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit <= 0 || limit > maxList {
				return fail(ExitUsage, "--limit must be 1..%d", maxList)
			}
			surface = strings.TrimSpace(surface)
			conds, err := statusConds(status, surface)
			if err != nil {
				return err
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				from, err := since("--since", sinceFlag, env.Store.Now())
				if err != nil {
					return err
				}
				f := store.Search{Surface: surface, Any: conds, Since: from, Limit: limit}
				if tenant = strings.TrimSpace(tenant); tenant != "" {
					t, err := env.Store.FindTenant(ctx, tenant)
					if errors.Is(err, payment.ErrNotFound) {
						return fail(ExitNotFound, "no tenant %q", tenant)
					}
					if err != nil {
						return fail(ExitFailure, "find tenant: %w", err)
					}
					f.TenantID = t.ID
				}
				pays, more, err := env.Store.SearchPayments(ctx, f)
				if err != nil {
					return fail(ExitFailure, "list payments: %w", err)
				}
				ids := make([]string, len(pays))
				for i, p := range pays {
					ids[i] = p.ID
				}
				imported, err := env.Store.ImportedStatuses(ctx, ids)
				if err != nil {
					return fail(ExitFailure, "list payments: %w", err)
				}
				items := make([]paymentItem, len(pays))
				for i, p := range pays {
					items[i] = toPaymentItem(p, imported[p.ID])
				}
				if asJSON {
					return writeJSON(stdout, items)
				}
				return printPayments(stdout, items, more)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&status, "status", "", "canonical status, or the word an API shows (see above)")
	f.StringVar(&surface, "surface", "", "only this API surface's payments (payments, payouts, sessions); reads --status in its words")
	f.StringVar(&sinceFlag, "since", "24h", "created since: a duration back from now or an RFC 3339 time")
	f.StringVar(&tenant, "tenant", "", "only this tenant's (id or name)")
	f.IntVar(&limit, "limit", 100, fmt.Sprintf("at most this many (1..%d)", maxList))
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// statusConds reads --status (with --surface) as store conditions.
func statusConds(status, surface string) ([]store.StatusCond, error) {
	name := strings.ToUpper(strings.TrimSpace(status))
	if name == "" {
		return nil, nil
	}
	canonical := payment.Status(name).Valid()
	switch surface {
	case store.SurfacePayments:
		if sts := payment.PaymentsStatusesNamed(name); len(sts) > 0 {
			return []store.StatusCond{{Surface: surface, Statuses: sts}}, nil
		}
	case store.SurfacePayouts:
		if sts, paid := payment.PayoutStatusesNamed(name); len(sts) > 0 {
			return []store.StatusCond{{Surface: surface, Statuses: sts, Paid: paid}}, nil
		}
	case "":
		if !canonical {
			// a word of one API only: that API's objects
			if sts, paid := payment.PayoutStatusesNamed(name); len(sts) > 0 {
				return []store.StatusCond{{Surface: store.SurfacePayouts, Statuses: sts, Paid: paid}}, nil
			}
		}
	}
	if canonical {
		return []store.StatusCond{{Statuses: []payment.Status{payment.Status(name)}}}, nil
	}
	return nil, fail(ExitUsage, "--status %q is neither a canonical status (%s) nor a status the payments or payouts API shows",
		status, joinStatuses(payment.Statuses))
}

func joinStatuses(sts []payment.Status) string {
	s := make([]string, len(sts))
	for i, st := range sts {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func printPayments(w io.Writer, items []paymentItem, more bool) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "no payments")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PAYMENT\tTENANT\tSURFACE\tSTATUS\tAPI STATUS\tAMOUNT\tMETHOD\tATTEMPTS\tCREATED\tERROR")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s %s\t%s\t%d\t%s\t%s\n", it.ID, it.TenantID, it.Surface, it.Status, it.APIStatus,
			it.Amount, it.Currency, it.Method, it.Attempts, it.CreatedAt.UTC().Format(time.RFC3339), it.ErrorCode)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		_, err := fmt.Fprintf(w, "(more payments match: narrow --since, or raise --limit up to %d)\n", maxList)
		return err
	}
	return nil
}
