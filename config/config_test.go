package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRejectsUnknownKeys(t *testing.T) {
	_, err := Parse([]byte("listen: 127.0.0.1:1\nlisten_typo: x\n"))
	if err == nil || !strings.Contains(err.Error(), "listen_typo") {
		t.Fatalf("want unknown-key error naming the key, got %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error; none = valid
	}{
		{"static ok", "connectors: [{name: hive, static: ['127.0.0.1:10000']}]", nil},
		{"zk ok", "connectors: [{name: hive, zookeeper: {servers: ['127.0.0.1:2181']}}]", nil},
		{"no connectors", "listen: 127.0.0.1:9090", []string{"connectors: at least one"}},
		{"bad everything", `
listen: nope
coordination: raft
connectors:
  - {name: a, discovery: dns}
  - {name: a, static: ['h:99999'], transport: udp, auth: gssapi}
default_connector: zz
limits: {max_batch_bytes: 10}
log: {level: loud}`, []string{"listen:", "coordination:", "discovery:", "repeated", "bad port", "transport:", "auth:", "default_connector:", "max_batch_bytes", "log.level"}},
		{"tracing ok", "connectors: [{name: hive, static: ['127.0.0.1:1']}]\ntracing: {exporter: otlp, endpoint: 'http://127.0.0.1:4317', sample_ratio: 0.25}", nil},
		{"bad tracing", "connectors: [{name: hive, static: ['127.0.0.1:1']}]\ntracing: {exporter: jaeger, endpoint: '127.0.0.1:4317', sample_ratio: 2}",
			[]string{"tracing.exporter", "tracing.endpoint", "tracing.sample_ratio"}},
		{"re-run and stall settings", "connectors: [{name: hive, static: ['127.0.0.1:1'], rerun_reads: false, stall_timeout: 20s}]", nil},
		{"stall bound below the long poll", "connectors: [{name: hive, static: ['127.0.0.1:1'], stall_timeout: 3s}]", []string{"stall_timeout"}},
		{"etcd needs endpoints", "coordination: etcd\nconnectors: [{name: hive, static: ['127.0.0.1:1']}]", []string{"etcd.endpoints"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Finish()
			err = cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want errors %v, got none", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "listen: 127.0.0.1:1111\ncluster: fromfile\nconnectors: [{name: hive, static: ['127.0.0.1:10000']}]\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	Register(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:3333", "--hs2", "127.0.0.1:1,127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HIVEQD_LISTEN": "127.0.0.1:2222", "HIVEQD_CLUSTER": "fromenv"}
	cfg, err := FromFlags(fs, path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:3333" || cfg.Cluster != "fromenv" {
		t.Fatalf("precedence wrong: listen=%s cluster=%s", cfg.Listen, cfg.Cluster)
	}
	if got := cfg.Connectors[0].Static; len(got) != 2 || got[1] != "127.0.0.1:2" || len(cfg.Connectors) != 1 {
		t.Fatalf("--hs2 did not override the default connector: %+v", cfg.Connectors)
	}
	if cfg.Connectors[0].Probe.Interval == 0 || cfg.DefaultConnector != "hive" {
		t.Fatalf("defaults not filled: %+v", cfg)
	}
}

func TestBadFlagValue(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	Register(fs)
	_ = fs.Parse([]string{"--lease-ttl", "soon"})
	if _, err := FromFlags(fs, "", func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "--lease-ttl") {
		t.Fatalf("want error naming --lease-ttl, got %v", err)
	}
}

func TestTracingSettings(t *testing.T) {
	cfg := Default()
	if cfg.Tracing.Exporter != "none" || cfg.Tracing.SampleRatio != 1 {
		t.Fatalf("tracing defaults: %+v", cfg.Tracing)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	Register(fs)
	if err := fs.Parse([]string{"--hs2", "127.0.0.1:1", "--trace-exporter", "otlp", "--trace-sample-ratio", "0.5"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HIVEQD_TRACE_ENDPOINT": "https://collector:4317", "HIVEQD_TRACE_EXPORTER": "stdout"}
	cfg, err := FromFlags(fs, "", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if want := (Tracing{Exporter: "otlp", Endpoint: "https://collector:4317", SampleRatio: 0.5}); cfg.Tracing != want {
		t.Fatalf("tracing %+v, want %+v", cfg.Tracing, want)
	}
}

func TestKerberosSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	yaml := `kerberos: {principal: hiveqd/gw@EXAMPLE.COM, keytab: /etc/hiveqd.keytab}
connectors:
- name: hive
  discovery: zookeeper-ha
  zookeeper: {servers: ['zk:2181'], namespace: hs2ha-sasl}
  auth: kerberos
  principal: hive/_HOST@EXAMPLE.COM
  sasl_qop: auth-int
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	Register(fs)
	if err := fs.Parse([]string{"--hs2-sasl-qop", "auth-conf", "--krb5-conf", "/k/krb5.conf"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HIVEQD_KERBEROS_KEYTAB": "/env/hiveqd.keytab", "HIVEQD_HS2_PRINCIPAL": "hive/_HOST@OTHER.COM"}
	cfg, err := FromFlags(fs, path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Kerberos{Principal: "hiveqd/gw@EXAMPLE.COM", Keytab: "/env/hiveqd.keytab", Krb5Conf: "/k/krb5.conf"}
	if cfg.Kerberos != want {
		t.Fatalf("kerberos %+v, want %+v", cfg.Kerberos, want)
	}
	c := cfg.Connectors[0]
	if c.Auth != "kerberos" || c.Principal != "hive/_HOST@OTHER.COM" || c.SASLQOP != "auth-conf" {
		t.Fatalf("connector %+v", c)
	}

	bad := Default()
	bad.Connectors = []Connector{{Name: "h", Static: []string{"h:1"}, Auth: "kerberos", SASLQOP: "privacy", Principal: "hive/_HOST@A@B"}}
	bad.Kerberos.Keytab = "/x.keytab"
	bad.Finish()
	err = bad.Validate()
	for _, w := range []string{"sasl_qop", "principal", "kerberos.principal: is required with kerberos.keytab"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}
