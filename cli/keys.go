package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

func keysCommand(open Opener, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "keys", Short: "API keys of tenants", RunE: group}
	c.AddCommand(keysCreateCommand(open, stdout))
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
