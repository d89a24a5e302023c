// Package console_test drives the web console of a real replica (two HS2
// simulators behind a standalone hiveqd with token authentication) over
// HTTP and in headless Chromium (Debian's /usr/bin/chromium, driven by npm
// playwright-core; no browser is ever downloaded).
package console_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/config"
	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/replica"
	"github.com/hiveqd/hiveqd/tlsutil"
)

const (
	adminToken = "console-admin-token-0123456789"
	userToken  = "console-user-token-0123456789"
)

type env struct {
	grpcAddr, consoleURL string
	servers              []string
}

func start(t *testing.T) env { return startWith(t, nil) }

// startWith starts the replica; mod adjusts its config.
func startWith(t *testing.T, mod func(*config.Config)) env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var servers []string
	for range 2 {
		s, err := hs2sim.Start(ctx, hs2sim.Config{Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		servers = append(servers, s.Addr())
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(adminToken+" ops admin\n"+userToken+" alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.ReplicaID = "console-r1"
	cfg.Cluster = "console-test"
	cfg.Security.AuthTokenFile = tokens
	cfg.Connectors = []config.Connector{{Name: "hive", Discovery: "static", Static: servers}}
	if mod != nil {
		mod(&cfg)
	}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	alis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replica.New(ctx, cfg, replica.Options{Listener: lis, AdminListener: alis})
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
	scheme := "http://"
	if cfg.Security.TLSCert != "" {
		scheme = "https://"
	}
	e := env{grpcAddr: lis.Addr().String(), consoleURL: scheme + alis.Addr().String() + "/console/", servers: servers}
	if mod == nil {
		waitFor(t, 30*time.Second, "the console shows a server", func() bool {
			body, code := get(t, e.consoleURL, "Bearer "+adminToken)
			return code == 200 && (strings.Contains(body, servers[0]) || strings.Contains(body, servers[1]))
		})
	}
	return e
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, u, authz string) (string, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func failover(t *testing.T, addr, token string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	_, err = hiveqv1.NewClusterServiceClient(conn).Failover(ctx, &hiveqv1.FailoverRequest{Connector: "hive", Reason: "console test"})
	return err
}

// TestConsoleMTLS: with the gRPC port's TLS and client CA, the console is
// HTTPS and a verified client certificate is the identity (admin when
// listed in auth_admins); no certificate, or one from another CA, gets
// nothing.
func TestConsoleMTLS(t *testing.T) {
	pki, err := tlsutil.GenerateTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := startWith(t, func(c *config.Config) {
		c.Security = config.Security{TLSCert: pki.Server.CertFile, TLSKey: pki.Server.KeyFile, TLSClientCA: pki.CAFile, AuthAdmins: []string{"client"}}
	})
	client := func(kp *tlsutil.KeyPair) *http.Client {
		tc, err := tlsutil.ClientConfig(pki.CAFile, "", "", "")
		if kp != nil {
			tc, err = tlsutil.ClientConfig(pki.CAFile, kp.CertFile, kp.KeyFile, "")
		}
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	fetch := func(c *http.Client) (string, int, error) {
		resp, err := c.Get(e.consoleURL)
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.StatusCode, nil
	}
	waitFor(t, 30*time.Second, "the console over mTLS shows a server", func() bool {
		body, code, err := fetch(client(&pki.Client))
		return err == nil && code == 200 && strings.Contains(body, e.servers[0]) && strings.Contains(body, "client (admin)")
	})
	for name, kp := range map[string]*tlsutil.KeyPair{"no certificate": nil, "untrusted CA": &pki.UntrustedClient} {
		body, code, err := fetch(client(kp))
		if err == nil && (code == 200 || strings.Contains(body, e.servers[0])) {
			t.Errorf("%s: %d\n%s", name, code, body)
		}
	}
}

// slowQuery streams a long result slowly as the admin; the channel gets
// the stream's end.
func slowQuery(t *testing.T, addr, token string) <-chan error {
	done := make(chan error, 1)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	stream, err := hiveqv1.NewQueryServiceClient(conn).Execute(ctx, &hiveqv1.ExecuteRequest{
		Statement: "SELECT * FROM synth.rows_10000000", FetchSize: 100,
		Config: map[string]string{"hs2sim.rows_per_second": "1000"}})
	if err != nil {
		cancel()
		conn.Close()
		t.Fatal(err)
	}
	go func() {
		defer conn.Close()
		defer cancel()
		for {
			if _, err := stream.Recv(); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

// TestConsoleHTTP checks authentication and CSRF without a browser.
func TestConsoleHTTP(t *testing.T) {
	e := start(t)
	for _, authz := range []string{"", "Bearer wrong-token"} {
		body, code := get(t, e.consoleURL, authz)
		if code != http.StatusUnauthorized || strings.Contains(body, e.servers[0]) || strings.Contains(body, "Connector") {
			t.Fatalf("authorization %q: %d, body shows state:\n%s", authz, code, body)
		}
	}
	if _, code := get(t, strings.TrimSuffix(e.consoleURL, "/")+"/events", ""); code != http.StatusUnauthorized {
		t.Fatalf("events without credentials: %d", code)
	}
	body, _ := get(t, e.consoleURL, "Bearer "+userToken)
	if !strings.Contains(body, `id="leader">console-r1`) || strings.Contains(body, "failover-button") {
		t.Fatalf("non-admin page: want the leader and no failover button:\n%s", body)
	}
	post := func(authz, path string, form url.Values) int {
		req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(e.consoleURL, "/console/")+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", authz)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("Bearer "+adminToken, "/console/failover", url.Values{"connector": {"hive"}}); code != http.StatusForbidden {
		t.Fatalf("failover without CSRF token: %d, want 403", code)
	}
	if code := post("", "/console/failover", url.Values{"connector": {"hive"}}); code != http.StatusUnauthorized {
		t.Fatalf("failover without credentials: %d, want 401", code)
	}
	// The CSRF token from the admin's page makes the same POST work.
	page, _ := get(t, e.consoleURL, "Bearer "+adminToken)
	i := strings.Index(page, `name="csrf" value="`)
	if i < 0 {
		t.Fatalf("no CSRF field on the admin page")
	}
	csrf := page[i+len(`name="csrf" value="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	if code := post("Bearer "+userToken, "/console/failover", url.Values{"connector": {"hive"}, "csrf": {csrf}}); code != http.StatusForbidden {
		t.Fatalf("non-admin failover with the admin's CSRF token: %d, want 403", code)
	}
	if code := post("Bearer "+adminToken, "/console/failover", url.Values{"connector": {"hive"}, "csrf": {csrf}, "format": {"text"}}); code != http.StatusOK {
		t.Fatalf("admin failover: %d", code)
	}
	waitFor(t, 30*time.Second, "the route change in the timeline", func() bool {
		body, _ := get(t, e.consoleURL, "Bearer "+adminToken)
		return strings.Contains(body, `class="change"`) && strings.Contains(body, "manual failover from the console by ops")
	})
}

// TestConsoleBrowser loads the page in headless Chromium: it refuses
// without a token, shows the leader and the server after login, updates
// live when a failover happens through the gRPC API, shows a running
// query, and the admin cancels it.
func TestConsoleBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("no /usr/bin/chromium (Debian chromium): scripts/install-deps.sh installs it")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node: scripts/install-deps.sh installs nodejs and npm")
	}
	if _, err := os.Stat("node_modules/playwright-core"); err != nil {
		out, err := exec.Command("npm", "install", "--no-audit", "--no-fund", "--no-save", "playwright-core@1.65.2").CombinedOutput()
		if err != nil {
			t.Skipf("npm install playwright-core failed (no npm registry?): %v\n%s", err, out)
		}
	}
	e := start(t)
	shot := filepath.Join(artifactsDir(t), "console.png")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.mjs")
	cmd.Env = append(os.Environ(), "CONSOLE_URL="+e.consoleURL, "CONSOLE_TOKEN="+adminToken, "SCREENSHOT="+shot)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	var queryDone <-chan error
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		t.Log("browser: " + line)
		if strings.HasPrefix(line, "ready ") {
			if err := failover(t, e.grpcAddr, adminToken); err != nil {
				t.Errorf("failover RPC: %v", err)
			}
			queryDone = slowQuery(t, e.grpcAddr, adminToken)
			io.WriteString(stdin, "failed over\n")
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser script: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if len(lines) == 0 || lines[len(lines)-1] != "ok" {
		t.Fatalf("browser script did not finish: %q", lines)
	}
	if queryDone == nil {
		t.Fatal("no query was started")
	}
	select {
	case err := <-queryDone:
		if status.Code(err) != codes.Canceled {
			t.Errorf("the query the console cancelled ended with %v, want CANCELLED", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the query the console cancelled is still running")
	}
	t.Logf("screenshot: %s", shot)
}

// artifactsDir is $ARTIFACTS_DIR (kept after the run) or the test's temp
// directory.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}
