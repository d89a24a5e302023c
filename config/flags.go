package config

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Setting is one override that exists as a flag and as an environment
// variable (HIVEQD_ and the flag name upper-cased with _ for -).
type Setting struct {
	Flag  string
	Usage string
	Apply func(c *Config, v string) error
}

// Env is the setting's environment variable.
func (s Setting) Env() string {
	return "HIVEQD_" + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_"))
}

// flagConnector is the connector that --hs2/--zk flags build or override.
func flagConnector(c *Config) *Connector {
	name := c.DefaultConnector
	if name == "" {
		name = "hive"
	}
	for i := range c.Connectors {
		if c.Connectors[i].Name == name {
			return &c.Connectors[i]
		}
	}
	c.Connectors = append(c.Connectors, Connector{Name: name})
	if c.DefaultConnector == "" {
		c.DefaultConnector = name
	}
	return &c.Connectors[len(c.Connectors)-1]
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func str(set func(*Config, string)) func(*Config, string) error {
	return func(c *Config, v string) error { set(c, v); return nil }
}

func dur(set func(*Config, time.Duration)) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		set(c, d)
		return nil
	}
}

func integer(set func(*Config, int)) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		set(c, n)
		return nil
	}
}

func float(set func(*Config, float64)) func(*Config, string) error {
	return func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return err
		}
		set(c, f)
		return nil
	}
}

// Settings are the serve command's overrides, in help order.
var Settings = []Setting{
	{"listen", "gRPC listen address", str(func(c *Config, v string) { c.Listen = v })},
	{"metrics-listen", "Prometheus /metrics HTTP address (empty: off)", str(func(c *Config, v string) { c.MetricsListen = v })},
	{"flightsql-listen", "Arrow Flight SQL address (empty: off); same TLS and tokens as --listen", str(func(c *Config, v string) { c.FlightSQL.Listen = v })},
	{"admin-listen", "web console HTTP(S) address, with the gRPC port's TLS and auth (empty: off)", str(func(c *Config, v string) { c.AdminListen = v })},
	{"replica-id", "this replica's id (default: host name)", str(func(c *Config, v string) { c.ReplicaID = v })},
	{"advertise-addr", "gRPC address other replicas reach this one at (default: --listen)", str(func(c *Config, v string) { c.AdvertiseAddr = v })},
	{"cluster", "cluster name; scopes the etcd keys", str(func(c *Config, v string) { c.Cluster = v })},
	{"coordination", "standalone | etcd", str(func(c *Config, v string) { c.Coordination = v })},
	{"etcd", "etcd endpoints host:port,...", str(func(c *Config, v string) { c.Etcd.Endpoints = list(v) })},
	{"etcd-user", "etcd user", str(func(c *Config, v string) { c.Etcd.Username = v })},
	{"etcd-password-file", "file holding the etcd password", str(func(c *Config, v string) { c.Etcd.PasswordFile = v })},
	{"etcd-ca", "CA file to verify etcd", str(func(c *Config, v string) { c.Etcd.TLS.CAFile = v })},
	{"etcd-cert", "client certificate for etcd", str(func(c *Config, v string) { c.Etcd.TLS.CertFile = v })},
	{"etcd-key", "client key for etcd", str(func(c *Config, v string) { c.Etcd.TLS.KeyFile = v })},
	{"lease-ttl", "etcd leadership lease TTL", dur(func(c *Config, d time.Duration) { c.Etcd.LeaseTTL = d })},
	{"connector", "name of the connector the --hs2/--zk flags configure (default: the default connector, else hive)",
		str(func(c *Config, v string) { c.DefaultConnector = v })},
	{"hs2", "static HS2 servers host:port,... (the first healthy one serves)", func(c *Config, v string) error {
		cn := flagConnector(c)
		cn.Discovery, cn.Static = "static", list(v)
		return nil
	}},
	{"zk", "ZooKeeper servers host:port,... where HS2 registers", func(c *Config, v string) error {
		cn := flagConnector(c)
		if cn.Discovery != "zookeeper-ha" {
			cn.Discovery = "zookeeper"
		}
		cn.ZooKeeper.Servers = list(v)
		return nil
	}},
	{"zk-namespace", "HS2's hive.server2.zookeeper.namespace", str(func(c *Config, v string) { flagConnector(c).ZooKeeper.Namespace = v })},
	{"discovery", "static | zookeeper | zookeeper-ha", str(func(c *Config, v string) { flagConnector(c).Discovery = v })},
	{"hs2-auth", "none | nosasl | ldap | custom | kerberos", str(func(c *Config, v string) { flagConnector(c).Auth = strings.ToUpper(v) })},
	{"hs2-principal", "HS2's Kerberos principal, hive/_HOST@REALM (default: what the server publishes)", str(func(c *Config, v string) { flagConnector(c).Principal = v })},
	{"hs2-sasl-qop", "Kerberos SASL protection: auth | auth-int | auth-conf (default: what the server publishes)", str(func(c *Config, v string) { flagConnector(c).SASLQOP = v })},
	{"hs2-transport", "binary | http", str(func(c *Config, v string) { flagConnector(c).Transport = v })},
	{"hs2-http-path", "HTTP path (default cliservice)", str(func(c *Config, v string) { flagConnector(c).HTTPPath = v })},
	{"hs2-user", "hiveqd's HS2 user", str(func(c *Config, v string) { flagConnector(c).User = v })},
	{"hs2-password-file", "file holding hiveqd's HS2 password", str(func(c *Config, v string) { flagConnector(c).PasswordFile = v })},
	{"kerberos-principal", "hiveqd's own Kerberos principal, e.g. hiveqd/host@REALM", str(func(c *Config, v string) { c.Kerberos.Principal = v })},
	{"kerberos-keytab", "keytab of --kerberos-principal (default: the ticket cache in KRB5CCNAME)", str(func(c *Config, v string) { c.Kerberos.Keytab = v })},
	{"krb5-conf", "krb5.conf (default: KRB5_CONFIG, else /etc/krb5.conf)", str(func(c *Config, v string) { c.Kerberos.Krb5Conf = v })},
	{"shutdown-grace", "how long running streams may finish after SIGTERM", dur(func(c *Config, d time.Duration) { c.ShutdownGrace = d })},
	{"max-concurrent-queries", "global limit of running queries", integer(func(c *Config, n int) { c.Limits.MaxConcurrentQueries = n })},
	{"tls-cert", "gRPC server certificate (PEM); reloaded when it changes", str(func(c *Config, v string) { c.Security.TLSCert = v })},
	{"tls-key", "gRPC server key (PEM)", str(func(c *Config, v string) { c.Security.TLSKey = v })},
	{"tls-client-ca", "CA client certificates must chain to (mTLS); the certificate name is the caller", str(func(c *Config, v string) { c.Security.TLSClientCA = v })},
	{"auth-token-file", `bearer tokens, one "TOKEN PRINCIPAL [admin]" a line; reloaded when it changes`, str(func(c *Config, v string) { c.Security.AuthTokenFile = v })},
	{"auth-admins", "mTLS client names with admin rights, comma-separated", str(func(c *Config, v string) { c.Security.AuthAdmins = list(v) })},
	{"auth-service-principal", "principal of every call when authentication is off", str(func(c *Config, v string) { c.Security.ServicePrincipal = v })},
	{"log-level", "debug | info | warn | error", str(func(c *Config, v string) { c.Log.Level = v })},
	{"log-format", "text | json", str(func(c *Config, v string) { c.Log.Format = v })},
	{"trace-exporter", "OpenTelemetry span exporter: none | stdout | otlp", str(func(c *Config, v string) { c.Tracing.Exporter = v })},
	{"trace-endpoint", "OTLP gRPC collector URL, http://host:4317 (plaintext) or https://... (default: OTEL_EXPORTER_OTLP_* variables)",
		str(func(c *Config, v string) { c.Tracing.Endpoint = v })},
	{"trace-sample-ratio", "share of new traces sampled, 0..1 (callers' sampling decisions are kept)", float(func(c *Config, f float64) { c.Tracing.SampleRatio = f })},
}

// Register adds --config and every Setting to fs; FromFlags then builds the
// configuration.
func Register(fs *flag.FlagSet) *string {
	for _, s := range Settings {
		fs.String(s.Flag, "", s.Usage+" (env "+s.Env()+")")
	}
	return fs.String("config", os.Getenv("HIVEQD_CONFIG"), "YAML configuration file (env HIVEQD_CONFIG)")
}

// FromFlags loads the file named by --config (if any) over the defaults,
// then environment variables, then the flags that were set, then fills
// defaults and validates.
func FromFlags(fs *flag.FlagSet, configPath string, getenv func(string) string) (Config, error) {
	cfg := Default()
	if configPath != "" {
		var err error
		if cfg, err = Load(configPath); err != nil {
			return cfg, err
		}
	}
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	for _, s := range Settings {
		v, fromFlag := set[s.Flag]
		src := "--" + s.Flag
		if !fromFlag {
			if v = getenv(s.Env()); v == "" {
				continue
			}
			src = s.Env()
		}
		if err := s.Apply(&cfg, v); err != nil {
			return cfg, fmt.Errorf("%s=%q: %w", src, v, err)
		}
	}
	cfg.Finish()
	return cfg, cfg.Validate()
}
