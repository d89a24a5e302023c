package deploy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"go.uber.org/goleak"
	yamlv3 "gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hiveqdCommands are cmd/hiveqd's subcommands (its run switch).
var hiveqdCommands = []string{"serve", "dev", "sql", "version"}

const (
	grpcPort    = 9090
	metricsPort = 9100
)

// serveFlags is the serve command's flag set: config.Register (every
// config.Settings flag and --config).
func serveFlags() (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("hiveqd serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgPath := config.Register(fs)
	return fs, cfgPath
}

// knownEnv are the HIVEQD_* variables hiveqd serve reads.
func knownEnv() map[string]bool {
	m := map[string]bool{}
	for _, s := range config.Settings {
		m[s.Env()] = true
	}
	return m
}

// --- Kubernetes ---

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor we
// use; strict decoding refuses anything else, typos included.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		JobLabel  string               `json:"jobLabel,omitempty"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type manifests struct {
	deployment *appsv1.Deployment
	services   []*corev1.Service
	pdb        *policyv1.PodDisruptionBudget
	configMaps map[string]*corev1.ConfigMap
	monitor    *serviceMonitor
}

// splitDocs splits a multi-document YAML file, dropping empty documents.
func splitDocs(data []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

// strict decodes like the API server: YAML to JSON (duplicate keys are
// errors), then case-sensitive JSON with unknown fields refused
// (encoding/json alone would accept readOnlyRootFileSystem).
func strict(t *testing.T, what string, data []byte, into any) {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	strictErrs, err := kjson.UnmarshalStrict(j, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err := errors.Join(append(strictErrs, err)...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func loadKubernetes(t *testing.T) manifests {
	t.Helper()
	dir := "kubernetes"
	var k kustomization
	strict(t, "kustomization.yaml", read(t, filepath.Join(dir, "kustomization.yaml")), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
			t.Errorf("%s is not listed in kustomization.yaml resources", b)
		}
	}
	m := manifests{configMaps: map[string]*corev1.ConfigMap{}}
	for _, res := range k.Resources {
		for i, doc := range splitDocs(read(t, filepath.Join(dir, res))) {
			what := fmt.Sprintf("%s#%d", res, i)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				if m.deployment != nil {
					t.Fatalf("%s: a second Deployment", what)
				}
				m.deployment = &appsv1.Deployment{}
				strict(t, what, doc, m.deployment)
			case "v1 Service":
				s := &corev1.Service{}
				strict(t, what, doc, s)
				m.services = append(m.services, s)
			case "policy/v1 PodDisruptionBudget":
				m.pdb = &policyv1.PodDisruptionBudget{}
				strict(t, what, doc, m.pdb)
			case "v1 ConfigMap":
				cm := &corev1.ConfigMap{}
				strict(t, what, doc, cm)
				m.configMaps[cm.Name] = cm
			case "monitoring.coreos.com/v1 ServiceMonitor":
				m.monitor = &serviceMonitor{}
				strict(t, what, doc, m.monitor)
			default:
				t.Fatalf("%s: unexpected %s %s", what, tm.APIVersion, tm.Kind)
			}
		}
	}
	if m.deployment == nil || m.pdb == nil || len(m.services) == 0 || m.monitor == nil || len(m.configMaps) == 0 {
		t.Fatalf("missing manifests: %+v", m)
	}
	if len(k.Images) != 1 || k.Images[0].Name != m.deployment.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("kustomization images %+v do not name the container image", k.Images)
	}
	return m
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		t.Errorf("empty selector selects everything")
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return s.Matches(labels.Set(podLabels))
}

// underMount reports whether path lies in a volume mount (not a subPath
// one, which Kubernetes never updates) and returns its volume name.
func underMount(c corev1.Container, path string) (string, bool) {
	for _, vm := range c.VolumeMounts {
		if vm.SubPath == "" && strings.HasPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			return vm.Name, true
		}
	}
	return "", false
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKubernetes(t *testing.T) {
	m := loadKubernetes(t)
	d := m.deployment
	pod := d.Spec.Template
	spec := pod.Spec
	podLabels := pod.Labels

	t.Run("deployment", func(t *testing.T) {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			t.Errorf("replicas = %v, want 3", d.Spec.Replicas)
		}
		if !selects(t, d.Spec.Selector, podLabels) {
			t.Errorf("deployment selector %v does not match pod labels %v", d.Spec.Selector, podLabels)
		}
		if len(spec.Containers) != 1 {
			t.Fatalf("want one container, got %d", len(spec.Containers))
		}
		c := spec.Containers[0]
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if ports["grpc"] != grpcPort || ports["metrics"] != metricsPort {
			t.Errorf("container ports %v, want grpc %d and metrics %d", ports, grpcPort, metricsPort)
		}
		rp, lp := c.ReadinessProbe, c.LivenessProbe
		if rp == nil || rp.GRPC == nil || rp.GRPC.Port != grpcPort || rp.GRPC.Service == nil || *rp.GRPC.Service != "hiveq.v1.QueryService" {
			t.Errorf("readiness probe %+v, want gRPC %d service hiveq.v1.QueryService", rp, grpcPort)
		}
		if lp == nil || lp.GRPC == nil || lp.GRPC.Port != grpcPort || (lp.GRPC.Service != nil && *lp.GRPC.Service != "") {
			t.Errorf("liveness probe %+v, want gRPC %d service \"\"", lp, grpcPort)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
			if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
				t.Errorf("resources %s: request %v, limit %v", r, req.String(), lim.String())
			}
		}
		psc, sc := spec.SecurityContext, c.SecurityContext
		switch {
		case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
			t.Error("pod securityContext lacks runAsNonRoot")
		case psc.RunAsUser == nil || *psc.RunAsUser == 0:
			t.Error("pod securityContext lacks a non-zero runAsUser")
		case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Error("container root filesystem is not read-only")
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Error("container allows privilege escalation")
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
			t.Error("container keeps capabilities")
		}
		if len(spec.TopologySpreadConstraints) == 0 {
			t.Error("no topology spread constraints")
		}
		for _, tsc := range spec.TopologySpreadConstraints {
			if !selects(t, tsc.LabelSelector, podLabels) {
				t.Errorf("topology spread on %s does not select the pods", tsc.TopologyKey)
			}
		}
		ru := d.Spec.Strategy.RollingUpdate
		if ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() > int(*d.Spec.Replicas)-m.pdb.Spec.MinAvailable.IntValue() {
			t.Errorf("rolling update %+v may go below the PDB's minAvailable", ru)
		}
		for _, vm := range c.VolumeMounts {
			if volume(spec, vm.Name) == nil {
				t.Errorf("mount %s has no volume", vm.Name)
			}
		}
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil {
				t.Errorf("volume %s names ConfigMap %s, which is not in the manifests", v.Name, v.ConfigMap.Name)
			}
		}
	})

	t.Run("args and config", func(t *testing.T) {
		c := spec.Containers[0]
		if len(c.Command) != 0 {
			t.Errorf("command %v overrides the image entrypoint", c.Command)
		}
		if len(c.Args) == 0 || !slices.Contains(hiveqdCommands, c.Args[0]) || c.Args[0] != "serve" {
			t.Fatalf("args %v do not start with the serve subcommand", c.Args)
		}
		// $(VAR) must name a container env var; Kubernetes leaves unknown
		// ones verbatim. The values stand in for the downward API.
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = "value-of-" + e.Name
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				env[e.Name] = map[string]string{"metadata.name": "hiveqd-7d9f-abcde", "status.podIP": "10.1.2.3"}[e.ValueFrom.FieldRef.FieldPath]
			}
		}
		if f := envField(c, "POD_NAME"); f != "metadata.name" {
			t.Errorf("POD_NAME comes from %q, want metadata.name", f)
		}
		var args []string
		for _, a := range c.Args[1:] {
			args = append(args, regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(a, func(ref string) string {
				name := ref[2 : len(ref)-1]
				v, ok := env[name]
				if !ok {
					t.Errorf("arg %q references undefined env %s", a, name)
				}
				return v
			}))
		}
		fs, cfgPath := serveFlags()
		if err := fs.Parse(args); err != nil {
			t.Fatalf("args %v: %v", c.Args, err)
		}
		if fs.NArg() > 0 {
			t.Fatalf("stray args %v", fs.Args())
		}
		if v := fs.Lookup("replica-id").Value.String(); v != "hiveqd-7d9f-abcde" {
			t.Errorf("--replica-id = %q, want the pod name", v)
		}
		if v := fs.Lookup("advertise-addr").Value.String(); v != "10.1.2.3:9090" {
			t.Errorf("--advertise-addr = %q, want POD_IP:9090", v)
		}

		// The config file comes from the ConfigMap mount.
		vol, ok := underMount(c, *cfgPath)
		if !ok {
			t.Fatalf("--config %s is not in a volume mount", *cfgPath)
		}
		v := volume(spec, vol)
		if v == nil || v.ConfigMap == nil {
			t.Fatalf("--config volume %s is not a ConfigMap", vol)
		}
		cm := m.configMaps[v.ConfigMap.Name]
		key := filepath.Base(*cfgPath)
		data, ok := cm.Data[key]
		if !ok {
			t.Fatalf("ConfigMap %s has no key %s", cm.Name, key)
		}
		cfg, err := config.Parse([]byte(data))
		if err != nil {
			t.Fatalf("ConfigMap %s: %v", cm.Name, err)
		}
		if cfg.Coordination != "etcd" || len(cfg.Connectors) == 0 || cfg.Connectors[0].Discovery != "zookeeper" || cfg.Connectors[0].ZooKeeper.Namespace != "hiveserver2" {
			t.Errorf("ConfigMap config is not etcd coordination with a ZooKeeper connector: %+v", cfg)
		}
		if port(t, cfg.Listen) != grpcPort || port(t, cfg.MetricsListen) != metricsPort {
			t.Errorf("listen %s / metrics_listen %s do not match the container ports", cfg.Listen, cfg.MetricsListen)
		}

		// The whole serve configuration, as hiveqd builds it, validates.
		tmp := filepath.Join(t.TempDir(), key)
		if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		full, err := config.FromFlags(fs, tmp, func(string) string { return "" })
		if err != nil {
			t.Fatalf("hiveqd serve %v with the ConfigMap: %v", c.Args[1:], err)
		}
		if full.ReplicaID != "hiveqd-7d9f-abcde" {
			t.Errorf("replica id %q", full.ReplicaID)
		}

		// Every file hiveqd reads is mounted, secrets from Secrets.
		files := map[string]string{"--auth-token-file": fs.Lookup("auth-token-file").Value.String()}
		for i, cn := range full.Connectors {
			files[fmt.Sprintf("connectors[%d].password_file", i)] = cn.PasswordFile
		}
		for what, path := range files {
			if path == "" {
				t.Errorf("%s is not set", what)
				continue
			}
			vol, ok := underMount(c, path)
			if !ok {
				t.Errorf("%s %s is not under a (non-subPath) volume mount", what, path)
				continue
			}
			if v := volume(spec, vol); v == nil || v.Secret == nil {
				t.Errorf("%s is on volume %s, which is not a Secret", what, vol)
			}
		}

		// Shutdown: the preStop pause plus hiveqd's own grace must fit.
		var pause time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			pause = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		if need := pause + full.ShutdownGrace + 5*time.Second; grace < need {
			t.Errorf("terminationGracePeriodSeconds %v < preStop %v + shutdown_grace %v + 5s", grace, pause, full.ShutdownGrace)
		}
	})

	t.Run("services", func(t *testing.T) {
		c := spec.Containers[0]
		named := map[string]int32{}
		for _, p := range c.Ports {
			named[p.Name] = p.ContainerPort
		}
		for _, s := range m.services {
			if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) {
				t.Errorf("service %s selector %v does not match pod labels %v", s.Name, s.Spec.Selector, podLabels)
			}
			for _, p := range s.Spec.Ports {
				target := p.TargetPort.IntVal
				if p.TargetPort.StrVal != "" {
					target = named[p.TargetPort.StrVal]
				}
				if target == 0 || target != p.Port {
					t.Errorf("service %s port %s: %d -> %v does not reach a container port", s.Name, p.Name, p.Port, p.TargetPort.String())
				}
			}
		}
	})

	t.Run("pdb", func(t *testing.T) {
		p := m.pdb.Spec
		if p.MinAvailable == nil || p.MinAvailable.IntValue() != 2 || p.MaxUnavailable != nil {
			t.Errorf("PDB minAvailable %v maxUnavailable %v, want minAvailable 2", p.MinAvailable, p.MaxUnavailable)
		}
		if !selects(t, p.Selector, podLabels) {
			t.Errorf("PDB selector %v does not match pod labels %v", p.Selector, podLabels)
		}
	})

	t.Run("servicemonitor", func(t *testing.T) {
		sm := m.monitor
		var scraped []*corev1.Service
		for _, s := range m.services {
			if selects(t, &sm.Spec.Selector, s.Labels) {
				scraped = append(scraped, s)
			}
		}
		if len(scraped) != 1 {
			t.Fatalf("ServiceMonitor selects %d services, want exactly one (else targets are scraped twice)", len(scraped))
		}
		if len(sm.Spec.Endpoints) == 0 {
			t.Fatal("no endpoints")
		}
		for _, e := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(scraped[0].Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port && p.Port == metricsPort }) {
				t.Errorf("endpoint port %q is not service %s's metrics port", e.Port, scraped[0].Name)
			}
			if e.Path != "" && e.Path != "/metrics" {
				t.Errorf("path %q", e.Path)
			}
			for _, d := range []string{e.Interval, e.ScrapeTimeout} {
				if _, err := time.ParseDuration(d); d != "" && err != nil {
					t.Errorf("duration %q: %v", d, err)
				}
			}
		}
	})
}

func envField(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

// --- docker compose ---

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]struct{}       `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	PullPolicy  string            `yaml:"pull_policy"`
	Build       *composeBuild     `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
	Restart     string   `yaml:"restart"`
	ReadOnly    bool     `yaml:"read_only"`
	User        string   `yaml:"user"`
	CapDrop     []string `yaml:"cap_drop"`
	SecurityOpt []string `yaml:"security_opt"`
	Tmpfs       []string `yaml:"tmpfs"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
	Target     string `yaml:"target"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data := read(t, "docker-compose.yml")
	// x-* keys hold the anchors services merge; drop them, then decode the
	// rest strictly.
	var top map[string]yamlv3.Node
	if err := yamlv3.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	for k := range top {
		if !strings.HasPrefix(k, "x-") && !slices.Contains([]string{"name", "services", "volumes"}, k) {
			t.Errorf("unexpected top-level key %q", k)
		}
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var raw struct {
		composeFile `yaml:",inline"`
		Ext         map[string]any `yaml:",inline"`
	}
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return raw.composeFile
}

// hs2simFlags are the flags cmd/hs2sim defines, read from its source: calls
// like fs.String("zk", ...) and fs.StringVar(&v, "listen", ...).
func hs2simFlags(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("../cmd/hs2sim/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/hs2sim sources: %v", err)
	}
	flags := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			idx := -1
			switch sel.Sel.Name {
			case "String", "Int", "Int64", "Uint", "Bool", "Duration", "Float64", "Func", "BoolFunc":
				idx = 0
			case "StringVar", "IntVar", "Int64Var", "UintVar", "BoolVar", "DurationVar", "Float64Var", "Var", "TextVar":
				idx = 1
			}
			if idx >= 0 && len(call.Args) > idx {
				if lit, ok := call.Args[idx].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if name, err := strconv.Unquote(lit.Value); err == nil {
						flags[name] = true
					}
				}
			}
			return true
		})
	}
	if !flags["listen"] || !flags["zk"] {
		t.Fatalf("hs2sim flags not found in its source: %v", flags)
	}
	return flags
}

// flagArgs returns the flag names in args and the value after each.
func flagArgs(args []string) (map[string]string, []string) {
	vals := map[string]string{}
	var order []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, v, hasEq := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasEq && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			v = args[i+1]
			i++
		}
		vals[name] = v
		order = append(order, name)
	}
	return vals, order
}

func TestCompose(t *testing.T) {
	cf := loadCompose(t)
	stages := containerStages(t)
	for _, want := range []string{"etcd", "zookeeper", "hs2-a", "hs2-b", "hiveqd-1", "hiveqd-2", "hiveqd-3"} {
		if _, ok := cf.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	simFlags := hs2simFlags(t)
	env := knownEnv()
	replicaIDs := map[string]bool{}
	var hs2, hiveqd int
	for name, s := range cf.Services {
		t.Run(name, func(t *testing.T) {
			if s.Image == "" && s.Build == nil {
				t.Fatal("neither image nor build")
			}
			if s.Build != nil {
				t.Error("build: compose runs the images make image builds (deploy/Containerfile from prebuilt binaries)")
			}
			if strings.HasPrefix(s.Image, "localhost/") && !slices.Contains(stages, ourImage(s.Image)) {
				t.Errorf("image %s is not a Containerfile target %v", s.Image, stages)
			}
			for dep := range s.DependsOn {
				if _, ok := cf.Services[dep]; !ok {
					t.Errorf("depends on unknown service %s", dep)
				}
				if c := s.DependsOn[dep].Condition; c == "service_healthy" && cf.Services[dep].Healthcheck == nil {
					t.Errorf("waits for %s to be healthy, but it has no healthcheck", dep)
				}
			}
			for _, v := range s.Volumes {
				src, _, _ := strings.Cut(v, ":")
				if _, ok := cf.Volumes[src]; !ok {
					t.Errorf("volume %s is not declared", src)
				}
			}
			switch {
			case ourImage(s.Image) == "hs2sim":
				hs2++
				vals, order := flagArgs(s.Command)
				for _, f := range order {
					if !simFlags[f] {
						t.Errorf("hs2sim has no flag --%s", f)
					}
				}
				if vals["advertise-host"] != name {
					t.Errorf("--advertise-host %q, want the service name %s", vals["advertise-host"], name)
				}
				if host, _, _ := net.SplitHostPort(vals["zk"]); host != "zookeeper" {
					t.Errorf("--zk %q does not point at the zookeeper service", vals["zk"])
				}
				if port(t, vals["listen"]) != 10000 {
					t.Errorf("--listen %q", vals["listen"])
				}
			case ourImage(s.Image) == "hiveqd":
				hiveqd++
				if len(s.Command) == 0 || !slices.Contains(hiveqdCommands, s.Command[0]) {
					t.Fatalf("command %v does not start with a hiveqd subcommand %v", s.Command, hiveqdCommands)
				}
				if s.Command[0] != "serve" {
					t.Fatalf("command %v: replicas run serve", s.Command)
				}
				for k := range s.Environment {
					if !env[k] {
						t.Errorf("environment %s is not a hiveqd setting", k)
					}
				}
				fs, cfgPath := serveFlags()
				if err := fs.Parse(s.Command[1:]); err != nil || fs.NArg() > 0 {
					t.Fatalf("hiveqd %v: %v %v", s.Command, err, fs.Args())
				}
				cfg, err := config.FromFlags(fs, *cfgPath, func(k string) string { return s.Environment[k] })
				if err != nil {
					t.Fatalf("hiveqd %v with its environment: %v", s.Command, err)
				}
				if cfg.Coordination != "etcd" || cfg.Etcd.Endpoints[0] != "etcd:2379" || cfg.Connectors[0].ZooKeeper.Servers[0] != "zookeeper:2181" {
					t.Errorf("not wired to the compose etcd and ZooKeeper: %+v", cfg)
				}
				if host, p, _ := net.SplitHostPort(cfg.AdvertiseAddr); host != name || p != strconv.Itoa(port(t, cfg.Listen)) {
					t.Errorf("advertise addr %s, want %s:<listen port>", cfg.AdvertiseAddr, name)
				}
				if replicaIDs[cfg.ReplicaID] {
					t.Errorf("replica id %s repeated", cfg.ReplicaID)
				}
				replicaIDs[cfg.ReplicaID] = true
				for _, dep := range []string{"etcd", "zookeeper"} {
					if _, ok := s.DependsOn[dep]; !ok {
						t.Errorf("does not wait for %s", dep)
					}
				}
			}
			if ourImage(s.Image) != "" && (s.User == "" || strings.HasPrefix(s.User, "0") || !s.ReadOnly) {
				t.Errorf("our images should run read-only as a non-root user (user %q, read_only %v)", s.User, s.ReadOnly)
			}
		})
	}
	if hs2 != 2 || hiveqd != 3 {
		t.Errorf("%d HS2 simulators and %d hiveqd replicas, want 2 and 3", hs2, hiveqd)
	}
}

// --- Containerfile ---

// ourImage is the Containerfile target a compose image names
// (localhost/hiveqd:dev -> hiveqd), "" for other images.
func ourImage(image string) string {
	name, ok := strings.CutPrefix(image, "localhost/")
	if !ok {
		return ""
	}
	name, _, _ = strings.Cut(name, ":")
	return name
}

// containerStages returns the Containerfile's stage names, checking each:
// scratch, the CA certificates and /etc/passwd, the binary make image
// builds, a numeric non-root USER and an exec-form ENTRYPOINT.
func containerStages(t *testing.T) []string {
	t.Helper()
	data := string(read(t, "Containerfile"))
	data = regexp.MustCompile(`\\\n\s*`).ReplaceAllString(data, " ")
	type stage struct {
		name, base string
		lines      []string
	}
	var stages []*stage
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			st := &stage{base: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				st.name = f[3]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("instruction before FROM: %s", line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	script := string(read(t, filepath.Join("..", "scripts", "image.sh")))
	build := regexp.MustCompile(`(?m)^CGO_ENABLED=0 go build .*$`).FindString(script)
	var names []string
	for _, st := range stages {
		names = append(names, st.name)
		joined := strings.Join(st.lines, "\n")
		if st.base != "scratch" {
			t.Errorf("stage %s is FROM %s, want scratch (no base image can be pulled)", st.name, st.base)
		}
		for _, want := range []string{"COPY passwd group /etc/", "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
			"COPY " + st.name + " /usr/local/bin/" + st.name} {
			if !strings.Contains(joined, want) {
				t.Errorf("stage %s lacks %q", st.name, want)
			}
		}
		if !strings.Contains(build, "./cmd/"+st.name) {
			t.Errorf("scripts/image.sh does not build ./cmd/%s with CGO_ENABLED=0: %q", st.name, build)
		}
		user := regexp.MustCompile(`(?m)^USER\s+(\d+)(:(\d+))?$`).FindStringSubmatch(joined)
		if user == nil || user[1] != "65532" {
			t.Errorf("stage %s lacks USER 65532", st.name)
		}
		if !regexp.MustCompile(`(?m)^ENTRYPOINT\s+\["/usr/local/bin/` + regexp.QuoteMeta(st.name) + `"\]$`).MatchString(joined) {
			t.Errorf("stage %s lacks an exec-form ENTRYPOINT /usr/local/bin/%s", st.name, st.name)
		}
	}
	if last := stages[len(stages)-1]; last.name != "hiveqd" {
		t.Errorf("the default (last) stage is %s, want hiveqd", last.name)
	}
	passwd := string(read(t, filepath.Join("image", "passwd")))
	if !strings.Contains(passwd, ":x:65532:65532:") {
		t.Errorf("image/passwd has no user 65532")
	}
	return names
}

func TestContainerfile(t *testing.T) {
	if got := containerStages(t); !slices.Contains(got, "hs2sim") || !slices.Contains(got, "hiveqd") {
		t.Fatalf("stages %v", got)
	}
}
