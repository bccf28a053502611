// Package archtest enforces the layering of ARCHITECTURE.md ("Layers") and
// keeps the docs in step with the code (docs_test.go): an import points to a
// strictly lower layer, intake and processor never import each other, store
// is the only importer of sqlx and lib/pq, and payment imports only the
// standard library. The benchmark (bench, layer 2 beside intake and
// processor) is imported by cmd/paydbench only and is the only importer of
// the chart libraries, so the payd binary links neither (TestServerLinksNoBench).
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/payd/payd"

// layer of each top-level package; sub-packages take their parent's layer.
var layer = map[string]int{
	"payment":   0,
	"metrics":   0,
	"webhook":   0, // what receivers import: signatures, the delivery client, sealed secrets (stdlib only)
	"jobs":      1,
	"connector": 1,
	"store":     1,
	"intake":    2,
	"processor": 2,
	"cli":       2, // operator commands; cmd wires the processor's reconciliation into them
	"monitor":   2, // the monitor role's gauges
	"bench":     2,
	"cmd":       3,
}

// benchCmd is the one package that may import bench.
const benchCmd = module + "/cmd/paydbench"

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

func top(path string) (string, bool) {
	if !strings.HasPrefix(path, module+"/") {
		return "", false
	}
	return strings.SplitN(strings.TrimPrefix(path, module+"/"), "/", 2)[0], true
}

func TestLayers(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	checked := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		from, _ := top(p.ImportPath)
		if from == "internal" {
			continue // test helpers
		}
		lf, ok := layer[from]
		if !ok {
			t.Errorf("package %s is outside the documented layout", p.ImportPath)
			continue
		}
		checked++
		for _, imp := range p.Imports {
			if to, ours := top(imp); ours {
				if to == "internal" {
					t.Errorf("%s imports test helper %s", p.ImportPath, imp)
					continue
				}
				if to == "bench" && from != "bench" && p.ImportPath != benchCmd {
					t.Errorf("%s imports %s: only %s may", p.ImportPath, imp, benchCmd)
				}
				lt := layer[to]
				sameTree := to == from && (from == "connector" || from == "cmd")
				if lt >= lf && !sameTree {
					t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", p.ImportPath, lf, imp, lt)
				}
				continue
			}
			if (strings.HasPrefix(imp, "github.com/jmoiron/sqlx") || strings.HasPrefix(imp, "github.com/lib/pq")) && from != "store" {
				t.Errorf("%s imports %s: only store may", p.ImportPath, imp)
			}
			if strings.HasPrefix(imp, "gonum.org/") && from != "bench" {
				t.Errorf("%s imports %s: only bench may (charts)", p.ImportPath, imp)
			}
			if from == "payment" && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				t.Errorf("payment imports %s: payment is standard library only", imp)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if checked < 8 {
		t.Fatalf("checked only %d packages", checked)
	}
}

// chartDeps match the packages a chart library brings (gonum's plot, and
// through it LaTeX, PDF, SVG and font packages).
var chartDeps = regexp.MustCompile(`gonum|latex|pdf|font|svg`)

// TestServerLinksNoBench: the payd binary links nothing of the benchmark: not the
// bench package, not its chart libraries.
func TestServerLinksNoBench(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"/cmd/payd").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps cmd/payd: only %d packages", len(deps))
	}
	for _, d := range deps {
		if chartDeps.MatchString(d) || d == module+"/bench" {
			t.Errorf("payd links %s", d)
		}
	}
}
