package kerberos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// TestKerberosQOPs: binary SASL GSSAPI in every QOP, configured by flags
// only; hiveqd runs as its own principal's short name.
func TestKerberosQOPs(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	for _, qop := range []string{"auth", "auth-int", "auth-conf"} {
		t.Run(qop, func(t *testing.T) {
			ctx := ctxT(t, 2*time.Minute)
			s := r.sim(t, "hs2sim-"+qop, "localhost", "--sasl-qop", qop)
			h := r.hiveqd(t, "hiveqd-"+qop, true, "--hs2", "localhost:"+port(s), "--hs2-auth", "kerberos",
				"--hs2-principal", "hive/_HOST@"+r.kdc.Realm(), "--hs2-sasl-qop", qop,
				"--kerberos-principal", r.principal("hiveqd/localhost"), "--kerberos-keytab", r.hiveqdKT,
				"--krb5-conf", r.kdc.Krb5Conf())
			if u, _ := currentUser(t, ctx, h.Addr); u != "hiveqd" {
				t.Errorf("current_user() = %q, want hiveqd", u)
			}
			res := query(t, ctx, h.Addr, "SELECT id, c_string FROM all_types ORDER BY id")
			if res.code != 0 || len(res.rows) != 4 {
				t.Fatalf("all_types: code %d %s, %d rows", res.code, res.msg, len(res.rows))
			}
			st, err := s.Stats(ctx)
			if err != nil || st.KerberosLogins == 0 {
				t.Errorf("simulator stats %+v %v", st, err)
			}
		})
	}
}

// TestKerberosHTTP: SPNEGO on the first request, then the cookie; a fresh
// token once the cookie expires.
func TestKerberosHTTP(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	ctx := ctxT(t, 2*time.Minute)
	s := r.sim(t, "hs2sim-http", "localhost", "--transport", "http", "--cookie-max-age", "3s")
	h := r.hiveqd(t, "hiveqd-http", true, "--config", r.config(t, connector{static: []string{"localhost:" + port(s)}, transport: "http"}, ""))
	if u, _ := currentUser(t, ctx, h.Addr); u != "hiveqd" {
		t.Errorf("current_user() = %q, want hiveqd", u)
	}
	before := logins(t, ctx, s)
	for i := 0; i < 5; i++ {
		currentUser(t, ctx, h.Addr)
	}
	if after := logins(t, ctx, s); after > before+1 {
		t.Errorf("%d Kerberos logins for 5 queries (cookie not reused)", after-before)
	}
	// Past the cookie's Max-Age the client needs a fresh token.
	mark := logins(t, ctx, s)
	deadline := time.Now().Add(4 * time.Second)
	testenv.Eventually(t, 10*time.Second, func() error {
		if time.Now().Before(deadline) {
			return fmt.Errorf("cookie still valid")
		}
		return nil
	})
	currentUser(t, ctx, h.Addr)
	if logins(t, ctx, s) == mark {
		t.Error("no new Kerberos login after the cookie expired")
	}
}

func logins(t *testing.T, ctx context.Context, s *harness.Sim) int64 {
	t.Helper()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.KerberosLogins
}

// TestKerberosTicketExpiry: tickets live 10s. A query streams for longer
// than two lifetimes over HTTP (every request after the 1s cookie needs a
// fresh service ticket), another runs after the tickets expired, and on
// the binary transport a reconnection after expiry logs in again. The
// KDC's log proves hiveqd got new tickets.
func TestKerberosTicketExpiry(t *testing.T) {
	const life = 10 * time.Second
	r := newRealm(t, testenv.KDCOptions{TicketLifetime: life, RenewableLifetime: time.Minute, ClockSkew: time.Second})
	ctx := ctxT(t, 4*time.Minute)
	hs := r.sim(t, "hs2sim-http", "localhost", "--transport", "http", "--cookie-max-age", "1s")
	h := r.hiveqd(t, "hiveqd-http", true, "--config", r.config(t, connector{static: []string{"localhost:" + port(hs)}, transport: "http"}, ""))
	as0, tgs0 := r.kdcRequests(t, r.principal("hiveqd/localhost"))

	// About 25s of streaming: 500 rows at 20 rows/s.
	if err := hs.Pace(ctx, 20, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := query(t, ctx, h.Addr, "SELECT id FROM synth.rows_500")
	if res.code != 0 || len(res.rows) != 500 {
		t.Fatalf("long query: code %d %s, %d rows", res.code, res.msg, len(res.rows))
	}
	if took := time.Since(start); took < 2*life {
		t.Fatalf("the long query took %v, not past two ticket lifetimes", took)
	}
	if err := hs.Pace(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	as1, tgs1 := r.kdcRequests(t, r.principal("hiveqd/localhost"))
	if as1+tgs1 <= as0+tgs0+1 {
		t.Errorf("KDC requests from hiveqd during the long query: AS %d->%d, TGS %d->%d", as0, as1, tgs0, tgs1)
	}
	// Between queries: idle past a lifetime, then query again.
	idleUntil := time.Now().Add(life + 2*time.Second)
	testenv.Eventually(t, 2*life, func() error {
		if time.Now().Before(idleUntil) {
			return fmt.Errorf("tickets not expired yet")
		}
		return nil
	})
	if u, _ := currentUser(t, ctx, h.Addr); u != "hiveqd" {
		t.Errorf("after expiry: current_user() = %q", u)
	}

	// Binary: an established connection outlives its ticket (HS2 checks
	// only at login); a new connection after expiry needs a new ticket.
	bs := r.sim(t, "hs2sim-binary", "localhost", "--sasl-qop", "auth-conf")
	hb := r.hiveqd(t, "hiveqd-binary", true, "--config", r.config(t, connector{static: []string{"localhost:" + port(bs)}, qop: "auth-conf"}, ""))
	currentUser(t, ctx, hb.Addr)
	idleUntil = time.Now().Add(life + 2*time.Second)
	testenv.Eventually(t, 2*life, func() error {
		if time.Now().Before(idleUntil) {
			return fmt.Errorf("tickets not expired yet")
		}
		return nil
	})
	before := logins(t, ctx, bs)
	if err := bs.Fault(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	if err := bs.Fault(ctx, "heal"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		res := query(t, ctx, hb.Addr, "SELECT current_user()")
		if res.code != 0 {
			return fmt.Errorf("code %d %s", res.code, res.msg)
		}
		return nil
	})
	if logins(t, ctx, bs) == before {
		t.Error("no new login after the reconnection")
	}
	as2, tgs2 := r.kdcRequests(t, r.principal("hiveqd/localhost"))
	t.Logf("KDC requests from hiveqd: AS %d, TGS %d (after the long query: AS %d, TGS %d)", as2, tgs2, as1, tgs1)
}

// TestKerberosErrors: each misconfiguration fails queries with an error
// that names what to check.
func TestKerberosErrors(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	s := r.sim(t, "hs2sim", "localhost")
	ctx := ctxT(t, 3*time.Minute)
	staleKT, err := r.kdc.NewPrincipal(ctx, "stale/localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.kdc.RandomizeKey(ctx, "stale/localhost"); err != nil {
		t.Fatal(err)
	}
	goneKT, err := r.kdc.NewPrincipal(ctx, "gone/localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.kdc.Kadmin(ctx, "delprinc -force "+r.principal("gone/localhost")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, principal, keytab, hs2Principal string
		want                                  []string // any of these, case-insensitive
	}{
		{"wrong keytab", "stale/localhost", staleKT, "", []string{"keytab", "decrypt", "password"}},
		{"unknown principal", "gone/localhost", goneKT, "", []string{"not found", "unknown"}},
		{"server principal mismatch", "hiveqd/localhost", r.hiveqdKT, "hive/otherhost@" + r.kdc.Realm(), []string{"hive/otherhost"}},
		{"server principal unknown to the KDC", "hiveqd/localhost", r.hiveqdKT, "hive/nowhere@" + r.kdc.Realm(), []string{"hive/nowhere"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := r.config(t, connector{static: []string{"localhost:" + port(s)}, principal: tc.hs2Principal}, "")
			h := r.hiveqd(t, "hiveqd-"+strings.ReplaceAll(tc.name, " ", "-"), false, "--config", cfg,
				"--kerberos-principal", r.principal(tc.principal), "--kerberos-keytab", tc.keytab)
			var msg string
			testenv.Eventually(t, time.Minute, func() error {
				res := query(t, ctx, h.Addr, "SELECT 1")
				if res.code == 0 {
					t.Fatalf("query succeeded")
				}
				msg = res.msg
				for _, w := range tc.want {
					if strings.Contains(strings.ToLower(msg+h.Output()), strings.ToLower(w)) {
						return nil
					}
				}
				return fmt.Errorf("code %d %q, want one of %q\n%s", res.code, msg, tc.want, h.Output())
			})
			t.Logf("%s: %s", tc.name, msg)
		})
	}
}

// TestKerberosFailover: two Kerberized HS2 on different host names, found
// in ZooKeeper with the principal HS2 publishes (hive/_HOST@REALM); after
// the serving one dies, the other serves with its own principal.
func TestKerberosFailover(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	z := testenv.StartZooKeeper(t)
	ctx := ctxT(t, 3*time.Minute)
	zkArgs := []string{"--zk", z.Addr(), "--zk-namespace", "hs2krb", "--sasl-qop", "auth-conf"}
	sims := map[string]*harness.Sim{
		"localhost": r.sim(t, "hs2sim-localhost", "localhost", zkArgs...),
		r.host2:     r.sim(t, "hs2sim-"+r.host2, r.host2, zkArgs...),
	}
	h := r.hiveqd(t, "hiveqd", true, "--config", r.config(t, connector{zk: z.Servers(), namespace: "hs2krb", principal: "-"}, ""))
	u, first := currentUser(t, ctx, h.Addr)
	if u != "hiveqd" {
		t.Errorf("current_user() = %q", u)
	}
	host := strings.Split(first.server, ":")[0]
	dead, ok := sims[host]
	if !ok {
		t.Fatalf("served by %q, not one of the simulators", first.server)
	}
	if err := dead.Fault(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	var second result
	testenv.Eventually(t, time.Minute, func() error {
		second = query(t, ctx, h.Addr, "SELECT current_user()")
		if second.code != 0 || strings.HasPrefix(second.server, host+":") {
			return fmt.Errorf("code %d %s server %s", second.code, second.msg, second.server)
		}
		return nil
	})
	other := strings.Split(second.server, ":")[0]
	if st, err := sims[other].Stats(ctx); err != nil || st.KerberosLogins == 0 {
		t.Errorf("%s: %+v %v", other, st, err)
	}
	t.Logf("failover %s -> %s", first.server, second.server)
}

// TestKerberosImpersonation: hiveqd logs in as itself and runs each query
// as the caller (current_user() is the caller), through grpcurl and
// hiveqd sql; a server that does not let hiveqd impersonate says so.
func TestKerberosImpersonation(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	ctx := ctxT(t, 2*time.Minute)
	const tok = "alice-token-0123456789abcdef"
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(tok+" alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sec := fmt.Sprintf("security:\n  auth_token_file: %q\n", tokens)
	s := r.sim(t, "hs2sim", "localhost", "--sasl-qop", "auth-int")
	h := r.hiveqd(t, "hiveqd", true, "--config", r.config(t, connector{static: []string{"localhost:" + port(s)}, qop: "auth-int", impersonation: true}, sec))
	bearer := []string{"-H", "authorization: Bearer " + tok}
	if u, _ := currentUser(t, ctx, h.Addr, bearer...); u != "alice" {
		t.Errorf("grpcurl: current_user() = %q, want alice", u)
	}
	tokFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bins["hiveqd"], "sql", "--addr", h.Addr, "--token-file", tokFile, "--format", "csv", "--silent", "SELECT current_user()")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "alice") {
		t.Errorf("hiveqd sql: %v\n%s", err, out)
	}

	// Without proxy-user rights for hiveqd the query fails with HS2's
	// message.
	denied := r.sim(t, "hs2sim-denied", "localhost", "--proxy-users", "")
	hd := r.hiveqd(t, "hiveqd-denied", true, "--config", r.config(t, connector{static: []string{"localhost:" + port(denied)}, impersonation: true}, sec))
	res := query(t, ctx, hd.Addr, "SELECT current_user()", bearer...)
	if res.code == 0 || !strings.Contains(res.msg, "Failed to validate proxy privilege of hiveqd for alice") {
		t.Errorf("without proxy rights: code %d %q", res.code, res.msg)
	}
}

// TestKerberosActivePassive: HS2's active/passive HA registry under
// <namespace>-sasl; when the active server hands over, hiveqd follows to
// the other host with that host's principal.
func TestKerberosActivePassive(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	z := testenv.StartZooKeeper(t)
	ctx := ctxT(t, 3*time.Minute)
	zkArgs := []string{"--zk", z.Addr(), "--zk-namespace", "hs2krbha", "--zk-mode", "ha", "--sasl-qop", "auth-int"}
	active := r.sim(t, "hs2sim-localhost", "localhost", append(zkArgs, "--active")...)
	passive := r.sim(t, "hs2sim-"+r.host2, r.host2, zkArgs...)
	h := r.hiveqd(t, "hiveqd", true, "--config", r.config(t, connector{zk: z.Servers(), namespace: "hs2krbha", ha: true, principal: "-"}, ""))
	_, first := currentUser(t, ctx, h.Addr)
	if !strings.HasPrefix(first.server, "localhost:") {
		t.Fatalf("served by %q, want the active localhost", first.server)
	}
	for _, step := range []struct {
		s  *harness.Sim
		on string
	}{{active, "false"}, {passive, "true"}} {
		if err := postControl(ctx, step.s, "/active?on="+step.on); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, time.Minute, func() error {
		res := query(t, ctx, h.Addr, "SELECT current_user()")
		if res.code != 0 || !strings.HasPrefix(res.server, r.host2+":") {
			return fmt.Errorf("code %d %s server %s", res.code, res.msg, res.server)
		}
		return nil
	})
}

func postControl(ctx context.Context, s *harness.Sim, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Control+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return nil
}
