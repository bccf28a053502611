// Package cli is payd's operator command line: the commands an operator
// runs against a live deployment (payments: look up, list, retry, those in
// review and their resolution; reconciliation with the gateway; payment
// flows' plans; archived tasks; API keys), on github.com/spf13/cobra. Each
// command prints a human table by default and JSON with --json, and exits
// with a code a script can rely on (see ExitCode). It imports store, jobs,
// connector and payment; it must not import intake or processor: cmd/payd
// wires what it needs from them (Env).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Exit codes of operator commands.
const (
	ExitOK       = 0
	ExitFailure  = 1 // the command could not do its work (database, gateway, …)
	ExitUsage    = 2 // bad flags or arguments
	ExitRefused  = 3 // refused: it would contradict the gateway (see --force)
	ExitNotFound = 4 // no such object, or not in the state the command needs
)

// Error is an error with the exit code it ends the process with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ExitCode is the process exit code for an error a command returned: 0 for
// nil, the code of an *Error, else ExitFailure.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitFailure
}

func fail(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Env is what the operator commands work with, opened only when a command
// runs (so that --help needs no database).
type Env struct {
	Store *store.Store
	// Gateway is the gateway payd charges through, as this process can
	// reach it (the sandbox's own port, or the admin port's /sandbox/).
	Gateway connector.Gateway
	// Reconcile runs one reconciliation over [from, to) (the processor's).
	Reconcile func(ctx context.Context, from, to time.Time, actor string) (store.ReconcileReport, error)
	// ReconcileWindow is the periodic window (from the last run to a grace
	// before now), for a run with no --since.
	ReconcileWindow func(ctx context.Context) (time.Time, time.Time, error)
	// Migrate applies the schema's migrations as its owner (keys create).
	Migrate func(ctx context.Context) error
	// Policy is the retry policy the processor runs with (payments retry).
	Policy payment.RetryPolicy
	// Enqueue puts a payment's next step on the queue (payments retry); nil
	// leaves it to the sweeper.
	Enqueue *jobs.Enqueuer
	// Inspector reads and requeues asynq's tasks (tasks …), on the Redis
	// the roles use.
	Inspector *asynq.Inspector
}

// Opener opens the Env; close releases it.
type Opener func(ctx context.Context) (env *Env, close func(), err error)

// Commands are the operator commands, to add under payd's root command.
func Commands(open Opener, stdout io.Writer) []*cobra.Command {
	return []*cobra.Command{paymentsCommand(open, stdout), reconcileCommand(open, stdout), keysCommand(open, stdout),
		flowsCommand(open, stdout), tasksCommand(open, stdout)}
}

// Run runs one operator command line (args without the program name), as
// a root command of its own: for cmd/payd's dispatcher and for tests.
func Run(ctx context.Context, args []string, open Opener, stdout, stderr io.Writer) error {
	root := &cobra.Command{Use: "payd", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(Commands(open, stdout)...)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &Error{Code: ExitUsage, Err: err} })
	err := root.ExecuteContext(ctx)
	if err != nil && ExitCode(err) == ExitFailure && isUsage(err) {
		err = &Error{Code: ExitUsage, Err: err}
	}
	return err
}

// isUsage: cobra's own argument errors (unknown command, wrong count).
func isUsage(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return false
	}
	for _, p := range []string{"unknown command", "accepts ", "requires ", "unknown flag", "invalid argument"} {
		if strings.Contains(err.Error(), p) {
			return true
		}
	}
	return false
}

// group is the body of a command that only groups others: run alone or
// with an unknown subcommand, it shows its help and is a usage error.
func group(cmd *cobra.Command, args []string) error {
	_ = cmd.Help()
	if len(args) > 0 {
		return fail(ExitUsage, "unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return fail(ExitUsage, "%s needs a subcommand", cmd.CommandPath())
}

// withEnv opens the Env around a command's body.
func withEnv(cmd *cobra.Command, open Opener, body func(ctx context.Context, env *Env) error) error {
	ctx := cmd.Context()
	env, closeEnv, err := open(ctx)
	if err != nil {
		return fail(ExitFailure, "open: %w", err)
	}
	defer closeEnv()
	return body(ctx, env)
}

// since reads a --since: a positive duration back from now (24h, 90m) or
// an RFC 3339 time.
func since(flag, v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fail(ExitUsage, "%s must be positive", flag)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fail(ExitUsage, "%s %q is neither a duration nor an RFC 3339 time", flag, v)
}

// required trims the values of required flags, and is a usage error when
// one is empty.
func required(flags map[string]*string) error {
	var missing []string
	for name, v := range flags {
		*v = strings.TrimSpace(*v)
		if *v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fail(ExitUsage, "required: %s", strings.Join(missing, ", "))
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
