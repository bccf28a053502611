package payment

import (
	"os"
	"strings"
	"testing"
)

// allowed is the lifecycle (docs/state-machine.md), written out again by hand
// so that a change to the table in state.go must be made twice, on purpose.
var allowed = map[[2]Status]bool{
	{StatusPending, StatusProcessing}:                  true,
	{StatusPending, StatusCanceled}:                    true,
	{StatusProcessing, StatusSucceeded}:                true,
	{StatusProcessing, StatusFailed}:                   true,
	{StatusProcessing, StatusPending}:                  true,
	{StatusProcessing, StatusRequiresAction}:           true,
	{StatusProcessing, StatusSent}:                     true,
	{StatusProcessing, StatusRequiresReview}:           true,
	{StatusRequiresAction, StatusProcessing}:           true,
	{StatusRequiresAction, StatusFailed}:               true,
	{StatusRequiresAction, StatusCanceled}:             true,
	{StatusSent, StatusSucceeded}:                      true,
	{StatusSent, StatusReturned}:                       true,
	{StatusSent, StatusFailed}:                         true,
	{StatusSucceeded, StatusPartiallyRefunded}:         true,
	{StatusSucceeded, StatusRefunded}:                  true,
	{StatusSucceeded, StatusReturned}:                  true,
	{StatusPartiallyRefunded, StatusPartiallyRefunded}: true,
	{StatusPartiallyRefunded, StatusRefunded}:          true,
	{StatusRequiresReview, StatusSucceeded}:            true,
	{StatusRequiresReview, StatusFailed}:               true,
}

// TestEveryPair checks all 121 ordered pairs: the allowed ones pass, every
// other one is refused with a *TransitionError.
func TestEveryPair(t *testing.T) {
	t.Parallel()
	n := 0
	for _, from := range Statuses {
		for _, to := range Statuses {
			n++
			want := allowed[[2]Status{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %t, want %t", from, to, got, want)
			}
			got, err := Next(from, to)
			if want && (err != nil || got != to) {
				t.Errorf("Next(%s, %s) = %s, %v; want %s, nil", from, to, got, err, to)
			}
			if !want {
				te, ok := err.(*TransitionError)
				if !ok || te.From != from || te.To != to || got != from {
					t.Errorf("Next(%s, %s) = %s, %v; want a *TransitionError and the old status", from, to, got, err)
				}
			}
		}
	}
	if n != 121 {
		t.Fatalf("checked %d pairs, want 121", n)
	}
}

func TestAbsorbing(t *testing.T) {
	t.Parallel()
	for _, s := range []Status{StatusRefunded, StatusReturned, StatusFailed, StatusCanceled} {
		if !s.Absorbing() || !s.Final() {
			t.Errorf("%s must absorb and be final", s)
		}
	}
	for _, s := range []Status{StatusPending, StatusProcessing, StatusRequiresAction, StatusSent} {
		if s.Final() || s.Absorbing() {
			t.Errorf("%s must not be final", s)
		}
	}
}

func TestUnknownStatusRefused(t *testing.T) {
	t.Parallel()
	if _, err := Next("BOGUS", StatusPending); err == nil {
		t.Fatal("unknown from accepted")
	}
	if _, err := Next(StatusPending, "processing"); err == nil {
		t.Fatal("lower-case to accepted")
	}
}

// TestDiagramGolden keeps testdata/lifecycle.mmd and doc.go in step with the
// table. Run with PAYD_UPDATE_GOLDEN=1 to rewrite the golden file.
func TestDiagramGolden(t *testing.T) {
	t.Parallel()
	got := Mermaid()
	if os.Getenv("PAYD_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile("testdata/lifecycle.mmd", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/lifecycle.mmd")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("Mermaid() differs from testdata/lifecycle.mmd (rerun with PAYD_UPDATE_GOLDEN=1):\n%s", got)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if !strings.Contains(string(doc), "//\t"+line+"\n") {
			t.Errorf("doc.go does not show diagram line %q", line)
		}
	}
}

func FuzzNext(f *testing.F) {
	f.Add("PENDING", "PROCESSING")
	f.Add("SUCCEEDED", "PENDING")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, from, to string) {
		got, err := Next(Status(from), Status(to))
		if err == nil {
			if !allowed[[2]Status{Status(from), Status(to)}] || got != Status(to) {
				t.Fatalf("Next(%q, %q) allowed a pair outside the lifecycle", from, to)
			}
		} else if got != Status(from) {
			t.Fatalf("refused Next(%q, %q) changed the status to %q", from, to, got)
		}
	})
}
