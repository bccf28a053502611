package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/internal/testenv"
)

// TestMigrateRoles: `payd migrate` runs as the owner (PAYD_MIGRATE_DATABASE_URL)
// and grants the app role; run with only the app role's DATABASE_URL it fails
// with a message that says what to do; `payd keys create` then works as the
// app role.
func TestMigrateRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := testenv.PostgresURLs(t)
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

	var out bytes.Buffer
	err := run(ctx, []string{"payd", "migrate"}, env(map[string]string{"DATABASE_URL": app}), &out)
	if err == nil || !strings.Contains(err.Error(), `role "`+testenv.AppRole+`" has no CREATE on schema public`) ||
		!strings.Contains(err.Error(), "PAYD_MIGRATE_DATABASE_URL") {
		t.Fatalf("payd migrate as the app role: %v, want a refusal naming the role and PAYD_MIGRATE_DATABASE_URL", err)
	}
	// keys create migrates first: as the app role alone it is refused the same way
	if err := run(ctx, []string{"payd", "keys", "create", "--tenant", "x"}, env(map[string]string{"DATABASE_URL": app}), &out); err == nil ||
		!strings.Contains(err.Error(), "PAYD_MIGRATE_DATABASE_URL") {
		t.Fatalf("payd keys create as the app role alone: %v", err)
	}

	split := env(map[string]string{"DATABASE_URL": app, "PAYD_MIGRATE_DATABASE_URL": owner, "PAYD_APP_DB_ROLE": testenv.AppRole})
	if err := run(ctx, []string{"payd", "migrate"}, split, &out); err != nil {
		t.Fatalf("payd migrate as the owner: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"payd", "keys", "create", "--tenant", "acme"}, split, &out); err != nil {
		t.Fatalf("payd keys create with split roles: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if key := lines[len(lines)-1]; !strings.HasPrefix(key, "sk_") {
		t.Errorf("keys create printed %q, want a key", key)
	}
}

func TestConfigRoles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env     map[string]string
		migrate string
		roles   []string
	}{
		{map[string]string{"DATABASE_URL": "postgres://u@h/db"}, "postgres://u@h/db", nil},
		{map[string]string{"DATABASE_URL": "postgres://app:pw@h/db", "PAYD_MIGRATE_DATABASE_URL": "postgres://own@h/db"},
			"postgres://own@h/db", []string{"app"}},
		{map[string]string{"DATABASE_URL": "postgres://h/db?user=app", "PAYD_MIGRATE_DATABASE_URL": "postgres://own@h/db"},
			"postgres://own@h/db", []string{"app"}},
		{map[string]string{"DATABASE_URL": "host=h user=app dbname=db", "PAYD_MIGRATE_DATABASE_URL": "host=h user=own dbname=db"},
			"host=h user=own dbname=db", []string{"app"}},
		{map[string]string{"DATABASE_URL": "postgres://same@h/db", "PAYD_MIGRATE_DATABASE_URL": "postgres://same@h/db"},
			"postgres://same@h/db", nil},
		{map[string]string{"DATABASE_URL": "postgres://login@h/db", "PAYD_MIGRATE_DATABASE_URL": "postgres://own@h/db",
			"PAYD_APP_DB_ROLE": "payd_rw"}, "postgres://own@h/db", []string{"payd_rw"}},
	} {
		cfg, err := loadConfig(func(k string) string { return c.env[k] })
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.migrateURL(); got != c.migrate {
			t.Errorf("%v: migrateURL = %q, want %q", c.env, got, c.migrate)
		}
		if diff := cmp.Diff(c.roles, cfg.appRoles()); diff != "" {
			t.Errorf("%v: appRoles (-want +got):\n%s", c.env, diff)
		}
	}
}
