package archtest

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// readmeURL is where the alerts' runbook_url annotations point: the
// README's runbooks, as GitHub shows them.
const readmeURL = "https://github.com/payd/payd/blob/main/README.md#"

// TestRunbookURLs: every alert in deploy/prometheus/alerts.yaml has a
// runbook_url (not the older `runbook` annotation) to a README heading
// "Runbook: …" that exists, under GitHub's anchor rules.
func TestRunbookURLs(t *testing.T) {
	t.Parallel()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "deploy/prometheus/alerts.yaml")), &rules); err != nil {
		t.Fatal(err)
	}
	anchors := headings(t, "README.md")
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if _, ok := r.Annotations["runbook"]; ok {
				t.Errorf("%s: annotation runbook: say runbook_url (what Alertmanager and Grafana link)", r.Alert)
			}
			u := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(u, readmeURL)
			switch {
			case !ok:
				t.Errorf("%s: runbook_url %q is not %s…", r.Alert, u, readmeURL)
			case !strings.HasPrefix(anchor, "runbook-"):
				t.Errorf("%s: runbook_url %q: want a README heading \"Runbook: …\"", r.Alert, u)
			case !anchors[anchor]:
				t.Errorf("%s: runbook_url %q: README.md has no heading #%s", r.Alert, u, anchor)
			}
		}
	}
	if n == 0 {
		t.Fatal("deploy/prometheus/alerts.yaml has no alerts")
	}
}
