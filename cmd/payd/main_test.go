package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestMain lets payd bench --spawn re-execute the test binary as payd: a
// process started with PAYD_BENCH_CHILD=1 runs the payd command in its
// arguments instead of the tests, so the bench tests need no separate build.
func TestMain(m *testing.M) {
	if os.Getenv(envBenchChild) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, append([]string{"payd"}, os.Args[1:]...), os.Getenv, os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "payd:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
