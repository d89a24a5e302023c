package kerberos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// realm is a KDC with the principals of these tests: hiveqd's own
// (hiveqd/localhost), the HS2 services on localhost and on a second host
// name, and hive/otherhost (a real principal no server here uses).
type realm struct {
	kdc      *testenv.KDC
	dir      string
	hiveqdKT string // hiveqd/localhost
	svcKT    string // hive/ and HTTP/ for localhost, host2 and otherhost
	host2    string // a second name for loopback (see secondHost)
	skew     time.Duration
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newRealm(t *testing.T, opts testenv.KDCOptions) *realm {
	t.Helper()
	kdc := testenv.StartKDC(t, opts)
	ctx := ctxT(t, time.Minute)
	r := &realm{kdc: kdc, dir: t.TempDir(), host2: secondHost(), skew: opts.ClockSkew}
	if r.skew == 0 {
		r.skew = 5 * time.Minute
	}
	svcs := []string{"hive/localhost", "HTTP/localhost", "hive/otherhost", "hive/" + r.host2, "HTTP/" + r.host2}
	if err := kdc.AddPrincipal(ctx, append(svcs, "hiveqd/localhost")...); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.svcKT, err = kdc.Keytab(ctx, svcs...); err != nil {
		t.Fatal(err)
	}
	if r.hiveqdKT, err = kdc.Keytab(ctx, "hiveqd/localhost"); err != nil {
		t.Fatal(err)
	}
	return r
}

// secondHost is a second name for loopback, so a second simulator has
// another host name and principal: the machine's host name when it resolves
// to loopback only (as /etc/hosts makes it on most machines), else the
// address 127.0.0.1 itself (hive/127.0.0.1@REALM).
func secondHost() string {
	h, err := os.Hostname()
	h = strings.ToLower(h)
	if err != nil || h == "" || h == "localhost" {
		return "127.0.0.1"
	}
	addrs, err := net.LookupHost(h)
	if err != nil || len(addrs) == 0 {
		return "127.0.0.1"
	}
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
			return "127.0.0.1"
		}
	}
	return h
}

func (r *realm) principal(name string) string { return r.kdc.Principal(name) }

// sim starts a Kerberized hs2sim for hive/<host>; hiveqd may impersonate.
func (r *realm) sim(t *testing.T, name, host string, extra ...string) *harness.Sim {
	t.Helper()
	args := append([]string{"--auth", "kerberos", "--kerberos-principal", r.principal("hive/" + host),
		"--kerberos-keytab", r.svcKT, "--advertise-host", host, "--proxy-users", "hiveqd",
		"--kerberos-clock-skew", r.skew.String()}, extra...)
	s, err := harness.StartSim(ctxT(t, time.Minute), bins["hs2sim"], r.dir, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(10 * time.Second) })
	return s
}

func port(s *harness.Sim) string {
	_, p, _ := net.SplitHostPort(s.Addr)
	return p
}

// connector is the YAML of hiveqd's one connector.
type connector struct {
	static        []string
	zk            []string
	namespace     string
	ha            bool // zookeeper-ha (active/passive, <namespace>-sasl)
	transport     string
	qop           string
	principal     string // default hive/_HOST@REALM; "-" leaves it to the znode
	impersonation bool
	cookie        bool
}

// config writes hiveqd's YAML: the connector and hiveqd's identity.
func (r *realm) config(t *testing.T, c connector, extra string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "shutdown_grace: 2s\nconnectors:\n  - name: hive\n")
	q := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	if len(c.zk) > 0 && c.ha {
		fmt.Fprintf(&b, "    discovery: zookeeper-ha\n    zookeeper: {servers: %s, namespace: %q}\n", q(c.zk), c.namespace)
	} else if len(c.zk) > 0 {
		fmt.Fprintf(&b, "    discovery: zookeeper\n    zookeeper: {servers: %s, namespace: %q}\n", q(c.zk), c.namespace)
	} else {
		fmt.Fprintf(&b, "    discovery: static\n    static: %s\n", q(c.static))
	}
	fmt.Fprintf(&b, "    auth: kerberos\n")
	switch c.principal {
	case "":
		fmt.Fprintf(&b, "    principal: %q\n", "hive/_HOST@"+r.kdc.Realm())
	case "-":
	default:
		fmt.Fprintf(&b, "    principal: %q\n", c.principal)
	}
	if c.transport != "" {
		fmt.Fprintf(&b, "    transport: %s\n", c.transport)
	}
	if c.qop != "" {
		fmt.Fprintf(&b, "    sasl_qop: %s\n", c.qop)
	}
	fmt.Fprintf(&b, "    impersonation: %v\n", c.impersonation)
	fmt.Fprintf(&b, "    probe: {interval: 200ms, timeout: 2s, failures: 2, cooldown: 1s}\n")
	fmt.Fprintf(&b, "kerberos:\n  principal: %q\n  keytab: %q\n  krb5_conf: %q\n", r.principal("hiveqd/localhost"), r.hiveqdKT, r.kdc.Krb5Conf())
	b.WriteString(extra)
	path := filepath.Join(t.TempDir(), "hiveqd.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// hiveqd starts hiveqd serve and, unless noWait, waits until it serves.
func (r *realm) hiveqd(t *testing.T, name string, wait bool, args ...string) *harness.Hiveqd {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	args = append([]string{"--replica-id", name, "--shutdown-grace", "2s"}, args...)
	h, err := harness.StartHiveqd(ctx, bins["hiveqd"], r.dir, name, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Stop(15 * time.Second); err != nil {
			t.Errorf("hiveqd did not stop cleanly: %v\n%s", err, h.Output())
		}
	})
	if wait {
		testenv.Eventually(t, 30*time.Second, func() error {
			out, _, code, err := harness.Grpcurl(ctx, "-plaintext", "-d", `{"service":"hiveq.v1.QueryService"}`, h.Addr, "grpc.health.v1.Health/Check")
			if err != nil || code != 0 || !strings.Contains(out, `"SERVING"`) {
				return fmt.Errorf("health: %s %v %d\n%s", out, err, code, h.Output())
			}
			return nil
		})
	}
	return h
}

// result is one Execute call as grpcurl saw it.
type result struct {
	rows   [][]any
	server string // the HS2 that ran it
	code   int    // gRPC code; 0 = OK
	msg    string // the status message
	stderr string
}

// query runs one statement through grpcurl.
func query(t *testing.T, ctx context.Context, addr, stmt string, extra ...string) result {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"statement": stmt})
	args := append([]string{"-plaintext", "-format-error", "-max-msg-sz", strconv.Itoa(8 << 20)}, extra...)
	args = append(args, "-d", "@", addr, "hiveq.v1.QueryService/Execute")
	cmd := exec.CommandContext(ctx, grpcurlPath(), args...)
	cmd.Stdin = strings.NewReader(string(req))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	r := result{stderr: errb.String()}
	if ee, ok := runErr.(*exec.ExitError); ok {
		r.code = ee.ExitCode() - 64
	} else if runErr != nil {
		t.Fatalf("grpcurl: %v\n%s", runErr, errb.String())
	}
	if r.code > 0 {
		var st struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(r.stderr), &st); err == nil {
			r.code, r.msg = st.Code, st.Message
		} else {
			r.msg = r.stderr
		}
	}
	dec := json.NewDecoder(strings.NewReader(out.String()))
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("grpcurl output: %v\n%s", err, out.String())
		}
		if st, ok := m["status"].(map[string]any); ok {
			if s, ok := st["server"].(string); ok && s != "" {
				r.server = s
			}
		}
		if b, ok := m["batch"].(map[string]any); ok {
			r.rows = append(r.rows, batchRows(b)...)
		}
	}
	return r
}

// batchRows flattens a batch (JSON) into rows; NULLs are nil.
func batchRows(b map[string]any) [][]any {
	n := int(b["rowCount"].(float64))
	rows := make([][]any, n)
	cols, _ := b["columns"].([]any)
	for i := range rows {
		rows[i] = make([]any, len(cols))
	}
	for c, cv := range cols {
		for k, v := range cv.(map[string]any) {
			if !strings.HasSuffix(k, "Values") {
				continue
			}
			vals, _ := v.(map[string]any)["values"].([]any)
			for i := 0; i < n && i < len(vals); i++ {
				rows[i][c] = vals[i]
			}
		}
	}
	return rows
}

// currentUser runs SELECT current_user() and fails t on error.
func currentUser(t *testing.T, ctx context.Context, addr string, extra ...string) (string, result) {
	t.Helper()
	r := query(t, ctx, addr, "SELECT current_user()", extra...)
	if r.code != 0 || len(r.rows) != 1 {
		t.Fatalf("current_user(): code %d %s rows %v", r.code, r.msg, r.rows)
	}
	return fmt.Sprint(r.rows[0][0]), r
}

func grpcurlPath() string {
	p := filepath.Join(harness.RepoRoot(), ".tools", "bin", "grpcurl")
	if _, err := exec.LookPath(p); err == nil {
		return p
	}
	return "grpcurl"
}

// kdcRequests counts the KDC's AS and TGS replies issued to principal.
func (r *realm) kdcRequests(t *testing.T, principal string) (as, tgs int) {
	t.Helper()
	b, err := os.ReadFile(r.kdc.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "ISSUE") || !strings.Contains(line, " "+principal+" for ") {
			continue
		}
		switch {
		case strings.Contains(line, "AS_REQ"):
			as++
		case strings.Contains(line, "TGS_REQ"):
			tgs++
		}
	}
	return as, tgs
}
