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
// The fault tests start such children too when they jump a process's clock:
// with PAYD_TEST_CLOCK_FILE the child's host clock (hostClock) is off by the
// duration written in that file (fault_clock_test.go).
func TestMain(m *testing.M) {
	if os.Getenv(envBenchChild) == "1" {
		if path := os.Getenv(envTestClockFile); path != "" {
			hostClock = fileClock(path)
		}
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
