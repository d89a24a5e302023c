package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/hiveqd/hiveqd/config"
)

const chartDir = "helm/hiveqd"

// tool finds a binary in the repository's .tools/bin or on PATH.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", ".tools", "bin", name)); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (%s)", name, install)
	}
	return p
}

func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(tool(t, "helm", "scripts/install-deps.sh: go install helm.sh/helm/v3/cmd/helm@v3.22.0"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, out)
	}
	return out
}

// ruleGroups is the Prometheus rule-file format, strictly.
type ruleGroups struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            ruleGroups        `json:"spec"`
}

type chartObjects struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	config     *corev1.ConfigMap
	pdb        *policyv1.PodDisruptionBudget
	monitor    *serviceMonitor
	rule       *prometheusRule
}

func renderChart(t *testing.T, set ...string) chartObjects {
	t.Helper()
	args := []string{"template", "rel", chartDir}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	var objs chartObjects
	for i, doc := range splitDocs(helm(t, args...)) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		what := meta.Kind + " (document " + string(rune('0'+i)) + ")"
		switch meta.Kind {
		case "Deployment":
			objs.deployment = &appsv1.Deployment{}
			strict(t, what, doc, objs.deployment)
		case "Service":
			objs.service = &corev1.Service{}
			strict(t, what, doc, objs.service)
		case "ConfigMap":
			objs.config = &corev1.ConfigMap{}
			strict(t, what, doc, objs.config)
		case "PodDisruptionBudget":
			objs.pdb = &policyv1.PodDisruptionBudget{}
			strict(t, what, doc, objs.pdb)
		case "ServiceMonitor":
			objs.monitor = &serviceMonitor{}
			strict(t, what, doc, objs.monitor)
		case "PrometheusRule":
			objs.rule = &prometheusRule{}
			strict(t, what, doc, objs.rule)
		default:
			t.Fatalf("unexpected kind %q:\n%s", meta.Kind, doc)
		}
	}
	return objs
}

func TestHelmLint(t *testing.T) {
	helm(t, "lint", "--strict", chartDir)
	helm(t, "lint", "--strict", chartDir, "--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,tls.enabled=true,tls.clientCA=true,flightsql.enabled=true,hs2Secret.name=hs2")
}

func TestHelmTemplate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
	}{
		{"defaults", nil},
		{"everything", []string{"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "tls.enabled=true", "tls.clientCA=true",
			"flightsql.enabled=true", "hs2Secret.name=hs2", "replicas=5", "podDisruptionBudget.minAvailable=3", "auth.admins={ops}"}},
		{"minimal", []string{"podDisruptionBudget.enabled=false", "console.enabled=false", "auth.existingSecret="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := renderChart(t, tc.set...)
			checkChart(t, o, tc.set)
		})
	}
}

func checkChart(t *testing.T, o chartObjects, set []string) {
	has := func(s string) bool { return slices.Contains(set, s) }
	if o.deployment == nil || o.service == nil || o.config == nil {
		t.Fatalf("missing Deployment, Service or ConfigMap: %+v", o)
	}
	pod := o.deployment.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(o.deployment.Spec.Selector)
	if err != nil || !sel.Matches(labelsSet(pod.Labels)) {
		t.Errorf("deployment selector does not select its pods")
	}
	for k, v := range o.service.Spec.Selector {
		if pod.Labels[k] != v {
			t.Errorf("service selects %s=%s, pods have %q", k, v, pod.Labels[k])
		}
	}
	c := pod.Spec.Containers[0]
	for _, sp := range o.service.Spec.Ports {
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == sp.TargetPort.StrVal }) {
			t.Errorf("service port %s targets %q, which the container does not name", sp.Name, sp.TargetPort.StrVal)
		}
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem not read-only")
	}
	if ps := pod.Spec.SecurityContext; ps == nil || ps.RunAsUser == nil || *ps.RunAsUser != 65532 {
		t.Error("not run as 65532")
	}
	// The config file and the arguments are what hiveqd serve accepts.
	cfg, err := config.Parse([]byte(o.config.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("config.yaml: %v\n%s", err, o.config.Data["config.yaml"])
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if cfg.Coordination != "etcd" || len(cfg.Etcd.Endpoints) != 3 || len(cfg.Connectors) != 1 || len(cfg.Connectors[0].ZooKeeper.Servers) != 3 {
		t.Errorf("config not wired to the values' etcd and ZooKeeper: %+v", cfg)
	}
	args := c.Args
	if has("flightsql.enabled=true") {
		// --flightsql-listen belongs to the Flight SQL front-end.
		args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, "--flightsql-listen=") })
		if len(args) == len(c.Args) {
			t.Error("flightsql.enabled adds no --flightsql-listen")
		}
	}
	if args[0] != "serve" {
		t.Fatalf("args %v", args)
	}
	fs, _ := serveFlags()
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		t.Fatalf("hiveqd %v: %v", args, err)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
		if volume(pod.Spec, m.Name) == nil {
			t.Errorf("mount %s has no volume", m.Name)
		}
	}
	for _, f := range []string{cfg.Security.AuthTokenFile, cfg.Security.TLSCert, cfg.Security.TLSClientCA, cfg.Connectors[0].PasswordFile} {
		if f == "" {
			continue
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(f, m.MountPath+"/") }) {
			t.Errorf("%s is under no mount", f)
		}
	}
	if has("tls.enabled=true") != (cfg.Security.TLSCert != "") {
		t.Errorf("tls_cert %q with set %v", cfg.Security.TLSCert, set)
	}
	if has("podDisruptionBudget.enabled=false") != (o.pdb == nil) {
		t.Errorf("pdb %v with set %v", o.pdb != nil, set)
	}
	if o.pdb != nil {
		if sel, _ := metav1.LabelSelectorAsSelector(o.pdb.Spec.Selector); !sel.Matches(labelsSet(pod.Labels)) {
			t.Error("the PodDisruptionBudget does not select the pods")
		}
		if o.pdb.Spec.MinAvailable.IntValue() >= int(*o.deployment.Spec.Replicas) {
			t.Errorf("minAvailable %v leaves no disruption for %d replicas", o.pdb.Spec.MinAvailable, *o.deployment.Spec.Replicas)
		}
	}
	if has("serviceMonitor.enabled=true") != (o.monitor != nil) || has("prometheusRule.enabled=true") != (o.rule != nil) {
		t.Errorf("monitor %v rule %v with set %v", o.monitor != nil, o.rule != nil, set)
	}
	if o.monitor != nil && o.monitor.Spec.Endpoints[0].Port != "metrics" {
		t.Errorf("ServiceMonitor scrapes port %q", o.monitor.Spec.Endpoints[0].Port)
	}
	if o.rule != nil {
		var file ruleGroups
		strict(t, "files/prometheus-rules.yaml", read(t, filepath.Join(chartDir, "files", "prometheus-rules.yaml")), &file)
		a, _ := json.Marshal(file)
		b, _ := json.Marshal(o.rule.Spec)
		if string(a) != string(b) {
			t.Errorf("the PrometheusRule differs from files/prometheus-rules.yaml")
		}
	}
}

func labelsSet(m map[string]string) labels.Set { return labels.Set(m) }

// --- alerts and dashboard ---

const rulesFile = chartDir + "/files/prometheus-rules.yaml"

func TestPromtoolRules(t *testing.T) {
	promtool := tool(t, "promtool", "Debian prometheus; scripts/install-deps.sh installs it")
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", "monitoring/rules_test.yaml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
		t.Logf("promtool %v:\n%s", args, out)
	}
}

// exportedMetrics are the metric names hiveqd registers, read from the
// metrics package's source; histograms add their series suffixes. The
// live check (Prometheus scraping a running replica) is in
// tests/monitoring.
func exportedMetrics(t *testing.T) map[string]bool {
	names := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join("..", "metrics", "*.go"))
	re := regexp.MustCompile(`(?:desc\(|Name:\s*)"([a-z0-9_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(string(read(t, f)), -1) {
			n := "hiveqd_" + m[1]
			names[n] = true
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[n+s] = true
			}
		}
	}
	if len(names) < 40 {
		t.Fatalf("found only %d metric names in metrics/", len(names))
	}
	return names
}

var metricRef = regexp.MustCompile(`\bhiveqd_[a-z0-9_]+`)

func TestAlertsAndDashboardUseExportedMetrics(t *testing.T) {
	names := exportedMetrics(t)
	var rules ruleGroups
	strict(t, rulesFile, read(t, rulesFile), &rules)
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			for _, m := range metricRef.FindAllString(r.Expr, -1) {
				if !names[m] {
					t.Errorf("alert %s uses %s, which hiveqd does not export", r.Alert, m)
				}
			}
		}
	}
	for _, want := range []string{"HiveqdNoHS2Available", "HiveqdNoLeader", "HiveqdFailoverRate", "HiveqdStaleView", "HiveqdQueryErrorRate", "HiveqdQueryPoolNearLimit"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alert %s missing", want)
		}
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data := read(t, "monitoring/grafana-dashboard.json")
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricRef.FindAllString(tg.Expr, -1) {
				used[m] = true
				if !names[m] {
					t.Errorf("panel %q uses %s, which hiveqd does not export", p.Title, m)
				}
			}
		}
	}
	// The dashboard shows every signal the alerts watch.
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range metricRef.FindAllString(r.Expr, -1) {
				if !used[m] {
					t.Errorf("alert %s watches %s, which no dashboard panel shows", r.Alert, m)
				}
			}
		}
	}
}
