package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

func reconcileCommand(open Opener, stdout io.Writer) *cobra.Command {
	var since, until string
	var asJSON bool
	c := &cobra.Command{
		Use:   "reconcile [--since DURATION|TIME] [--until TIME]",
		Short: "Compare the gateway's charges and refunds with payd's records now, and print the findings",
		Long: `Run one reconciliation now, in this process: the gateway's charges and refunds created in
the window are compared with payd's attempts and refunds, in both directions. Every
difference is stored as a finding (one per kind and reference, however often seen) and
printed. payd acts where that is safe: a charge for a payment it holds as not charged is
refunded (once), and a charge for a payment in review resolves it as succeeded.

--since is a duration back from now (24h, 90m) or an RFC 3339 time; without it the
window is the periodic one (from where the last run ended). --until defaults to now.

Exit codes: 0 done (findings or not: see the output), 1 failure, 2 usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				now := env.Store.Now()
				from, to, err := window(ctx, env, since, until, now)
				if err != nil {
					return err
				}
				rep, err := env.Reconcile(ctx, from, to, "cli")
				if err != nil {
					return fail(ExitFailure, "reconcile: %w", err)
				}
				if asJSON {
					return writeJSON(stdout, rep)
				}
				fmt.Fprintf(stdout, "reconciled %s .. %s: %d charges, %d refunds, %d findings (%d new)\n",
					rep.Run.From.Format(time.RFC3339), rep.Run.To.Format(time.RFC3339), rep.Charges, rep.Refunds,
					len(rep.Findings), rep.New)
				return printFindings(stdout, rep.Findings)
			})
		},
	}
	c.Flags().StringVar(&since, "since", "", "start of the window: a duration back from now (24h) or an RFC 3339 time")
	c.Flags().StringVar(&until, "until", "", "end of the window (RFC 3339; default now)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(findingsCommand(open, stdout), resolveFindingCommand(open, stdout))
	return c
}

func window(ctx context.Context, env *Env, sinceFlag, until string, now time.Time) (time.Time, time.Time, error) {
	if sinceFlag == "" && until == "" {
		from, to, err := env.ReconcileWindow(ctx)
		if err != nil {
			return from, to, fail(ExitFailure, "reconcile window: %w", err)
		}
		return from, to, nil
	}
	to := now
	if until != "" {
		t, err := time.Parse(time.RFC3339, until)
		if err != nil {
			return time.Time{}, time.Time{}, fail(ExitUsage, "--until: %w", err)
		}
		to = t
	}
	from := to.Add(-24 * time.Hour)
	if sinceFlag != "" {
		t, err := since("--since", sinceFlag, now)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		from = t
	}
	if !to.After(from) {
		return time.Time{}, time.Time{}, fail(ExitUsage, "the window ends before it starts")
	}
	return from, to, nil
}

func findingsCommand(open Opener, stdout io.Writer) *cobra.Command {
	var status, kind string
	var limit int
	var asJSON bool
	c := &cobra.Command{
		Use:   "findings [--status open|acted|resolved|all] [--kind KIND]",
		Short: "List reconciliation findings, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status == "all" {
				status = ""
			}
			switch status {
			case "", store.FindingOpen, store.FindingActed, store.FindingResolved:
			default:
				return fail(ExitUsage, "--status must be open, acted, resolved or all")
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				fs, err := env.Store.Findings(ctx, store.FindingFilter{Status: status, Kind: kind, Limit: limit})
				if err != nil {
					return fail(ExitFailure, "list findings: %w", err)
				}
				if asJSON {
					if fs == nil {
						fs = []store.Finding{}
					}
					return writeJSON(stdout, fs)
				}
				return printFindings(stdout, fs)
			})
		},
	}
	c.Flags().StringVar(&status, "status", store.FindingOpen, "open, acted, resolved or all")
	c.Flags().StringVar(&kind, "kind", "", "only this kind (charge_after_close, unknown_charge, …)")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func resolveFindingCommand(open Opener, stdout io.Writer) *cobra.Command {
	var operator string
	c := &cobra.Command{
		Use:   "resolve-finding ID --operator NAME",
		Short: "Close a finding an operator has dealt with",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return fail(ExitUsage, "finding id %q is not a number", args[0])
			}
			if strings.TrimSpace(operator) == "" {
				return fail(ExitUsage, "--operator is required")
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				err := env.Store.ResolveFinding(ctx, id, "operator:"+strings.TrimSpace(operator))
				if errors.Is(err, payment.ErrNotFound) {
					return fail(ExitNotFound, "no open finding %d", id)
				}
				if err != nil {
					return fail(ExitFailure, "resolve finding %d: %w", id, err)
				}
				_, err = fmt.Fprintf(stdout, "finding %d resolved\n", id)
				return err
			})
		},
	}
	c.Flags().StringVar(&operator, "operator", "", "who (recorded on the finding)")
	return c
}

func printFindings(w io.Writer, fs []store.Finding) error {
	if len(fs) == 0 {
		_, err := fmt.Fprintln(w, "no findings")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATUS\tREFERENCE\tPAYMENT\tAMOUNT\tSEEN\tACTION\tDETAIL")
	for _, f := range fs {
		amount := ""
		if f.Currency != "" {
			amount = payment.FormatMajor(f.Amount, f.Currency) + " " + f.Currency
		}
		action := strings.TrimSpace(f.Action + " " + f.ActionRef)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", f.ID, f.Kind, f.Status, f.Reference, f.PaymentID, amount,
			f.SeenCount, action, f.Detail)
	}
	return tw.Flush()
}
