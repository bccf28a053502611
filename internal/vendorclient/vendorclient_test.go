package vendorclient_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/payd/payd/internal/testenv"
)

const runMakeTest = "run the tests with `make test` (scripts/test.sh installs Node from Debian's nodejs and npm " +
	"when absent and runs `npm ci` in internal/vendorclient), or by hand: apt-get install nodejs npm && " +
	"npm ci --prefix internal/vendorclient"

// TestVendorClient runs suite.mjs, the seed-001 vendor's official client
// against payd given only payd's URL and a key, and fails when any of its
// cases does. Without Node or the installed client it fails, never skips.
func TestVendorClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found: %s", runMakeTest)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@flexprice", "sdk", "package.json")); err != nil {
		t.Fatalf("the client is not installed (%v): %s", err, runMakeTest)
	}
	h := testenv.Start(t, testenv.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "suite.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PAYD_URL="+h.URL+"/v1",
		"PAYD_API_KEY="+h.KeyA,
		"PAYD_INVOICE="+testenv.TestInvoice,
	)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		t.Log(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the vendor's client suite failed (%v): see the FAIL lines above", err)
	}
}
