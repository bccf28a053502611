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

func keysCommand(open Opener, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "keys", Short: "API keys of tenants: create, list, revoke, rotate", RunE: group}
	c.AddCommand(keysCreateCommand(open, stdout), keysListCommand(open, stdout), keysRevokeCommand(open, stdout),
		keysRotateCommand(open, stdout))
	return c
}

func keysCreateCommand(open Opener, stdout io.Writer) *cobra.Command {
	var tenant string
	c := &cobra.Command{
		Use:   "create --tenant NAME",
		Short: "Create a tenant (if new) and an API key; the secret is the last line of stdout, shown once",
		Long: `Migrate the database (as payd migrate does), create the tenant if it is new, and create an
API key for it. Only the key's SHA-256 is stored: the secret, printed as the last line of
stdout, is never shown again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(tenant) == "" {
				return fail(ExitUsage, "keys create: --tenant is required")
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				if env.Migrate != nil {
					if err := env.Migrate(ctx); err != nil {
						return fail(ExitFailure, "migrate: %w", err)
					}
				}
				t, err := env.Store.CreateTenant(ctx, strings.TrimSpace(tenant))
				if err != nil {
					return fail(ExitFailure, "create tenant: %w", err)
				}
				keyID, secret, err := env.Store.CreateAPIKey(ctx, t.ID)
				if err != nil {
					return fail(ExitFailure, "create key: %w", err)
				}
				_, err = fmt.Fprintf(stdout, "tenant %s (%s), key %s; the secret below is shown once:\n%s\n", t.Name, t.ID, keyID, secret)
				return err
			})
		},
	}
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant's name")
	return c
}

// keyItem is one key as `keys list --json` prints it: never its secret or
// hash, only the secret's last four characters. When a key was last used
// is not tracked (it would cost a write per request).
type keyItem struct {
	store.APIKey
	Status string `json:"status"` // active, revoking (a rotation's grace runs), revoked
}

func toKeyItem(k store.APIKey, now time.Time) keyItem {
	st := "active"
	if k.RevokedAt != nil {
		st = "revoked"
		if k.RevokedAt.After(now) {
			st = "revoking"
		}
	}
	return keyItem{APIKey: k, Status: st}
}

func keysListCommand(open Opener, stdout io.Writer) *cobra.Command {
	var tenant string
	var asJSON bool
	c := &cobra.Command{
		Use:   "list [--tenant ID|NAME] [--json]",
		Short: "List API keys (never a secret or hash: the secret's last 4 characters), with when each was created and revoked",
		Long: `List the API keys of one tenant (its id or name) or of all: id, tenant, the secret's last four
characters, created, status (active; revoking: a rotation's grace is running until
revoked_at; revoked) and the key a rotation replaced it with. Secrets are never stored,
hashes never shown. When a key was last used is not tracked.

Exit codes: 0 listed, 1 failure, 2 usage, 4 no such tenant.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				tenantID := ""
				if tenant = strings.TrimSpace(tenant); tenant != "" {
					t, err := env.Store.FindTenant(ctx, tenant)
					if errors.Is(err, payment.ErrNotFound) {
						return fail(ExitNotFound, "no tenant %q", tenant)
					}
					if err != nil {
						return fail(ExitFailure, "find tenant: %w", err)
					}
					tenantID = t.ID
				}
				keys, err := env.Store.APIKeys(ctx, tenantID)
				if err != nil {
					return fail(ExitFailure, "list keys: %w", err)
				}
				now := env.Store.Now()
				items := make([]keyItem, len(keys))
				for i, k := range keys {
					items[i] = toKeyItem(k, now)
				}
				if asJSON {
					return writeJSON(stdout, items)
				}
				return printKeys(stdout, items)
			})
		},
	}
	c.Flags().StringVar(&tenant, "tenant", "", "only this tenant's keys (id or name)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printKeys(w io.Writer, items []keyItem) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "no keys")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tTENANT\tSECRET\tCREATED\tSTATUS\tREVOKED AT\tREPLACED BY")
	for _, k := range items {
		revoked := ""
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s…%s\t%s\t%s\t%s\t%s\n", k.ID, k.TenantName, k.TenantID, store.KeyPrefix, k.Hint,
			k.CreatedAt.UTC().Format(time.RFC3339), k.Status, revoked, k.ReplacedBy)
	}
	return tw.Flush()
}

// keyChangeFlags are what revoke and rotate record in the audit row.
func keyChangeFlags(c *cobra.Command, operator, reason *string) {
	c.Flags().StringVar(operator, "operator", "", "who (recorded in the key's audit row)")
	c.Flags().StringVar(reason, "reason", "", "why (recorded in the key's audit row)")
}

// keyChangeError maps the store's answer about a key to an exit code.
func keyChangeError(id string, err error) error {
	switch {
	case errors.Is(err, payment.ErrNotFound):
		return fail(ExitNotFound, "no api key %s", id)
	case errors.Is(err, payment.ErrStale):
		return fail(ExitNotFound, "api key %s is revoked already", id)
	}
	return fail(ExitFailure, "api key %s: %w", id, err)
}

func keysRevokeCommand(open Opener, stdout io.Writer) *cobra.Command {
	var operator, reason string
	var asJSON bool
	c := &cobra.Command{
		Use:   "revoke KEY_ID --operator NAME [--reason TEXT] [--json]",
		Short: "Revoke an API key now: every intake process refuses it within a second",
		Long: `Revoke an API key now (also one whose rotation grace is still running), audited with the
operator and reason. Every intake process refuses it within a second: the revocation is
sent to them by Postgres (LISTEN/NOTIFY on payd_api_keys, from a trigger) as it commits,
and each drops the key from its lookup cache; a process that cannot hear it (its listener
down) trusts its cache for half a second only.

Exit codes: 0 revoked, 1 failure, 2 usage, 4 no such key, or revoked already.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(map[string]*string{"operator": &operator}); err != nil {
				return err
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				k, err := env.Store.RevokeAPIKey(ctx, store.KeyChange{KeyID: args[0], Actor: "operator:" + operator,
					Reason: strings.TrimSpace(reason)})
				if err != nil {
					return keyChangeError(args[0], err)
				}
				it := toKeyItem(k, env.Store.Now())
				if asJSON {
					return writeJSON(stdout, it)
				}
				_, err = fmt.Fprintf(stdout, "key %s of %s (%s) revoked at %s\n", k.ID, k.TenantName, k.TenantID,
					k.RevokedAt.UTC().Format(time.RFC3339Nano))
				return err
			})
		},
	}
	keyChangeFlags(c, &operator, &reason)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// maxGrace bounds a rotation's grace: an old key kept for longer is a
// key nobody rotated.
const maxGrace = 30 * 24 * time.Hour

// rotation is what `keys rotate --json` prints, the new secret included
// (shown once, like keys create's).
type rotation struct {
	Old      keyItem `json:"old_key"`
	NewKeyID string  `json:"new_key_id"`
	TenantID string  `json:"tenant_id"`
	Secret   string  `json:"secret"`
}

func keysRotateCommand(open Opener, stdout io.Writer) *cobra.Command {
	var operator, reason string
	var grace time.Duration
	var asJSON bool
	c := &cobra.Command{
		Use:   "rotate KEY_ID --operator NAME [--reason TEXT] [--grace DURATION] [--json]",
		Short: "Create a new key for the key's tenant and revoke the old one (now, or after --grace); the secret is the last line of stdout",
		Long: `Create a new API key for the tenant of KEY_ID and revoke KEY_ID, in one transaction, audited
with the operator and reason (the audit row names the new key). The new secret is printed
once, as the last line of stdout (with --json, in the "secret" field of the one JSON
document); only its SHA-256 is stored.

--grace keeps the old key accepted for that long (at most 30 days), so that the tenant can
deploy the new one first; the default, 0, revokes it at once, as a leaked key needs.
Every intake process stops accepting the old key when its grace ends (to the second: a
cached lookup never outlives it), or within a second of the rotation without a grace.
keys list shows it as revoking until then; keys revoke ends the grace early.

Exit codes: 0 rotated, 1 failure, 2 usage, 4 no such key, or revoked already.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(map[string]*string{"operator": &operator}); err != nil {
				return err
			}
			if grace < 0 || grace > maxGrace {
				return fail(ExitUsage, "--grace must be 0..%s", maxGrace)
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				old, newID, secret, err := env.Store.RotateAPIKey(ctx, store.KeyChange{KeyID: args[0],
					Actor: "operator:" + operator, Reason: strings.TrimSpace(reason), Grace: grace})
				if err != nil {
					return keyChangeError(args[0], err)
				}
				it := toKeyItem(old, env.Store.Now())
				if asJSON {
					return writeJSON(stdout, rotation{Old: it, NewKeyID: newID, TenantID: old.TenantID, Secret: secret})
				}
				when := "now"
				if grace > 0 {
					when = "at " + old.RevokedAt.UTC().Format(time.RFC3339) + " (grace " + grace.String() + ")"
				}
				_, err = fmt.Fprintf(stdout, "tenant %s (%s): key %s replaced by %s; the old key stops working %s.\n"+
					"The new secret below is shown once:\n%s\n", old.TenantName, old.TenantID, old.ID, newID, when, secret)
				return err
			})
		},
	}
	keyChangeFlags(c, &operator, &reason)
	c.Flags().DurationVar(&grace, "grace", 0, "keep the old key accepted this long (0: revoke at once; at most 720h)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (the secret in it)")
	return c
}
