package main

// The fault checker's negative test: the checks of fault_test.go must be
// able to fail. It builds a deliberately broken payd (-tags
// paydbroken_nosweep: Processor.Sweep does nothing, see
// processor/sweep_disabled.go), wipes Redis under load, and requires the
// checker to report the payments whose lost tasks nothing re-enqueued.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
)

// faultBrokenFinalBound is I2's bound for the broken build: short, since the
// payments it catches never become final however long it waits.
const faultBrokenFinalBound = 10 * time.Second

func TestFaultCheckerCatchesBrokenBuild(t *testing.T) {
	bin := buildFaultPayd(t, "-tags", "paydbroken_nosweep")
	c := startFaultCluster(t, bin)
	rec := &faultRecorder{t: t}
	c.chk, c.finalBound = rec, faultBrokenFinalBound

	// Half the payments are ACH: each waits ≥ 3 s (settle delay, then the
	// return window) on a scheduled task, so every one accepted before the
	// flush loses its task in it, whatever the timing of the machine.
	mix := func(i int) (string, string) {
		if i%2 == 0 {
			return "ACH", "ba_" + sandbox.BankAccountSettles
		}
		return faultMix(i)
	}
	l := c.startLoad(faultLoadSpec{n: 100, clients: 8, spread: 2 * time.Second, mix: mix})
	// Flush once ACH payments wait on their scheduled settle tasks: at +1 s,
	// or later on a machine so loaded that none had been sent by then.
	faultSleepUntil(l.start.Add(time.Second))
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var sent int
		if err := c.db.QueryRow(`SELECT count(*) FROM payments WHERE status = 'SENT'`).Scan(&sent); err != nil {
			t.Fatalf("count SENT payments: %v", err)
		}
		if sent >= 10 {
			break
		}
	}
	if err := c.rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("FLUSHDB: %v", err)
	}
	lastFault := time.Now()
	t.Logf("FLUSHDB at +%s", lastFault.Sub(l.start).Round(time.Millisecond))
	l.wait()
	s := c.finish("broken_nosweep", l, lastFault)

	stuck := s.payments - s.final
	t.Logf("the checker made %d finding(s) on the broken build; %d of %d payments not final", len(rec.findings), stuck, s.payments)
	if stuck == 0 {
		t.Errorf("every payment became final without a sweeper: the scenario did not lose any task, so it proves nothing")
	}
	for _, want := range []string{
		"I2: payments not final " + faultBrokenFinalBound.String(),
		"I2: payment not final: ",
	} {
		if !rec.found(want) {
			t.Errorf("the checker missed the broken build: no finding starts with %q; findings:\n%s", want, strings.Join(rec.findings, "\n"))
		}
	}
}

// faultRecorder collects the checker's findings instead of failing the test.
// A Fatalf means the check itself could not run (a query failed): that still
// fails the test.
type faultRecorder struct {
	t        *testing.T
	mu       sync.Mutex
	findings []string
}

func (r *faultRecorder) Helper() {}

func (r *faultRecorder) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.findings = append(r.findings, msg)
	r.mu.Unlock()
	first, _, _ := strings.Cut(msg, "\n")
	r.t.Logf("checker finding (expected on the broken build): %s", first)
}

func (r *faultRecorder) Fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf(format, args...)
}

func (r *faultRecorder) Logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf(format, args...)
}

func (r *faultRecorder) found(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.findings {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}
