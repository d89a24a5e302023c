// Package config is hiveqd's configuration: one YAML file, overridden by
// HIVEQD_* environment variables, overridden by command-line flags. Unknown
// YAML keys are errors, and Validate names every bad field at start-up.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole file. Field comments are the reference; README.md
// repeats them with an example.
type Config struct {
	// Listen is the gRPC address.
	Listen string `yaml:"listen"`
	// MetricsListen serves Prometheus /metrics over HTTP; empty disables it.
	MetricsListen string `yaml:"metrics_listen"`
	// AdminListen serves the web console (/console/) over HTTP, with the
	// gRPC port's TLS and authentication; empty disables it.
	AdminListen string `yaml:"admin_listen"`
	// ReplicaID names this replica; default: the host name.
	ReplicaID string `yaml:"replica_id"`
	// AdvertiseAddr is the gRPC address other replicas use to reach this
	// one (forwarded admin calls); default: Listen.
	AdvertiseAddr string `yaml:"advertise_addr"`
	// Cluster scopes the etcd keys: /hiveqd/<cluster>/...
	Cluster string `yaml:"cluster"`
	// Coordination is "standalone" (this process discovers and chooses) or
	// "etcd" (replicas elect a leader that chooses for all).
	Coordination string `yaml:"coordination"`
	Etcd         Etcd   `yaml:"etcd"`
	// DefaultConnector serves requests that name no connector; default: the
	// first connector.
	DefaultConnector string      `yaml:"default_connector"`
	Connectors       []Connector `yaml:"connectors"`
	Limits           Limits      `yaml:"limits"`
	Security         Security    `yaml:"security"`
	// Kerberos is hiveqd's own Kerberos identity, for connectors with
	// auth: kerberos.
	Kerberos Kerberos `yaml:"kerberos"`
	// ShutdownGrace is how long running streams may finish after SIGTERM.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	Log           Log           `yaml:"log"`
	// Tracing exports OpenTelemetry spans; off by default.
	Tracing Tracing `yaml:"tracing"`
	// FlightSQL is the Arrow Flight SQL front-end; off by default.
	FlightSQL FlightSQL `yaml:"flightsql"`
}

// FlightSQL configures the Arrow Flight SQL port. It serves the same
// engine as the gRPC port, with the same TLS, mTLS and tokens (security).
type FlightSQL struct {
	// Listen is the Flight SQL gRPC address; empty: off.
	Listen string `yaml:"listen"`
}

// Tracing configures OpenTelemetry tracing: a span per gRPC call (W3C
// trace context is taken from callers and passed to the leader on
// forwarded calls) with a child span per HiveServer2 call.
type Tracing struct {
	// Exporter is "none" (default), "stdout" (JSON spans on standard
	// output, for debugging) or "otlp" (OTLP over gRPC to Endpoint).
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP collector as a URL: http://host:4317 is
	// plaintext, https://host:4317 TLS with the system roots. Empty: the
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT
	// variables, else https://localhost:4317.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of new traces sampled (0..1, default 1);
	// calls that arrive with a trace context follow the caller's decision.
	SampleRatio float64 `yaml:"sample_ratio"`
}

// Kerberos is hiveqd's identity toward Kerberized HiveServer2. With a
// keytab hiveqd logs in itself and again before tickets expire; without
// one it uses the ticket cache named by KRB5CCNAME (kept fresh by kinit or
// k5start).
type Kerberos struct {
	// Principal is hiveqd's principal, e.g. hiveqd/gw.example.com@EXAMPLE.COM.
	Principal string `yaml:"principal"`
	// Keytab holds the principal's keys.
	Keytab string `yaml:"keytab"`
	// Krb5Conf is krb5.conf; default KRB5_CONFIG, else /etc/krb5.conf.
	Krb5Conf string `yaml:"krb5_conf"`
}

// Etcd is how replicas reach etcd.
type Etcd struct {
	Endpoints    []string      `yaml:"endpoints"`
	Username     string        `yaml:"username"`
	PasswordFile string        `yaml:"password_file"`
	TLS          TLSFiles      `yaml:"tls"`
	LeaseTTL     time.Duration `yaml:"lease_ttl"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
}

// TLSFiles are PEM files; CAFile alone verifies the server, Cert+Key add a
// client certificate.
type TLSFiles struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `yaml:"server_name"`
}

// Enabled reports whether any TLS setting is present.
func (t TLSFiles) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// Connector is one HiveServer2 cluster that requests can name.
type Connector struct {
	Name string `yaml:"name"`
	// Discovery is "static", "zookeeper" or "zookeeper-ha".
	Discovery string `yaml:"discovery"`
	// Static lists host:port; the first healthy one serves.
	Static    []string  `yaml:"static"`
	ZooKeeper ZooKeeper `yaml:"zookeeper"`
	// Transport, HTTPPath, Auth and TLS override what the ZooKeeper znode
	// publishes; for static servers they are the settings (defaults binary,
	// cliservice, NONE, no TLS).
	Transport string `yaml:"transport"`
	HTTPPath  string `yaml:"http_path"`
	Auth      string `yaml:"auth"`
	TLS       *bool  `yaml:"tls"`
	// Principal is HS2's Kerberos principal, hive/_HOST@REALM (_HOST
	// becomes each server's host name); default: what the znode publishes.
	Principal string `yaml:"principal"`
	// HTTPPrincipal is the SPNEGO principal on the HTTP transport, e.g.
	// HTTP/_HOST@REALM; default: Principal.
	HTTPPrincipal string `yaml:"http_principal"`
	// SASLQOP is the Kerberos SASL protection: auth, auth-int or
	// auth-conf; default: the server's hive.server2.thrift.sasl.qop.
	SASLQOP string `yaml:"sasl_qop"`
	// HS2TLS verifies HS2's certificate when TLS is on.
	HS2TLS TLSFiles `yaml:"hs2_tls"`
	// User and PasswordFile are hiveqd's own HS2 credentials.
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password_file"`
	// Impersonation runs each query as the caller
	// (hive.server2.proxy.user).
	Impersonation bool   `yaml:"impersonation"`
	Policy        string `yaml:"policy"` // oldest | random
	Probe         Probe  `yaml:"probe"`
	Pool          Pool   `yaml:"pool"`
	// RerunReads runs a read again on the new server when its server is
	// lost before it sent the client anything (default true).
	RerunReads *bool `yaml:"rerun_reads"`
	// StallTimeout ends a running query whose server does not answer one of
	// its status polls or fetches within it (default 15s; more than HS2's
	// 5s long poll, so that a GC pause does not kill queries).
	StallTimeout time.Duration `yaml:"stall_timeout"`
}

// ZooKeeper is where HS2 registers.
type ZooKeeper struct {
	Servers        []string      `yaml:"servers"`
	Namespace      string        `yaml:"namespace"`
	Chroot         string        `yaml:"chroot"`
	DigestFile     string        `yaml:"digest_file"` // file holding user:password
	TLS            TLSFiles      `yaml:"tls"`
	SessionTimeout time.Duration `yaml:"session_timeout"`
}

// Probe is the health check of the chosen HS2.
type Probe struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	Failures int           `yaml:"failures"`
	Cooldown time.Duration `yaml:"cooldown"`
}

// Pool bounds HS2 sessions per server.
type Pool struct {
	MaxSessions   int           `yaml:"max_sessions"`
	MaxIdlePerKey int           `yaml:"max_idle_per_key"`
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
	ValidateAfter time.Duration `yaml:"validate_after"`
}

// Security is TLS and authentication on the gRPC port.
type Security struct {
	// TLSCert and TLSKey serve gRPC over TLS; they are re-read when the
	// files change.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TLSClientCA requires client certificates chaining to it (mTLS); the
	// certificate's name is the caller's principal.
	TLSClientCA string `yaml:"tls_client_ca"`
	// AuthTokenFile holds bearer tokens, one "TOKEN PRINCIPAL [admin]" a
	// line; it is reloaded when it changes.
	AuthTokenFile string `yaml:"auth_token_file"`
	// AuthAdmins are mTLS client names with admin rights.
	AuthAdmins []string `yaml:"auth_admins"`
	// ServicePrincipal runs every call when authentication is off.
	ServicePrincipal string `yaml:"service_principal"`
}

// Limits protect the gateway and HS2.
type Limits struct {
	MaxConcurrentQueries int   `yaml:"max_concurrent_queries"`
	MaxQueriesPerUser    int   `yaml:"max_queries_per_user"`
	MaxStatementBytes    int   `yaml:"max_statement_bytes"`
	MaxRowsPerQuery      int64 `yaml:"max_rows_per_query"`
	MaxBatchBytes        int   `yaml:"max_batch_bytes"`
	DefaultFetchSize     int   `yaml:"default_fetch_size"`
}

// Log configures slog.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Default returns the built-in settings.
func Default() Config {
	return Config{
		Listen:        "127.0.0.1:9090",
		Cluster:       "default",
		Coordination:  "standalone",
		Etcd:          Etcd{LeaseTTL: 10 * time.Second, DialTimeout: 5 * time.Second},
		ShutdownGrace: 10 * time.Second,
		Limits: Limits{
			MaxConcurrentQueries: 512,
			MaxQueriesPerUser:    128,
			MaxStatementBytes:    1 << 20,
			MaxBatchBytes:        1 << 20,
			DefaultFetchSize:     10000,
		},
		Log:      Log{Level: "info", Format: "text"},
		Security: Security{ServicePrincipal: "hiveqd"},
		Tracing:  Tracing{Exporter: "none", SampleRatio: 1},
	}
}

// ConnectorDefaults fills a connector's unset fields.
func ConnectorDefaults(c *Connector) {
	if c.Discovery == "" {
		if len(c.ZooKeeper.Servers) > 0 {
			c.Discovery = "zookeeper"
		} else {
			c.Discovery = "static"
		}
	}
	if c.ZooKeeper.Namespace == "" {
		c.ZooKeeper.Namespace = "hiveserver2"
	}
	if c.ZooKeeper.SessionTimeout == 0 {
		c.ZooKeeper.SessionTimeout = 10 * time.Second
	}
	if c.Policy == "" {
		c.Policy = "oldest"
	}
	if c.Probe.Interval == 0 {
		c.Probe.Interval = 200 * time.Millisecond
	}
	if c.Probe.Timeout == 0 {
		c.Probe.Timeout = 500 * time.Millisecond
	}
	if c.Probe.Failures == 0 {
		c.Probe.Failures = 2
	}
	if c.Probe.Cooldown == 0 {
		c.Probe.Cooldown = 5 * time.Second
	}
	if c.Pool.MaxSessions == 0 {
		c.Pool.MaxSessions = 256
	}
	if c.RerunReads == nil {
		on := true
		c.RerunReads = &on
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = 15 * time.Second
	}
	if c.Pool.MaxIdlePerKey == 0 {
		c.Pool.MaxIdlePerKey = 16
	}
	if c.Pool.IdleTimeout == 0 {
		c.Pool.IdleTimeout = 5 * time.Minute
	}
	if c.Pool.ValidateAfter == 0 {
		c.Pool.ValidateAfter = 30 * time.Second
	}
}

// Parse decodes YAML strictly over Default: unknown keys are errors.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Load reads and parses a file.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Finish applies connector defaults and the replica id default.
func (c *Config) Finish() {
	for i := range c.Connectors {
		ConnectorDefaults(&c.Connectors[i])
	}
	if c.DefaultConnector == "" && len(c.Connectors) > 0 {
		c.DefaultConnector = c.Connectors[0].Name
	}
	if c.ReplicaID == "" {
		c.ReplicaID, _ = os.Hostname()
	}
	if c.AdvertiseAddr == "" {
		c.AdvertiseAddr = c.Listen
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	checkAddr := func(field, addr string, required bool) {
		if addr == "" {
			if required {
				bad(field, "is required")
			}
			return
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad(field, "%q is not host:port: %v", addr, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad(field, "%q has a bad port", addr)
		}
	}
	checkAddr("listen", c.Listen, true)
	checkAddr("metrics_listen", c.MetricsListen, false)
	checkAddr("flightsql.listen", c.FlightSQL.Listen, false)
	checkAddr("admin_listen", c.AdminListen, false)
	switch c.Coordination {
	case "standalone":
	case "etcd":
		if len(c.Etcd.Endpoints) == 0 {
			bad("etcd.endpoints", "is required with coordination etcd")
		}
		for i, e := range c.Etcd.Endpoints {
			checkAddr(fmt.Sprintf("etcd.endpoints[%d]", i), strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://"), true)
		}
		if c.Etcd.LeaseTTL < 2*time.Second {
			bad("etcd.lease_ttl", "%v is below 2s", c.Etcd.LeaseTTL)
		}
	default:
		bad("coordination", "%q is not standalone or etcd", c.Coordination)
	}
	if c.Cluster == "" || strings.ContainsAny(c.Cluster, "/ ") {
		bad("cluster", "%q must be non-empty, without / or spaces", c.Cluster)
	}
	if len(c.Connectors) == 0 {
		bad("connectors", "at least one connector is required (flags --hs2 or --zk make one)")
	}
	seen := map[string]bool{}
	for i, cn := range c.Connectors {
		f := fmt.Sprintf("connectors[%d]", i)
		if cn.Name == "" || strings.ContainsAny(cn.Name, "/ ") {
			bad(f+".name", "%q must be non-empty, without / or spaces", cn.Name)
		}
		if seen[cn.Name] {
			bad(f+".name", "%q is repeated", cn.Name)
		}
		seen[cn.Name] = true
		switch cn.Discovery {
		case "static":
			if len(cn.Static) == 0 {
				bad(f+".static", "needs at least one host:port")
			}
			for j, s := range cn.Static {
				checkAddr(fmt.Sprintf("%s.static[%d]", f, j), s, true)
			}
		case "zookeeper", "zookeeper-ha":
			if len(cn.ZooKeeper.Servers) == 0 {
				bad(f+".zookeeper.servers", "is required with discovery %s", cn.Discovery)
			}
			for j, s := range cn.ZooKeeper.Servers {
				checkAddr(fmt.Sprintf("%s.zookeeper.servers[%d]", f, j), s, true)
			}
		default:
			bad(f+".discovery", "%q is not static, zookeeper or zookeeper-ha", cn.Discovery)
		}
		switch strings.ToLower(cn.Transport) {
		case "", "binary", "http":
		default:
			bad(f+".transport", "%q is not binary or http", cn.Transport)
		}
		switch strings.ToUpper(cn.Auth) {
		case "", "NONE", "NOSASL", "LDAP", "CUSTOM", "KERBEROS":
		default:
			bad(f+".auth", "%q is not none, nosasl, ldap, custom or kerberos", cn.Auth)
		}
		switch strings.ToLower(cn.SASLQOP) {
		case "", "auth", "auth-int", "auth-conf":
		default:
			bad(f+".sasl_qop", "%q is not auth, auth-int or auth-conf", cn.SASLQOP)
		}
		for _, pf := range []struct{ field, v string }{{".principal", cn.Principal}, {".http_principal", cn.HTTPPrincipal}} {
			if pf.v != "" && (strings.Count(pf.v, "@") > 1 || strings.HasPrefix(pf.v, "/") || strings.ContainsAny(pf.v, " ;")) {
				bad(f+pf.field, "%q is not a principal like hive/_HOST@REALM", pf.v)
			}
		}
		switch cn.Policy {
		case "oldest", "random":
		default:
			bad(f+".policy", "%q is not oldest or random", cn.Policy)
		}
		if cn.Probe.Timeout <= 0 || cn.Probe.Interval <= 0 || cn.Probe.Failures < 1 {
			bad(f+".probe", "interval, timeout and failures must be positive")
		}
		if cn.Pool.MaxSessions < 1 {
			bad(f+".pool.max_sessions", "must be at least 1")
		}
		if cn.StallTimeout != 0 && cn.StallTimeout < 6*time.Second { // 0: the default
			bad(f+".stall_timeout", "%s is less than 6s: it must exceed HS2's 5s status long poll", cn.StallTimeout)
		}
	}
	if c.DefaultConnector != "" && !seen[c.DefaultConnector] {
		bad("default_connector", "%q is not a configured connector", c.DefaultConnector)
	}
	l := c.Limits
	if l.MaxConcurrentQueries < 1 || l.MaxQueriesPerUser < 1 {
		bad("limits", "max_concurrent_queries and max_queries_per_user must be at least 1")
	}
	if l.MaxStatementBytes < 1 || l.MaxStatementBytes > 16<<20 {
		bad("limits.max_statement_bytes", "%d is outside 1..16MiB", l.MaxStatementBytes)
	}
	if l.MaxBatchBytes < 64<<10 || l.MaxBatchBytes > 3<<20 {
		bad("limits.max_batch_bytes", "%d is outside 64KiB..3MiB (gRPC's default receive limit is 4MiB)", l.MaxBatchBytes)
	}
	if l.DefaultFetchSize < 1 || l.DefaultFetchSize > 10000 {
		bad("limits.default_fetch_size", "%d is outside 1..10000", l.DefaultFetchSize)
	}
	if l.MaxRowsPerQuery < 0 {
		bad("limits.max_rows_per_query", "must not be negative")
	}
	if c.Kerberos.Keytab != "" && c.Kerberos.Principal == "" {
		bad("kerberos.principal", "is required with kerberos.keytab")
	}
	if c.Security.TLSClientCA != "" && (c.Security.TLSCert == "" || c.Security.TLSKey == "") {
		bad("security.tls_client_ca", "needs security.tls_cert and security.tls_key")
	}
	if (c.Security.TLSCert == "") != (c.Security.TLSKey == "") {
		bad("security", "tls_cert and tls_key go together")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Tracing.Exporter {
	case "none", "stdout", "otlp":
	default:
		bad("tracing.exporter", "%q is not none, stdout or otlp", c.Tracing.Exporter)
	}
	if e := c.Tracing.Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("tracing.endpoint", "%q is not an http:// or https:// URL", e)
		}
	}
	if r := c.Tracing.SampleRatio; !(r >= 0 && r <= 1) {
		bad("tracing.sample_ratio", "%v is outside 0..1", r)
	}
	return errors.Join(errs...)
}

// ReadSecret reads a secret file, trimming one trailing newline; "" reads
// nothing.
func ReadSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
