package main

// The deploy files, checked by parsing them (no Docker engine or cluster
// runs here): the Procfile, deploy/foreman.env, deploy/compose.yaml,
// deploy/kubernetes/{payd,migrate}.yaml, deploy/Dockerfile, .dockerignore.
// The Procfile is also run for real, by foreman: procfile_test.go.

import (
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// procfileRole is one line of the Procfile.
type procfileRole struct {
	name, command string
	sub           string   // the payd subcommand it runs
	envSet        []string // names the line sets (env NAME=value)
	envUsed       []string // names it expands ($NAME), the runner's $PORT left out
}

var (
	procfileLine = regexp.MustCompile(`^([A-Za-z0-9_-]+):\s*(.+)$`)
	shellVar     = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
)

func readProcfile(t *testing.T) []procfileRole {
	t.Helper()
	b, err := os.ReadFile("../../Procfile")
	if err != nil {
		t.Fatal(err)
	}
	var roles []procfileRole
	for _, line := range strings.Split(string(b), "\n") {
		m := procfileLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := procfileRole{name: m[1], command: m[2]}
		f := strings.Fields(m[2])
		if len(f) > 0 && f[0] == "env" {
			f = f[1:]
		}
		for len(f) > 0 && strings.Contains(f[0], "=") {
			r.envSet = append(r.envSet, strings.SplitN(f[0], "=", 2)[0])
			f = f[1:]
		}
		if len(f) < 2 || f[0] != "bin/payd" {
			t.Errorf("Procfile %s: %q does not run bin/payd", r.name, m[2])
			continue
		}
		r.sub = f[1]
		for _, v := range shellVar.FindAllStringSubmatch(m[2], -1) {
			// PORT is the runner's (foreman's, a platform's): the port it
			// gives each process, not a setting of payd
			if v[1] != "PORT" {
				r.envUsed = append(r.envUsed, v[1])
			}
		}
		roles = append(roles, r)
	}
	return roles
}

type composeFile struct {
	Services map[string]composeService
}

type composeService struct {
	Image       string
	Build       any
	Command     []string
	Restart     string
	Ports       []string
	Environment map[string]string
	Healthcheck *struct {
		Test    []string
		Disable bool
	}
	Deploy struct {
		Replicas  *int
		Resources struct {
			Reservations map[string]string
		}
	}
}

func (s composeService) payd() bool { return s.Image == "payd:latest" }

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   struct {
		Name         string
		GenerateName string `yaml:"generateName"`
	}
	Data map[string]string // ConfigMap
	Spec struct {
		Replicas *int
		Strategy struct {
			Type string
		}
		MinAvailable any `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		ScaleTargetRef struct {
			Kind, Name string
		} `yaml:"scaleTargetRef"`
		MinReplicas             int  `yaml:"minReplicas"`
		MaxReplicas             int  `yaml:"maxReplicas"`
		TTLSecondsAfterFinished *int `yaml:"ttlSecondsAfterFinished"`
		Ports                   []struct {
			Port int
		}
		Template struct {
			Metadata struct {
				Labels      map[string]string
				Annotations map[string]string
			}
			Spec struct {
				Containers []k8sContainer
			}
		}
	}
}

type k8sContainer struct {
	Name, Image string
	Args        []string
	Env         []struct{ Name, Value string }
	EnvFrom     []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		ContainerPort int `yaml:"containerPort"`
		Name          string
	}
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string
	}
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string
		Port any
	} `yaml:"httpGet"`
	TimeoutSeconds int `yaml:"timeoutSeconds"`
}

// readK8s decodes each document of a manifest on its own, as kubectl
// does: an anchor defined in one document is unknown in the next.
func readK8s(t *testing.T, path string) []k8sObject {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []k8sObject
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		var o k8sObject
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%s, document %d: %v", path, i+1, err)
		}
		if o.Kind == "" && strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
			continue // comments only
		}
		if o.Kind == "" || o.APIVersion == "" || (o.Metadata.Name == "" && o.Metadata.GenerateName == "") {
			t.Errorf("%s: an object without apiVersion, kind or name: %+v", path, o.Metadata)
		}
		out = append(out, o)
	}
	return out
}

// readmeConfigNames is every variable of the README's configuration table.
func readmeConfigNames(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)` \\|").FindAllStringSubmatch(string(b), -1) {
		names[m[1]] = true
	}
	if len(names) < 40 {
		t.Fatalf("found only %d variables in the README's configuration table", len(names))
	}
	return names
}

// refusedAsUnknown runs `payd <args>` with nothing reachable and a canceled
// context, and reports whether payd refused the command as unknown (a
// usage error) rather than trying to run it.
func refusedAsUnknown(args []string) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/payd?sslmode=disable&connect_timeout=1",
		"REDIS_URL": "redis://127.0.0.1:1/0", "PAYD_ADDR": "127.0.0.1:0", "PAYD_ADMIN_ADDR": "127.0.0.1:0",
		"PAYD_SANDBOX_ADDR": "127.0.0.1:0"}
	err := run(ctx, append([]string{"payd"}, args...), func(k string) string { return env[k] }, io.Discard)
	return errors.Is(err, errUsage)
}

// TestDeployFilesParse: the deploy files load, name only real subcommands
// and documented settings, and run the same roles: every Procfile role has
// its compose service and its Kubernetes Deployment (release: the migrate
// service and Job), each with the probes, resources and metrics its
// platform needs, every role on one shared gateway (PAYD_SANDBOX_URL).
func TestDeployFilesParse(t *testing.T) {
	t.Parallel()
	documented := readmeConfigNames(t)
	used := map[string][]string{} // setting → where
	use := func(where string, names ...string) {
		for _, n := range names {
			used[n] = append(used[n], where)
		}
	}
	subcommands := map[string][]string{} // command line (without the binary) → where
	runs := func(where string, args ...string) {
		key := strings.Join(args, " ")
		subcommands[key] = append(subcommands[key], where)
	}

	// ---- Procfile
	roles := readProcfile(t)
	bySub := map[string]procfileRole{}
	var names []string
	for _, r := range roles {
		names = append(names, r.name)
		bySub[r.sub] = r
		use("Procfile "+r.name, r.envSet...)
		use("Procfile "+r.name, r.envUsed...)
		runs("Procfile "+r.name, r.sub)
	}
	sort.Strings(names)
	if want := []string{"monitor", "release", "sandbox", "scheduler", "web", "worker"}; !slices.Equal(names, want) {
		t.Errorf("Procfile roles %v, want %v", names, want)
	}
	for role, sub := range map[string]string{"release": "migrate", "web": "intake", "worker": "worker", "scheduler": "scheduler",
		"monitor": "monitor", "sandbox": "sandbox"} {
		if r := bySub[sub]; r.name != role {
			t.Errorf("Procfile: %s should run bin/payd %s", role, sub)
		}
	}
	// processes sharing a host get their own ports: web's API and the
	// others' admin ports are the runner's $PORT
	for sub, want := range map[string]string{"intake": "PAYD_ADDR", "worker": "PAYD_ADMIN_ADDR", "scheduler": "PAYD_ADMIN_ADDR",
		"monitor": "PAYD_ADMIN_ADDR"} {
		if !strings.Contains(bySub[sub].command, want+"=:$PORT") {
			t.Errorf("Procfile %s: %q does not bind %s to $PORT", bySub[sub].name, bySub[sub].command, want)
		}
	}

	// ---- deploy/foreman.env: the Procfile's environment on one host
	fb, err := os.ReadFile("../../deploy/foreman.env")
	if err != nil {
		t.Fatal(err)
	}
	fenv := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_][A-Z0-9_]*)=(.*)$`).FindAllStringSubmatch(string(fb), -1) {
		fenv[m[1]] = m[2]
		use("deploy/foreman.env", m[1])
	}
	if fenv["PAYD_SANDBOX_URL"] != "http://"+fenv["PAYD_SANDBOX_ADDR"] {
		t.Errorf("deploy/foreman.env: PAYD_SANDBOX_URL %q does not name the sandbox role's PAYD_SANDBOX_ADDR %q",
			fenv["PAYD_SANDBOX_URL"], fenv["PAYD_SANDBOX_ADDR"])
	}
	if fenv["PAYD_SANDBOX_PUBLIC_URL"] != fenv["PAYD_PUBLIC_URL"]+"/sandbox" {
		t.Errorf("deploy/foreman.env: PAYD_SANDBOX_PUBLIC_URL %q is not web's PAYD_PUBLIC_URL %q + /sandbox",
			fenv["PAYD_SANDBOX_PUBLIC_URL"], fenv["PAYD_PUBLIC_URL"])
	}

	// ---- deploy/compose.yaml
	var compose composeFile
	if err := readYAML(t, "../../deploy/compose.yaml")[0].Decode(&compose); err != nil {
		t.Fatal(err)
	}
	cb, _ := os.ReadFile("../../deploy/compose.yaml")
	for _, m := range regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)`).FindAllStringSubmatch(string(cb), -1) {
		use("deploy/compose.yaml interpolation", m[1])
	}
	composeBySub := map[string]string{}
	for name, s := range compose.Services {
		if !s.payd() {
			continue
		}
		where := "compose service " + name
		if len(s.Command) == 0 {
			t.Errorf("%s has no command", where)
			continue
		}
		runs(where, s.Command...)
		sub := s.Command[0]
		if other, dup := composeBySub[sub]; dup {
			t.Errorf("compose services %s and %s both run %s", other, name, sub)
		}
		composeBySub[sub] = name
		for k := range s.Environment {
			use(where, k)
		}
		if _, ok := bySub[sub]; !ok {
			t.Errorf("%s runs %s, which no Procfile role runs", where, sub)
		}
		if len(s.Deploy.Resources.Reservations) == 0 {
			t.Errorf("%s reserves no resources", where)
		}
		switch sub {
		case "migrate":
			if s.Restart != "no" {
				t.Errorf("%s restarts (%q): a release runs once", where, s.Restart)
			}
			continue
		case "sandbox":
			if s.Environment["PAYD_SANDBOX_PUBLIC_URL"] != "http://localhost:8080/sandbox" {
				t.Errorf("%s: PAYD_SANDBOX_PUBLIC_URL %q, want intake's published port + /sandbox", where, s.Environment["PAYD_SANDBOX_PUBLIC_URL"])
			}
		default:
			if got := s.Environment["PAYD_SANDBOX_URL"]; got != "http://sandbox:8090" {
				t.Errorf("%s: PAYD_SANDBOX_URL %q, want the sandbox service (http://sandbox:8090)", where, got)
			}
		}
		if s.Healthcheck == nil || s.Healthcheck.Disable || len(s.Healthcheck.Test) < 3 || s.Healthcheck.Test[0] != "CMD" ||
			s.Healthcheck.Test[1] != "/payd" {
			t.Errorf("%s has no `payd healthcheck` healthcheck: %+v", where, s.Healthcheck)
		} else {
			runs(where+" healthcheck", s.Healthcheck.Test[2:]...)
		}
		if sub == "scheduler" && (s.Deploy.Replicas == nil || *s.Deploy.Replicas != 1) {
			t.Errorf("%s: want exactly one replica", where)
		}
	}
	for _, r := range roles {
		if composeBySub[r.sub] == "" {
			t.Errorf("Procfile %s (payd %s) has no compose service", r.name, r.sub)
		}
	}

	// ---- deploy/kubernetes: payd.yaml (apply again and again) and
	// migrate.yaml (created anew for each release)
	objs := readK8s(t, "../../deploy/kubernetes/payd.yaml")
	jobs := readK8s(t, "../../deploy/kubernetes/migrate.yaml")
	config := map[string]string{}
	services := map[string]k8sObject{}
	deployments := map[string]k8sObject{} // by subcommand
	pdbs := map[string]bool{}             // role label selected
	var hpas []k8sObject
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			for k, v := range o.Data {
				config[k] = v
				use("ConfigMap "+o.Metadata.Name, k)
			}
		case "Service":
			services[o.Metadata.Name] = o
		case "PodDisruptionBudget":
			pdbs[o.Spec.Selector.MatchLabels["role"]] = o.Spec.MinAvailable != nil
		case "HorizontalPodAutoscaler":
			hpas = append(hpas, o)
		case "Job":
			t.Errorf("payd.yaml holds Job %s: a Job cannot be applied again with a new image (migrate.yaml)", o.Metadata.Name)
		}
	}
	for _, o := range append(objs, jobs...) {
		if o.Kind != "Deployment" && o.Kind != "Job" {
			continue
		}
		where := o.Kind + " " + o.Metadata.Name + o.Metadata.GenerateName
		cs := o.Spec.Template.Spec.Containers
		if len(cs) != 1 || len(cs[0].Args) == 0 || cs[0].Image != "payd:latest" {
			t.Errorf("%s: want one payd container with args", where)
			continue
		}
		c := cs[0]
		sub := c.Args[0]
		runs(where, c.Args...)
		for _, e := range c.Env {
			use(where, e.Name)
		}
		if len(c.Resources.Requests) == 0 || c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
			t.Errorf("%s requests no cpu or memory", where)
		}
		if _, ok := bySub[sub]; !ok {
			t.Errorf("%s runs %s, which no Procfile role runs", where, sub)
		}
		if o.Kind == "Job" {
			if sub != "migrate" {
				t.Errorf("%s runs %s, want migrate", where, sub)
			}
			if o.Metadata.Name != "" || o.Metadata.GenerateName == "" || o.Spec.TTLSecondsAfterFinished == nil {
				t.Errorf("%s: want generateName (a new Job per release) and ttlSecondsAfterFinished, got name %q", where, o.Metadata.Name)
			}
			deployments["migrate"] = o
			continue
		}
		if _, dup := deployments[sub]; dup {
			t.Errorf("two Deployments run %s", sub)
		}
		deployments[sub] = o
		ports := map[string]int{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		for kind, p := range map[string]*k8sProbe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || (p.HTTPGet.Path != "/readyz" && p.HTTPGet.Path != "/healthz") || p.TimeoutSeconds < 3 {
				t.Errorf("%s: %s probe %+v, want an httpGet of /healthz or /readyz with a timeout of 3 s or more", where, kind, p)
				continue
			}
			if port, ok := p.HTTPGet.Port.(string); !ok || ports[port] == 0 {
				t.Errorf("%s: %s probe port %v names no container port", where, kind, p.HTTPGet.Port)
			}
		}
		if sub == "sandbox" {
			if config["PAYD_SANDBOX_URL"] == "" {
				t.Errorf("the ConfigMap sets no PAYD_SANDBOX_URL")
			}
		} else {
			// a payd role: the shared gateway and settings, metrics scraped
			// on the admin port, liveness not tied to a dependency
			hasConfig := false
			for _, ef := range c.EnvFrom {
				hasConfig = hasConfig || (ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == "payd-config")
			}
			if !hasConfig {
				t.Errorf("%s does not take the payd-config ConfigMap (PAYD_SANDBOX_URL)", where)
			}
			ann := o.Spec.Template.Metadata.Annotations
			if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "8081" || ann["prometheus.io/path"] != "/metrics" ||
				ports["admin"] != 8081 {
				t.Errorf("%s: want prometheus.io annotations for /metrics on the admin port 8081, got %v (ports %v)", where, ann, ports)
			}
			if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("%s: liveness on %s: a dependency down must not restart the pod", where, c.LivenessProbe.HTTPGet.Path)
			}
		}
		if sub == "scheduler" || sub == "sandbox" {
			if o.Spec.Replicas == nil || *o.Spec.Replicas != 1 || o.Spec.Strategy.Type != "Recreate" {
				t.Errorf("%s: want replicas 1 and strategy Recreate (never two during a rollout)", where)
			}
		}
	}
	for _, r := range roles {
		if deployments[r.sub].Kind == "" {
			t.Errorf("Procfile %s (payd %s) has no Kubernetes Deployment or Job", r.name, r.sub)
		}
	}
	if sb, ok := services["payd-sandbox"]; !ok || len(sb.Spec.Ports) == 0 || config["PAYD_SANDBOX_URL"] != "http://payd-sandbox:8090" ||
		sb.Spec.Ports[0].Port != 8090 {
		t.Errorf("PAYD_SANDBOX_URL %q does not name the payd-sandbox Service on 8090", config["PAYD_SANDBOX_URL"])
	}
	if _, ok := services["payd"]; !ok {
		t.Errorf("no Service payd in front of intake")
	}
	for _, role := range []string{"intake", "worker"} {
		if !pdbs[role] {
			t.Errorf("no PodDisruptionBudget with minAvailable for the %s pods", role)
		}
	}
	if len(hpas) != 1 || hpas[0].Spec.ScaleTargetRef.Kind != "Deployment" || hpas[0].Spec.ScaleTargetRef.Name != deployments["worker"].Metadata.Name ||
		hpas[0].Spec.MinReplicas < 1 || hpas[0].Spec.MaxReplicas < hpas[0].Spec.MinReplicas {
		t.Errorf("want one HorizontalPodAutoscaler of the worker Deployment, got %+v", hpas)
	}

	// ---- every setting documented, every command real
	for name, where := range used {
		if !documented[name] {
			t.Errorf("%s (used by %s) is not in the README's configuration table", name, strings.Join(where, ", "))
		}
	}
	for cmd, where := range subcommands {
		if refusedAsUnknown(strings.Fields(cmd)) {
			t.Errorf("payd %s (%s) is not a payd command", cmd, strings.Join(where, ", "))
		}
	}
	if !refusedAsUnknown([]string{"no-such-role"}) {
		t.Errorf("the subcommand check accepts anything")
	}

	// ---- the image: multi-stage, static, non-root; a lean build context
	df, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(df)
	stages := regexp.MustCompile(`(?m)^FROM `).FindAllStringIndex(dockerfile, -1)
	if len(stages) < 2 || !strings.Contains(dockerfile, "CGO_ENABLED=0") {
		t.Errorf("deploy/Dockerfile: want a multi-stage build of a static binary (CGO_ENABLED=0)")
	} else if final := dockerfile[stages[len(stages)-1][0]:]; !regexp.MustCompile(`(?m)^USER (65532|nonroot)`).MatchString(final) {
		t.Errorf("deploy/Dockerfile: the final stage does not run as a non-root USER")
	}
	di, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	ignored := strings.Fields(string(di))
	for _, want := range []string{".git", ".run/", "bin/"} {
		if !slices.Contains(ignored, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}
