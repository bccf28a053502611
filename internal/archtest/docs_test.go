package archtest

// The documents that describe the code must move with it. These tests read
// files only (no database, no network): ARCHITECTURE.md must list every
// route of intake/routes.go with its handler's file and every task type of
// jobs/ with its queue and handler file; the state diagram in
// docs/state-machine.md must be the one payment.Mermaid renders from the
// lifecycle table; and every link between the docs, and every docs page a
// code comment names, must exist.

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/payd/payd/payment"
)

// root is the repository root, seen from this package's directory.
var root = filepath.Join("..", "..")

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goSources returns the non-test Go files of one package directory, by
// file name.
func goSources(t *testing.T, dir string) map[string]string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = string(b)
	}
	if len(out) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return out
}

// definedIn maps each function matched by re (its first group) to the file
// that defines it.
func definedIn(files map[string]string, re *regexp.Regexp) map[string]string {
	out := map[string]string{}
	for name, src := range files {
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			out[m[1]] = name
		}
	}
	return out
}

// tableRow returns the first markdown table row of doc that contains every
// one of needles.
func tableRow(doc string, needles ...string) (string, bool) {
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "|") {
			continue
		}
		all := true
		for _, n := range needles {
			all = all && strings.Contains(line, n)
		}
		if all {
			return line, true
		}
	}
	return "", false
}

// TestArchitectureListsEveryRoute: every route registered in
// intake/routes.go is a row of ARCHITECTURE.md's route table, naming the
// file of its handler.
func TestArchitectureListsEveryRoute(t *testing.T) {
	t.Parallel()
	doc := readFile(t, "ARCHITECTURE.md")
	handlers := definedIn(goSources(t, "intake"), regexp.MustCompile(`(?m)^func \(s \*Server\) (handle\w+)\(`))
	src := readFile(t, "intake/routes.go")
	routes := regexp.MustCompile(`handle\("([^"]+)",\s*s\.(\w+),`).FindAllStringSubmatch(src, -1)
	if len(routes) < 15 {
		t.Fatalf("found only %d routes in intake/routes.go", len(routes))
	}
	if n := len(regexp.MustCompile(`handle\("`).FindAllString(src, -1)); n != len(routes) {
		t.Fatalf("intake/routes.go registers %d routes, this test understands %d: teach it the new form", n, len(routes))
	}
	for _, r := range routes {
		pattern, handler := r[1], r[2]
		row, ok := tableRow(doc, "`"+pattern+"`")
		if !ok {
			t.Errorf("ARCHITECTURE.md: route `%s` (%s) is missing from the route table", pattern, handler)
			continue
		}
		file, ok := handlers[handler]
		if !ok {
			t.Errorf("intake: no func (s *Server) %s for route %s", handler, pattern)
			continue
		}
		if !strings.Contains(row, "intake/"+file) {
			t.Errorf("ARCHITECTURE.md: the row of `%s` does not name intake/%s, where %s is:\n%s", pattern, file, handler, row)
		}
	}
}

// TestArchitectureListsEveryTask: every task type constant of jobs/ is a
// row of ARCHITECTURE.md's task table with its constant, its queue and the
// processor file of its handler; every type has a handler in
// processor.Mux.
func TestArchitectureListsEveryTask(t *testing.T) {
	t.Parallel()
	doc := readFile(t, "ARCHITECTURE.md")
	jobsSrc := strings.Join(mapValues(goSources(t, "jobs")), "\n")
	types := regexp.MustCompile(`(?m)^\s*(?:const\s+)?(Type\w+)\s*=\s*"([^"]+)"`).FindAllStringSubmatch(jobsSrc, -1)
	if len(types) < 9 {
		t.Fatalf("found only %d task types in jobs/", len(types))
	}
	queues := map[string]string{}
	for _, m := range regexp.MustCompile(`(Type\w+):\s*\{Queue(\w+),`).FindAllStringSubmatch(jobsSrc, -1) {
		queues[m[1]] = strings.ToLower(m[2])
	}
	proc := goSources(t, "processor")
	methods := definedIn(proc, regexp.MustCompile(`(?m)^func \(p \*Processor\) (\w+)\(`))
	handled := map[string]string{} // type constant → handler method ("" when inline)
	for _, m := range regexp.MustCompile(`mux\.Handle\(jobs\.(Type\w+), p\.wrap\(jobs\.\w+, (?:p\.(\w+)\))?`).FindAllStringSubmatch(proc["processor.go"], -1) {
		handled[m[1]] = m[2]
	}
	for _, ty := range types {
		name, value := ty[1], ty[2]
		row, ok := tableRow(doc, "`"+value+"`", "`"+name+"`")
		if !ok {
			t.Errorf("ARCHITECTURE.md: task type `%s` (`%s`) is missing from the task table", value, name)
			continue
		}
		if q, ok := queues[name]; !ok {
			t.Errorf("jobs: %s has no spec (queue, retries, timeout)", name)
		} else if !strings.Contains(row, "| "+q+" |") {
			t.Errorf("ARCHITECTURE.md: the row of `%s` does not give its queue %q:\n%s", value, q, row)
		}
		method, ok := handled[name]
		switch {
		case !ok:
			t.Errorf("processor.Mux registers no handler for %s", name)
		case method == "":
			if !strings.Contains(row, "processor/") {
				t.Errorf("ARCHITECTURE.md: the row of `%s` names no processor file:\n%s", value, row)
			}
		default:
			file, ok := methods[method]
			if !ok {
				t.Errorf("processor: no func (p *Processor) %s for %s", method, name)
			} else if !strings.Contains(row, "processor/"+file) {
				t.Errorf("ARCHITECTURE.md: the row of `%s` does not name processor/%s, where %s is:\n%s", value, file, method, row)
			}
		}
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestStateMachineDocMatchesTable: the mermaid diagram of
// docs/state-machine.md is what payment.Mermaid renders from the lifecycle
// table.
func TestStateMachineDocMatchesTable(t *testing.T) {
	t.Parallel()
	doc := readFile(t, "docs/state-machine.md")
	_, rest, ok := strings.Cut(doc, "```mermaid\n")
	if !ok {
		t.Fatal("docs/state-machine.md has no ```mermaid block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/state-machine.md: the mermaid block is not closed")
	}
	if want := payment.Mermaid(); block != want {
		t.Errorf("docs/state-machine.md: the mermaid block differs from payment.Mermaid(); paste this:\n%s", want)
	}
}

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	docsName = regexp.MustCompile(`\b(?:docs/[A-Za-z0-9_-]+\.md|ARCHITECTURE\.md)`)
)

// TestDocLinksResolve: every relative link in the repository's markdown
// (README.md, ARCHITECTURE.md, docs/) points to a file that exists, and to
// a heading that exists when it names one; every docs page a Go file
// names exists.
func TestDocLinksResolve(t *testing.T) {
	t.Parallel()
	pages := []string{"README.md", "ARCHITECTURE.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		pages = append(pages, "docs/"+filepath.Base(m))
	}
	for _, page := range pages {
		doc := readFile(t, page)
		for _, m := range mdLink.FindAllStringSubmatch(doc, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			rel := page
			if file != "" {
				rel = filepath.ToSlash(filepath.Join(filepath.Dir(page), file))
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
					t.Errorf("%s links to %s, which does not exist", page, target)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(rel, ".md") && !headings(t, rel)[anchor] {
				t.Errorf("%s links to %s: %s has no heading #%s", page, target, rel, anchor)
			}
		}
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, name := range docsName.FindAllString(string(b), -1) {
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(name))); err != nil {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s names %s, which does not exist", rel, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// headings returns the anchors of a markdown page's headings, as GitHub
// derives them: lower case, punctuation dropped, spaces as hyphens.
func headings(t *testing.T, page string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(readFile(t, page), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}
