package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// envTestChild marks a payd child process of the test binary (TestMain).
const envTestChild = "PAYD_TEST_CHILD"

// TestMain lets the tests re-execute the test binary as payd: a process
// started with PAYD_TEST_CHILD=1 runs the payd command in its arguments
// instead of the tests. The fault tests start such children when they jump
// a process's clock: with PAYD_TEST_CLOCK_FILE the child's host clock
// (hostClock) is off by the duration written in that file
// (fault_clock_test.go).
func TestMain(m *testing.M) {
	if os.Getenv(envTestChild) == "1" {
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

// TestBenchMoved: payd bench says where the bench went, and fails.
func TestBenchMoved(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	err := run(context.Background(), []string{"payd", "bench", "--spawn", "-n", "10"}, func(string) string { return "" }, &buf)
	if err == nil || !strings.Contains(err.Error(), "paydbench --spawn -n 10") {
		t.Errorf("payd bench: %v, want a pointer to paydbench with the same flags", err)
	}
}
