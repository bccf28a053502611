package main

// The fault checker's negative tests: the checks of fault_test.go must be
// able to fail, each for the invariant it guards. Each builds a deliberately
// broken payd (a build tag; the break is a constant or an inlined function
// in a small _broken.go / _ok.go pair of the package it belongs to, so the
// normal build carries none of it), runs a short load against it, and
// requires the checker to report violations of exactly that invariant:
//
//	paydbroken_nosweep        processor  Sweep does nothing: after a Redis wipe lost tasks are never re-enqueued     I2 (payments not final)
//	paydbroken_retryunknown   processor  a charge whose answer was lost is retried under a new key, not inquired    I1 (double charge)
//	paydbroken_doublereserve  store      a new payment reserves twice its amount on its invoice                     I3 (invoice balances)
//	paydbroken_noaudit        store      a change to SUCCEEDED by the batched statement writes no audit row          I4 (audit chain)
//	paydbroken_idemscope      intake     every request's Idempotency-Key is scoped to itself (lookup and lock miss)  I5 (two payments for a key)
//
// "Exactly" is checked: the findings name the broken invariant, and no
// other invariant (I1–I8) but one the break implies (a second charge is
// also money the gateway took that payd does not account for: I8).

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
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
	rec.onlyAbout("paydbroken_nosweep", "I2", nil)
}

// faultBrokenBuild is one deliberately broken payd and what the checker
// must say about it.
type faultBrokenBuild struct {
	name, tag string
	breaks    string   // the invariant it breaks: I1, I3, …
	want      []string // findings (prefixes) the checker must make
	implied   []string // other invariants the break also breaks by nature
	mix       func(i int) (method, pm string)
	resend    bool // the load's clients post each accepted request twice
	// check, when set, asserts what the break did happened (that the
	// scenario could have shown it)
	check func(t *testing.T, c *faultCluster, s faultSummary)
}

func faultBrokenBuilds() []faultBrokenBuild {
	return []faultBrokenBuild{
		{
			name: "I1_retry_unknown_as_new_charge", tag: "paydbroken_retryunknown", breaks: "I1",
			want: []string{"I1: double charge: ", "I1: lost gateway answer not resolved by inquiry: "},
			// the second and later charges are money payd does not account for
			implied: []string{"I8"},
			// half the cards charge, then lose their answer
			mix: func(i int) (string, string) {
				if i%2 == 0 {
					return "CARD", sandbox.CardTimeoutAfterCharge
				}
				return "CARD", sandbox.CardVisa
			},
			check: func(t *testing.T, c *faultCluster, s faultSummary) {
				if s.doubleCharged == 0 {
					t.Errorf("no payment was charged twice: the scenario shows nothing")
				}
			},
		},
		{
			name: "I3_double_reservation", tag: "paydbroken_doublereserve", breaks: "I3",
			want: []string{"I3: invoice balances differ from its lines: "},
			mix:  faultMix,
		},
		{
			name: "I4_transition_without_audit_row", tag: "paydbroken_noaudit", breaks: "I4",
			want: []string{"I4: audit chain: "},
			mix:  faultMix,
		},
		{
			name: "I5_idempotency_key_not_found", tag: "paydbroken_idemscope", breaks: "I5",
			want: []string{"I5: several payments for one key: ", "I5: payment for a key whose client was told another: ",
				"I5: idempotency record: ", "I5: replay differs from the first answer: "},
			mix:    faultMix,
			resend: true,
		},
	}
}

// TestFaultCheckerCatchesBrokenInvariants runs each broken build of
// faultBrokenBuilds, two at a time, under a short load (80 payments over
// 2 s) and requires the checker's findings to name its invariant and no
// other but those the break implies.
func TestFaultCheckerCatchesBrokenInvariants(t *testing.T) {
	var scenarios []faultScenario
	for _, b := range faultBrokenBuilds() {
		scenarios = append(scenarios, faultScenario{b.name, func(t *testing.T) { faultCatchBroken(t, b) }})
	}
	runFaultScenarios(t, scenarios, chaosEnvInt(t, "PAYD_FAULT_PARALLEL_BROKEN", 2))
}

// faultInvariantRE finds the invariant a finding is about.
var faultInvariantRE = regexp.MustCompile(`^(I[1-8]):`)

func faultCatchBroken(t *testing.T, b faultBrokenBuild) {
	start := time.Now()
	bin := buildFaultPayd(t, "-tags", b.tag)
	c := startFaultCluster(t, bin)
	rec := &faultRecorder{t: t}
	c.chk = rec
	l := c.startLoad(faultLoadSpec{n: 80, clients: 8, spread: 2 * time.Second, mix: b.mix, resend: b.resend})
	l.wait()
	s := c.finish("broken_"+b.name, l, l.end)
	if b.check != nil {
		b.check(t, c, s)
	}
	for _, want := range b.want {
		if !rec.found(want) {
			t.Errorf("the checker missed the broken build (%s breaks %s): no finding starts with %q; findings:\n%s",
				b.tag, b.breaks, want, strings.Join(rec.findings, "\n"))
		}
	}
	rec.onlyAbout(b.tag, b.breaks, b.implied)
	t.Logf("-tags %s: %d finding(s) in %s", b.tag, len(rec.findings), time.Since(start).Round(100*time.Millisecond))
}

// onlyAbout fails the test if the findings name an invariant (I1–I8) other
// than the one the build breaks and those the break implies: a checker
// that blames invariants that hold would prove nothing by failing.
func (r *faultRecorder) onlyAbout(tag, breaks string, implied []string) {
	r.t.Helper()
	named := map[string]int{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.findings {
		if m := faultInvariantRE.FindStringSubmatch(f); m != nil {
			named[m[1]]++
		}
	}
	r.t.Logf("-tags %s: the checker's findings by invariant: %v", tag, named)
	var others []string
	for inv := range named {
		if inv != breaks && !slices.Contains(implied, inv) {
			others = append(others, inv)
		}
	}
	sort.Strings(others)
	if len(others) > 0 {
		r.t.Errorf("-tags %s breaks %s, yet the checker also reported %v: it blames invariants that hold; findings:\n%s",
			tag, breaks, others, strings.Join(r.findings, "\n"))
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
