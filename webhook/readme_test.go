package webhook

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeSnippetsVerify runs the README's Python and Node verification
// snippets, as printed, on a delivery signed by Sign: each must accept it,
// and refuse it with another secret or a changed body. (The Go one is
// Verify itself.) python3 and node are installed by scripts/test.sh.
func TestReadmeSnippetsVerify(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(lang string) string {
		m := regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
		for _, b := range m {
			if strings.Contains(b[1], "def verify") || strings.Contains(b[1], "function verify") {
				return b[1]
			}
		}
		t.Fatalf("README has no %s verify snippet", lang)
		return ""
	}
	body := `{"id":"evt_1","type":"payment.succeeded","data":{"object":{"id":"pay_1","amount":12.5}}}`
	header := Sign([]byte(body), time.Now(), "whsec_old", "whsec_new")
	dir := t.TempDir()
	py := filepath.Join(dir, "v.py")
	os.WriteFile(py, []byte(block("python")+`
import sys
print(verify(sys.argv[1].encode(), sys.argv[2], sys.argv[3]))
`), 0o600)
	js := filepath.Join(dir, "v.js")
	os.WriteFile(js, []byte(block("js")+`
console.log(verify(Buffer.from(process.argv[2]), process.argv[3], process.argv[4]) ? "True" : "False");
`), 0o600)
	for _, run := range []struct{ name, bin, file string }{{"python", "python3", py}, {"node", "node", js}} {
		for _, c := range []struct {
			body, secret, want string
		}{
			{body, "whsec_new", "True"}, {body, "whsec_old", "True"},
			{body, "whsec_other", "False"}, {body + " ", "whsec_new", "False"},
		} {
			out, err := exec.Command(run.bin, run.file, c.body, header, c.secret).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", run.name, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != c.want {
				t.Errorf("%s snippet, secret %s, body changed %v: %s, want %s", run.name, c.secret, c.body != body, got, c.want)
			}
		}
	}
}
