//go:build kerberos

package hs2sim

import (
	"context"
	"testing"
	"time"

	"github.com/beltran/gohive"
	"github.com/hiveqd/hiveqd/internal/testenv"
)

// gohive built with -tags kerberos is a third-party Kerberos client: cgo
// over MIT's libgssapi_krb5 (gosasl's GSSAPI mechanism on the binary
// transport, a raw krb5 token for hive/<host> over HTTP). It takes its
// ticket cache and krb5.conf from the process environment, so these tests
// set KRB5CCNAME and KRB5_CONFIG and share one KDC.

type krbEnv struct {
	kdc      *testenv.KDC
	keytab   string // hive/localhost and HTTP/localhost
	realm    string
	aliceKT  string
	aliceCC  string
	otherKT  string // hive/vm, in a keytab of its own
	principl string
}

func startKrbEnv(t *testing.T) *krbEnv {
	t.Helper()
	kdc := testenv.StartKDC(t, testenv.KDCOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := &krbEnv{kdc: kdc, realm: kdc.Realm(), principl: "hive/localhost@" + kdc.Realm()}
	if err := kdc.AddPrincipal(ctx, "hive/localhost", "HTTP/localhost", "hive/otherhost"); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.keytab, err = kdc.Keytab(ctx, "hive/localhost", "HTTP/localhost", "hive/otherhost"); err != nil {
		t.Fatal(err)
	}
	if e.aliceKT, err = kdc.NewPrincipal(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if e.aliceCC, err = kdc.Kinit(ctx, "alice", e.aliceKT); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KRB5_CONFIG", kdc.Krb5Conf())
	t.Setenv("KRB5CCNAME", e.aliceCC)
	return e
}

func (e *krbEnv) config(qop string) Config {
	return Config{Auth: "kerberos", KerberosPrincipal: e.principl, KerberosKeytab: e.keytab, SASLQOP: qop}
}

// gohiveKerberos connects as the ticket cache's user to host:port.
func gohiveKerberos(host string, s *Server, http bool, conf map[string]string) (*gohive.Connection, error) {
	cfg := gohive.NewConnectConfiguration()
	cfg.Service = "hive"
	cfg.HiveConfiguration = conf
	if http {
		cfg.TransportMode = "http"
		cfg.DisableKeepAlives = true
	}
	return gohive.Connect(host, s.Port(), "KERBEROS", cfg)
}

func gohiveScalar(t *testing.T, conn *gohive.Connection, query string) string {
	t.Helper()
	ctx := context.Background()
	cur := conn.Cursor()
	defer cur.Close()
	cur.Exec(ctx, query)
	if cur.Err != nil {
		t.Fatalf("%s: %v", query, cur.Err)
	}
	var v string
	for cur.HasMore(ctx) {
		cur.FetchOne(ctx, &v)
		if cur.Err != nil {
			t.Fatalf("%s: fetch: %v", query, cur.Err)
		}
	}
	return v
}

// gohiveRows reads a whole table, so replies span many frames (each one a
// wrap token with integrity or confidentiality).
func gohiveRows(t *testing.T, conn *gohive.Connection) int {
	t.Helper()
	ctx := context.Background()
	cur := conn.Cursor()
	defer cur.Close()
	cur.Exec(ctx, "SELECT id, c_string FROM all_types")
	if cur.Err != nil {
		t.Fatal(cur.Err)
	}
	n := 0
	for cur.HasMore(ctx) {
		var id int32
		var s *string
		cur.FetchOne(ctx, &id, &s)
		if cur.Err != nil {
			t.Fatal(cur.Err)
		}
		n++
	}
	return n
}

func TestKerberosGohiveBinary(t *testing.T) {
	e := startKrbEnv(t)
	for _, qop := range []string{"auth", "auth-int", "auth-conf"} {
		for _, subkey := range []bool{true, false} {
			name := qop + "/acceptor-subkey"
			if !subkey {
				name = qop + "/no-acceptor-subkey"
			}
			t.Run(name, func(t *testing.T) {
				cfg := e.config(qop)
				cfg.NoAcceptorSubkey = !subkey
				s := startServer(t, cfg)
				conn, err := gohiveKerberos("localhost", s, false, nil)
				if err != nil {
					t.Fatalf("gohive connect: %v", err)
				}
				defer conn.Close()
				if u := gohiveScalar(t, conn, "SELECT current_user()"); u != "alice" {
					t.Errorf("current_user() = %q, want alice", u)
				}
				if n := gohiveRows(t, conn); n == 0 {
					t.Error("no rows")
				}
				if u := gohiveScalar(t, conn, "SELECT current_user()"); u != "alice" {
					t.Errorf("current_user() = %q, want alice", u)
				}
			})
		}
	}
}

func TestKerberosGohiveImpersonation(t *testing.T) {
	e := startKrbEnv(t)
	cfg := e.config("auth-conf")
	cfg.ProxyUsers = []string{"alice"}
	s := startServer(t, cfg)
	conn, err := gohiveKerberos("localhost", s, false, map[string]string{"hive.server2.proxy.user": "bob"})
	if err != nil {
		t.Fatalf("gohive connect: %v", err)
	}
	if u := gohiveScalar(t, conn, "SELECT current_user()"); u != "bob" {
		t.Errorf("current_user() = %q, want bob", u)
	}
	conn.Close()

	denied := startServer(t, e.config("auth"))
	// gohive ignores OpenSession's status: the refusal shows as no session.
	conn, err = gohiveKerberos("localhost", denied, false, map[string]string{"hive.server2.proxy.user": "bob"})
	if err == nil {
		defer conn.Close()
		cur := conn.Cursor()
		cur.Exec(context.Background(), "SELECT current_user()")
		err = cur.Err
		cur.Close()
	}
	if err == nil || denied.Stats().SessionsOpened != 0 {
		t.Fatalf("impersonation without proxy rights: err %v, %d sessions", err, denied.Stats().SessionsOpened)
	}
}

func TestKerberosGohiveWrongServerPrincipal(t *testing.T) {
	e := startKrbEnv(t)
	// The keytab holds hive/otherhost's key too, but this server is
	// hive/localhost: a ticket for hive/otherhost is refused.
	s := startServer(t, e.config("auth"))
	t.Setenv("SERVICE_HOST_QUALIFIED", "otherhost") // gosasl: the principal's host
	if _, err := gohiveKerberos("localhost", s, false, nil); err == nil {
		t.Fatal("ticket for another server's principal accepted")
	}
}

func TestKerberosGohiveHTTP(t *testing.T) {
	e := startKrbEnv(t)
	cfg := e.config("")
	cfg.Transport = "http"
	s := startServer(t, cfg)
	conn, err := gohiveKerberos("localhost", s, true, nil)
	if err != nil {
		t.Fatalf("gohive connect: %v", err)
	}
	defer conn.Close()
	// gohive sends the same krb5 token on every request: the replay cache
	// refuses it after the first, so these calls prove the cookie is used.
	for i := 0; i < 3; i++ {
		if u := gohiveScalar(t, conn, "SELECT current_user()"); u != "alice" {
			t.Errorf("current_user() = %q, want alice", u)
		}
	}
	if n := gohiveRows(t, conn); n == 0 {
		t.Error("no rows")
	}
}
