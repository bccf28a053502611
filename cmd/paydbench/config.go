package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/payd/payd/bench"
)

// config is the part of payd's configuration the bench needs itself, read
// from the variables payd reads, with payd's defaults (cmd/payd/config.go;
// TestPaydDefaults compares them). Every other setting reaches the payd
// processes of --spawn untouched, through their environment.
type config struct {
	DatabaseURL        string        `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/payd?sslmode=disable"`
	MigrateDatabaseURL string        `env:"PAYD_MIGRATE_DATABASE_URL"`
	RedisURL           string        `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	DBMaxConns         int           `env:"PAYD_DB_MAX_CONNS" envDefault:"40"`
	WorkerConcurrency  int           `env:"PAYD_WORKER_CONCURRENCY" envDefault:"32"`
	TaskCheck          time.Duration `env:"PAYD_TASK_CHECK_INTERVAL" envDefault:"20ms"`
	TaskRetention      time.Duration `env:"PAYD_TASK_RETENTION" envDefault:"2m"`
	ShutdownTimeout    time.Duration `env:"PAYD_SHUTDOWN_TIMEOUT" envDefault:"25s"`
}

// envNames are the variables config reads.
func envNames() []string {
	var names []string
	t := reflect.TypeFor[config]()
	for i := range t.NumField() {
		names = append(names, t.Field(i).Tag.Get("env"))
	}
	return names
}

// loadConfig reads the settings with getenv, and gives the payd children
// environ with every payd setting as getenv has it.
func loadConfig(getenv func(string) string, environ []string) (bench.Config, error) {
	envs := map[string]string{}
	for _, name := range envNames() {
		if v := getenv(name); v != "" {
			envs[name] = v
		}
	}
	var c config
	if err := env.ParseWithOptions(&c, env.Options{Environment: envs}); err != nil {
		return bench.Config{}, fmt.Errorf("config: %w", err)
	}
	if c.WorkerConcurrency <= 0 {
		return bench.Config{}, fmt.Errorf("config: PAYD_WORKER_CONCURRENCY must be positive")
	}
	owner := c.MigrateDatabaseURL
	if owner == "" {
		owner = c.DatabaseURL
	}
	return bench.Config{OwnerDatabaseURL: owner, RedisURL: c.RedisURL, WorkerConcurrency: c.WorkerConcurrency,
		TaskCheck: c.TaskCheck, TaskRetention: c.TaskRetention, DBMaxConns: c.DBMaxConns, ShutdownTimeout: c.ShutdownTimeout,
		PaydBin: paydBin(), ChildEnv: childEnv(environ, getenv)}, nil
}

// isSetting reports whether an environment variable is one of payd's.
func isSetting(name string) bool {
	return name == "DATABASE_URL" || name == "REDIS_URL" || strings.HasPrefix(name, "PAYD_")
}

// childEnv is environ with every payd setting — those in environ and those
// config reads — as getenv has it. getenv is os.Getenv, so this is environ,
// except in tests, whose getenv names their own database and Redis.
func childEnv(environ []string, getenv func(string) string) []string {
	settings := map[string]bool{}
	for _, n := range envNames() {
		settings[n] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if isSetting(k) {
			settings[k] = true
			continue
		}
		out = append(out, kv)
	}
	for _, n := range slices.Sorted(maps.Keys(settings)) {
		if v := getenv(n); v != "" {
			out = append(out, n+"="+v)
		}
	}
	return out
}

// paydBin is the payd executable --spawn starts without -payd: payd next to
// paydbench (make build puts both in bin/), else payd on PATH; "" if none.
func paydBin() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "payd")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	if p, err := exec.LookPath("payd"); err == nil {
		return p
	}
	return ""
}
