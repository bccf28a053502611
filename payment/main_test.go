package payment_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs the property tests (pgregory.net/rapid) on 2,000 random
// cases each instead of rapid's 100: the functions under test are pure and
// fast. -rapid.checks on the command line still wins.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		if err := flag.Set("rapid.checks", "2000"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
