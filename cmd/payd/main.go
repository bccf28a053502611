// Command payd is the one binary of the payment processor. It only wires:
// configuration from the environment, dependencies, and the role to run.
// Every role is a subcommand; see usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/payd/payd/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "payd:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode: an operator command's own code (package cli), 2 for a usage
// error, else 1.
func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return cli.ExitUsage
	}
	return cli.ExitCode(err)
}

const usage = `usage: payd <command>

commands:
  all        migrate, then run intake, worker, scheduler and monitor in one process
  intake     the public HTTP API (PAYD_ADDR)
  worker     the asynq task handlers
  scheduler  periodic tasks (the sweeper)
  monitor    /metrics and the asynq monitor on the admin port (PAYD_ADMIN_ADDR)
  migrate    apply the embedded SQL migrations as the owner role (PAYD_MIGRATE_DATABASE_URL,
             else DATABASE_URL) and grant the app role (PAYD_APP_DB_ROLE) its rights
  sandbox    the sandbox gateway as its own HTTP server (PAYD_SANDBOX_ADDR)
  healthcheck [URL]
             GET URL (default: this role's readiness, /readyz on PAYD_ADMIN_ADDR) and exit 0 only
             on a 200: the probe for images without curl

operator commands (a table, or JSON with --json; exit 0 done, 1 failure, 2 usage,
3 refused, 4 not found or not in the needed state; -h on each):
  payments get ID
             a payment (any tenant's), its attempts and its timeline
  payments list [--status S] [--since 24h|TIME] [--tenant ID|NAME] [--surface S] [--limit N]
             payments newest first; S canonical (REQUIRES_REVIEW) or as an API shows it
  payments retry ID --reason TEXT --operator NAME
             retry a FAILED payment the retry policy allows, as a new linked payment
  payments review | resolve ID (--succeeded|--failed) --reason TEXT --operator NAME [--force]
             payments in REQUIRES_REVIEW and their audited resolution
  reconcile [--since 24h] | findings | resolve-finding ID
             compare the gateway's ledger with payd's records now
  flows show FLOW_ID [--versions]
             a payment flow's plan as a tree, and with --versions its history
  tasks archived [--queue Q] | requeue-archived [--queue Q] [--id TASK_ID]
             asynq's archived tasks (REDIS_URL), and moving them back to pending
  keys create --tenant NAME
             create a tenant (if new) and an API key; the key is the last line of stdout
  keys list [--tenant ID|NAME] | revoke KEY_ID --operator NAME | rotate KEY_ID --operator NAME [--grace D]
             API keys (never their secrets); a revoked key is refused within a second;
             rotate prints the new key as the last line of stdout

The load driver and benchmark is its own command: paydbench (-h for flags).
`

var errUsage = errors.New("see usage")

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stdout, usage)
		return errUsage
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	switch cmd := args[1]; cmd {
	case "migrate":
		return cfg.migrate(ctx)
	case "sandbox":
		return runSandbox(ctx, cfg, stdout)
	case "healthcheck":
		return runHealthcheck(ctx, cfg, args[2:], stdout)
	case "payments", "reconcile", "keys", "flows", "tasks":
		return cli.Run(ctx, args[1:], operatorEnv(cfg), stdout, stdout)
	case "bench":
		// It moved out of the server binary, with its chart libraries.
		return fmt.Errorf("bench is now its own command, with the same flags: %s", strings.Join(append([]string{"paydbench"}, args[2:]...), " "))
	case "all":
		if err := cfg.migrate(ctx); err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, roleIntake, roleWorker, roleScheduler, roleMonitor)
	case "intake", "worker", "scheduler", "monitor":
		return serve(ctx, cfg, stdout, role(cmd))
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stdout, usage)
		return fmt.Errorf("unknown command %q: %w", cmd, errUsage)
	}
}
