// Package monitoring_test starts Debian's Prometheus on a loopback port
// with hiveqd's alert rules, has it scrape a running replica (etcd
// coordination, an HS2 simulator), and checks that every metric the rules
// use exists and that the rules evaluate without error.
package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/replica"
)

func rulesFile(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	p, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "helm", "hiveqd", "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func startReplica(t *testing.T) string {
	ctx, cancel := context.WithCancel(context.Background())
	etcd := testenv.StartEtcd(t)
	sim, err := hs2sim.Start(ctx, hs2sim.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.ReplicaID = "prom-r1"
	cfg.Cluster = "prom"
	cfg.Coordination = "etcd"
	cfg.Etcd.Endpoints = etcd.Endpoints()
	cfg.Connectors = []config.Connector{{Name: "hive", Discovery: "static", Static: []string{sim.Addr()}}}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	mlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replica.New(ctx, cfg, replica.Options{MetricsListener: mlis})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rep.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		err := <-done
		rep.Shutdown()
		if err != nil {
			t.Errorf("replica: %v", err)
		}
	})
	return mlis.Addr().String()
}

func startPrometheus(t *testing.T, target string) string {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (Debian prometheus; scripts/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: hiveqd
    static_configs: [{targets: [%q]}]
`, rulesFile(t), target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	return "http://" + addr
}

func api(base, path string, params url.Values, into any) error {
	resp, err := http.Get(base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func TestPrometheusScrapesRuleMetrics(t *testing.T) {
	target := startReplica(t)
	prom := startPrometheus(t, target)
	rules, err := os.ReadFile(rulesFile(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bhiveqd_[a-z0-9_]+`).FindAllString(string(rules), -1) {
		want[m] = true
	}
	if len(want) < 6 {
		t.Fatalf("rules name only %v", want)
	}
	var missing []string
	testenv.Eventually(t, 2*time.Minute, func() error {
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := api(prom, "/api/v1/query", url.Values{"query": {`count by (__name__) ({__name__=~"hiveqd_.+", job="hiveqd"})`}}, &r); err != nil {
			return err
		}
		got := map[string]bool{}
		for _, s := range r.Data.Result {
			got[s.Metric["__name__"]] = true
		}
		missing = missing[:0]
		for m := range want {
			if !got[m] {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("Prometheus has no %v yet (has %d hiveqd series names)", missing, len(got))
		}
		return nil
	})
	t.Logf("Prometheus scraped all %d metrics the rules use", len(want))
	// Every rule evaluates cleanly against the real series.
	testenv.Eventually(t, time.Minute, func() error {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name       string `json:"name"`
						Health     string `json:"health"`
						LastError  string `json:"lastError"`
						State      string `json:"state"`
						Evaluation string `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := api(prom, "/api/v1/rules", nil, &r); err != nil {
			return err
		}
		n := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if rule.Health != "ok" {
					return fmt.Errorf("rule %s: health %q %s", rule.Name, rule.Health, rule.LastError)
				}
				if rule.State != "inactive" {
					return fmt.Errorf("rule %s is %s on a healthy replica", rule.Name, rule.State)
				}
				n++
			}
		}
		if n != 6 {
			return fmt.Errorf("%d rules loaded, want 6", n)
		}
		return nil
	})
}
