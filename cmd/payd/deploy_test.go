package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readYAML(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, &n)
	}
	if len(docs) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return docs
}

// TestComposeMonitoring: compose's Prometheus and Grafana get what the
// shipped files expect — the config and every rule file it names at
// /etc/prometheus, the admin password at the password_file path of every
// job, the provisioning directory, and the dashboard where the dashboard
// provider reads; the datasource points at the prometheus service.
// (prometheus_test.go runs the config itself in a real Prometheus.)
func TestComposeMonitoring(t *testing.T) {
	t.Parallel()
	var compose struct {
		Services map[string]struct {
			Command []string
			Volumes []string
			Secrets []string
			Ports   []string
			Image   string
			Environ map[string]string `yaml:"environment"`
		}
		Secrets map[string]struct{ Environment string }
	}
	if err := readYAML(t, "../../deploy/compose.yaml")[0].Decode(&compose); err != nil {
		t.Fatal(err)
	}
	mounts := func(service string) map[string]string { // container path → host path
		out := map[string]string{}
		for _, v := range compose.Services[service].Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 {
				out[parts[1]] = parts[0]
			}
		}
		return out
	}
	prom, graf := compose.Services["prometheus"], compose.Services["grafana"]
	if prom.Image == "" || graf.Image == "" {
		t.Fatalf("compose lacks the prometheus or grafana service: %+v %+v", prom, graf)
	}

	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName   string `yaml:"job_name"`
			BasicAuth struct {
				PasswordFile string `yaml:"password_file"`
			} `yaml:"basic_auth"`
		} `yaml:"scrape_configs"`
	}
	if err := readYAML(t, "../../deploy/prometheus/prometheus.yml")[0].Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	pm := mounts("prometheus")
	if pm["/etc/prometheus/prometheus.yml"] != "./prometheus/prometheus.yml" ||
		!slices.Contains(prom.Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("compose prometheus does not run the shipped prometheus.yml: %v %v", prom.Volumes, prom.Command)
	}
	for _, r := range cfg.RuleFiles {
		if pm["/etc/prometheus/"+r] != "./prometheus/"+r {
			t.Errorf("compose prometheus does not mount rule file %s beside the config", r)
		}
	}
	for _, sc := range cfg.ScrapeConfigs {
		name, ok := strings.CutPrefix(sc.BasicAuth.PasswordFile, "/run/secrets/")
		if !ok || !slices.Contains(prom.Secrets, name) || compose.Secrets[name].Environment != "PAYD_ADMIN_PASSWORD" {
			t.Errorf("job %s reads its password from %q: want a compose secret of PAYD_ADMIN_PASSWORD given to prometheus",
				sc.JobName, sc.BasicAuth.PasswordFile)
		}
	}

	gm := mounts("grafana")
	if gm["/etc/grafana/provisioning"] != "./grafana/provisioning" {
		t.Errorf("compose grafana does not mount the provisioning directory: %v", graf.Volumes)
	}
	var ds struct {
		Datasources []struct {
			Type, URL string
			IsDefault bool `yaml:"isDefault"`
		}
	}
	if err := readYAML(t, "../../deploy/grafana/provisioning/datasources/prometheus.yaml")[0].Decode(&ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !ds.Datasources[0].IsDefault ||
		ds.Datasources[0].URL != "http://prometheus:9090" || !slices.Contains(prom.Ports, "9090:9090") {
		t.Errorf("grafana datasource %+v: want the default, prometheus at http://prometheus:9090", ds.Datasources)
	}
	var dp struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	if err := readYAML(t, "../../deploy/grafana/provisioning/dashboards/payd.yaml")[0].Decode(&dp); err != nil {
		t.Fatal(err)
	}
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" ||
		gm[dp.Providers[0].Options.Path+"/payd.json"] != "./grafana/payd.json" {
		t.Errorf("grafana dashboard provider %+v does not read the mounted payd.json (%v)", dp.Providers, graf.Volumes)
	}
}
