package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
	"github.com/hiveqd/hiveqd/tlsutil"
)

// TestSecurity runs hiveqd with mTLS and bearer tokens and proves each
// refusal, and that a good client gets rows, over grpcurl and hiveqd sql.
func TestSecurity(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsutil.GenerateTestPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	const (
		userTok  = "user-token-0123456789abcdef"
		adminTok = "admin-token-0123456789abcdef"
	)
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# clients\n"+userTok+" alice\n"+adminTok+" ops admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t}
	ctx := ctxT(t, 2*time.Minute)
	sim, err := harness.StartSim(ctx, bins["hs2sim"], dir, "hs2sim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Stop(10 * time.Second) })
	e.sims = []*harness.Sim{sim}
	// h serves TLS with bearer tokens (set through the environment);
	// m requires client certificates (mTLS identities).
	h, err := harness.StartHiveqd(ctx, bins["hiveqd"], dir, "hiveqd-tokens", []string{"HIVEQD_AUTH_TOKEN_FILE=" + tokens},
		"--hs2", sim.Addr, "--replica-id", "secure", "--tls-cert", pki.Server.CertFile, "--tls-key", pki.Server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop(10 * time.Second) })
	m, err := harness.StartHiveqd(ctx, bins["hiveqd"], dir, "hiveqd-mtls", nil,
		"--hs2", sim.Addr, "--replica-id", "mtls", "--tls-cert", pki.Server.CertFile, "--tls-key", pki.Server.KeyFile, "--tls-client-ca", pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(10 * time.Second) })
	t.Cleanup(e.requireNoLeaks)

	tlsArgs := []string{"-cacert", pki.CAFile}
	mtlsArgs := []string{"-cacert", pki.CAFile, "-cert", pki.Client.CertFile, "-key", pki.Client.KeyFile}
	// Health stays open to probes that present no token.
	testenv.Eventually(t, 20*time.Second, func() error {
		return grpcurlOK(ctx, append(tlsArgs, "-d", `{"service":"hiveq.v1.QueryService"}`, h.Addr, "grpc.health.v1.Health/Check"), "SERVING")
	})
	stmt := map[string]any{"statement": "SELECT * FROM employees"}
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"no token", tlsArgs, 16},
		{"wrong token", append(tlsArgs, "-H", "authorization: Bearer not-a-valid-token-at-all"), 16},
		{"good token", append(tlsArgs, "-H", "authorization: Bearer "+userTok), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := executeTLS(t, ctx, h.Addr, stmt, tc.args...)
			if r.code != tc.code {
				t.Fatalf("code %d, want %d\n%s", r.code, tc.code, r.stderr)
			}
			if tc.code == 0 && len(r.rows(t)) != 6 {
				t.Fatalf("%d rows", len(r.rows(t)))
			}
		})
	}
	t.Run("mTLS identity", func(t *testing.T) {
		testenv.Eventually(t, 20*time.Second, func() error {
			return grpcurlOK(ctx, append(mtlsArgs, "-d", `{"service":"hiveq.v1.QueryService"}`, m.Addr, "grpc.health.v1.Health/Check"), "SERVING")
		})
		r := executeTLS(t, ctx, m.Addr, stmt, mtlsArgs...)
		if r.code != 0 || len(r.rows(t)) != 6 {
			t.Fatalf("trusted client certificate: code %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("untrusted client certificate", func(t *testing.T) {
		args := []string{"-cacert", pki.CAFile, "-cert", pki.UntrustedClient.CertFile, "-key", pki.UntrustedClient.KeyFile,
			"-d", `{"service":""}`, m.Addr, "grpc.health.v1.Health/Check"}
		if err := grpcurlOK(ctx, args, "SERVING"); err == nil {
			t.Fatal("an untrusted client certificate was accepted")
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		if err := grpcurlOK(ctx, []string{"-cacert", pki.CAFile, "-d", `{"service":""}`, m.Addr, "grpc.health.v1.Health/Check"}, "SERVING"); err == nil {
			t.Fatal("a client without a certificate was accepted")
		}
	})
	t.Run("failover needs an admin", func(t *testing.T) {
		r := grpcurlStdin(t, ctx, []byte(`{"connector":"hive","reason":"test"}`),
			append(append([]string{"-format-error"}, tlsArgs...), "-H", "authorization: Bearer "+userTok, "-d", "@", h.Addr, "hiveq.v1.ClusterService/Failover")...)
		if r.code != 7 {
			t.Fatalf("non-admin Failover: code %d, want PERMISSION_DENIED(7)\n%s", r.code, r.stderr)
		}
	})
	t.Run("hiveqd sql with TLS and a token file", func(t *testing.T) {
		tokFile := filepath.Join(dir, "alice.token")
		if err := os.WriteFile(tokFile, []byte(userTok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, bins["hiveqd"], "sql", "--addr", h.Addr, "--format", "csv",
			"--tls-ca", pki.CAFile, "--token-file", tokFile, "SELECT id, name FROM employees ORDER BY id").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "1,Alice") || !strings.Contains(string(out), "6 rows selected") {
			t.Fatalf("hiveqd sql: %v\n%s", err, out)
		}
	})
}

// executeTLS is execute without -plaintext.
func executeTLS(t *testing.T, ctx context.Context, addr string, req any, extra ...string) result {
	t.Helper()
	b := mustJSON(t, req)
	args := append([]string{"-format-error"}, extra...)
	args = append(args, "-d", "@", addr, "hiveq.v1.QueryService/Execute")
	return grpcurlStdin(t, ctx, b, args...)
}

func grpcurlOK(ctx context.Context, args []string, want string) error {
	out, errOut, code, err := harness.Grpcurl(ctx, args...)
	if err != nil {
		return err
	}
	if code != 0 || !strings.Contains(out, want) {
		return &grpcurlError{code: code, out: out + errOut}
	}
	return nil
}

type grpcurlError struct {
	code int
	out  string
}

func (e *grpcurlError) Error() string { return fmt.Sprintf("grpcurl exit %d: %s", e.code, e.out) }
