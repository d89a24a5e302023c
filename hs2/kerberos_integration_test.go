package hs2_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/kerberos"
)

// Kerberos against a real MIT KDC and the Kerberized simulator.

type krbRealm struct {
	kdc      *testenv.KDC
	id       *kerberos.Identity
	services string // keytab of every service principal made
}

// newKrbRealm starts a KDC with hiveqd's principal and the given service
// principals (short names), and logs hiveqd in from its keytab.
func newKrbRealm(t *testing.T, opts testenv.KDCOptions, services ...string) *krbRealm {
	t.Helper()
	kdc := testenv.StartKDC(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ckt, err := kdc.NewPrincipal(ctx, "hiveqd/gw.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := kdc.AddPrincipal(ctx, services...); err != nil {
		t.Fatal(err)
	}
	skt, err := kdc.Keytab(ctx, services...)
	if err != nil {
		t.Fatal(err)
	}
	id, err := kerberos.New(kerberos.Config{Principal: kdc.Principal("hiveqd/gw.localhost"), Keytab: ckt, Krb5Conf: kdc.Krb5Conf()})
	if err != nil {
		t.Fatal(err)
	}
	return &krbRealm{kdc: kdc, id: id, services: skt}
}

func (r *krbRealm) sim(t *testing.T, cfg hs2sim.Config) *sim {
	t.Helper()
	cfg.Auth = "kerberos"
	cfg.KerberosKeytab = r.services
	if cfg.KerberosPrincipal == "" {
		cfg.KerberosPrincipal = r.kdc.Principal("hive/localhost")
	}
	t.Setenv("KRB5_CONFIG", r.kdc.Krb5Conf()) // the simulator's clock skew
	return startSim(t, cfg)
}

// krbEndpoint is s as discovery would publish it, on host name host.
func (r *krbRealm) endpoint(t *testing.T, s *sim, host string) hs2.Endpoint {
	ep := s.endpoint(t)
	ep.Host = host
	ep.Auth = hs2.AuthKerberos
	ep.Principal = "hive/_HOST@" + r.kdc.Realm()
	ep.SASLQOP = s.cfg.SASLQOP
	return ep
}

// hostDialer maps host names to the simulators' loopback addresses, so
// two servers have two host names (and two principals) without DNS.
type hostDialer struct {
	mu    sync.Mutex
	addrs map[string]string // host -> 127.0.0.1:port
	seen  []string
}

func (d *hostDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	real, ok := d.addrs[host]
	d.seen = append(d.seen, host)
	d.mu.Unlock()
	if !ok {
		real = addr
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, real)
}

func (r *krbRealm) opts(k hs2.Kerberos) hs2.Options {
	k.Identity = r.id
	return hs2.Options{Kerberos: &k, CallTimeout: 20 * time.Second}
}

func scalar(t *testing.T, sess *hs2.Session, stmt string) string {
	t.Helper()
	_, batches := query(t, sess, stmt, 100)
	if len(batches) == 0 || batches[0].Rows == 0 {
		t.Fatalf("%s: no rows", stmt)
	}
	return batches[0].Columns[0].Str(0)
}

func TestKerberosBinaryEveryQOP(t *testing.T) {
	r := newKrbRealm(t, testenv.KDCOptions{}, "hive/localhost")
	for _, qop := range []string{"auth", "auth-int", "auth-conf"} {
		for _, noSubkey := range []bool{false, true} {
			name := qop
			if noSubkey {
				name += "/no-acceptor-subkey"
			}
			t.Run(name, func(t *testing.T) {
				s := r.sim(t, hs2sim.Config{SASLQOP: qop, NoAcceptorSubkey: noSubkey})
				sess, err := hs2.Open(context.Background(), r.endpoint(t, s, "localhost"), r.opts(hs2.Kerberos{}), hs2.SessionConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer sess.Close(context.Background())
				if u := scalar(t, sess, "SELECT current_user()"); u != "hiveqd" {
					t.Errorf("current_user() = %q, want hiveqd", u)
				}
				// Many frames each way under the layer.
				_, batches := query(t, sess, "SELECT * FROM synth.rows_5000", 700)
				checkSynthRows(t, batches, 5000)
			})
		}
	}
}

func TestKerberosQOPMismatch(t *testing.T) {
	r := newKrbRealm(t, testenv.KDCOptions{}, "hive/localhost")
	s := r.sim(t, hs2sim.Config{SASLQOP: "auth"})
	// The configuration demands confidentiality; the server offers none.
	_, err := hs2.Open(context.Background(), r.endpoint(t, s, "localhost"), r.opts(hs2.Kerberos{QOP: "auth-conf"}), hs2.SessionConfig{})
	var ae *hs2.AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "no common SASL security layer") {
		t.Fatalf("got %v", err)
	}
}

func TestKerberosHTTPSPNEGOAndCookie(t *testing.T) {
	r := newKrbRealm(t, testenv.KDCOptions{}, "hive/localhost", "HTTP/localhost")
	for _, httpPrincipal := range []string{"", "HTTP/_HOST@" + r.kdc.Realm()} {
		t.Run("principal="+httpPrincipal, func(t *testing.T) {
			s := r.sim(t, hs2sim.Config{Transport: "http"})
			sess, err := hs2.Open(context.Background(), r.endpoint(t, s, "localhost"), r.opts(hs2.Kerberos{HTTPPrincipal: httpPrincipal}), hs2.SessionConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close(context.Background())
			for range 3 {
				if u := scalar(t, sess, "SELECT current_user()"); u != "hiveqd" {
					t.Fatalf("current_user() = %q", u)
				}
			}
			if n := s.Stats().KerberosLogins; n != 1 {
				t.Fatalf("%d Kerberos logins for one session's calls, want 1 (the cookie after)", n)
			}
		})
	}
}

func TestKerberosHTTPCookieExpiry(t *testing.T) {
	r := newKrbRealm(t, testenv.KDCOptions{}, "hive/localhost")
	// The server forgets cookies after a second; our copy says 24h.
	s := r.sim(t, hs2sim.Config{Transport: "http", CookieMaxAge: time.Second})
	opts := r.opts(hs2.Kerberos{})
	clock := &shiftClock{}
	opts.Clock = clock
	sess, err := hs2.Open(context.Background(), r.endpoint(t, s, "localhost"), opts, hs2.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(context.Background())
	before := s.Stats().KerberosLogins
	if err := sess.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Stats().KerberosLogins != before {
		t.Fatal("a live cookie was not reused")
	}
	// Our clock moves past the cookie's Max-Age: a fresh SPNEGO token.
	clock.shift(2 * time.Second)
	if err := sess.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Stats().KerberosLogins != before+1 {
		t.Fatalf("Kerberos logins %d, want %d after the cookie expired", s.Stats().KerberosLogins, before+1)
	}
}

type shiftClock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *shiftClock) shift(d time.Duration) { c.mu.Lock(); c.d += d; c.mu.Unlock() }
func (c *shiftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}
func (c *shiftClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func TestKerberosImpersonation(t *testing.T) {
	r := newKrbRealm(t, testenv.KDCOptions{}, "hive/localhost")
	s := r.sim(t, hs2sim.Config{ProxyUsers: []string{"hiveqd"}})
	ep := r.endpoint(t, s, "localhost")
	sess, err := hs2.Open(context.Background(), ep, r.opts(hs2.Kerberos{}), hs2.SessionConfig{ProxyUser: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(context.Background())
	if u := scalar(t, sess, "SELECT current_user()"); u != "alice" {
		t.Fatalf("current_user() = %q, want alice", u)
	}
	// Without hadoop.proxyuser.hiveqd.* on the server, HS2 refuses.
	s2 := r.sim(t, hs2sim.Config{})
	_, err = hs2.Open(context.Background(), r.endpoint(t, s2, "localhost"), r.opts(hs2.Kerberos{}), hs2.SessionConfig{ProxyUser: "alice"})
	var se *hs2.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("impersonation without proxyuser rights: %v", err)
	}
}

// The principal follows the host: two Kerberized servers, each with its
// host's principal; one Options serves both, and a server presenting
// another host's identity is refused.
func TestKerberosPrincipalFollowsHost(t *testing.T) {
	r := newKrbRealm(t, testenv.KDCOptions{}, "hive/hs2-a.test", "hive/hs2-b.test")
	a := r.sim(t, hs2sim.Config{KerberosPrincipal: r.kdc.Principal("hive/hs2-a.test"), SASLQOP: "auth-conf"})
	b := r.sim(t, hs2sim.Config{KerberosPrincipal: r.kdc.Principal("hive/hs2-b.test"), SASLQOP: "auth-conf"})
	d := &hostDialer{addrs: map[string]string{"hs2-a.test": a.Addr(), "HS2-B.test": b.Addr(), "hs2-c.test": b.Addr()}}
	opts := r.opts(hs2.Kerberos{})
	opts.DialContext = d.dial
	for _, tc := range []struct {
		s    *sim
		host string
	}{{a, "hs2-a.test"}, {b, "HS2-B.test"}, {a, "hs2-a.test"}} {
		sess, err := hs2.Open(context.Background(), r.endpoint(t, tc.s, tc.host), opts, hs2.SessionConfig{})
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		if err := sess.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		sess.Close(context.Background())
	}
	// hs2-c.test has no principal in the KDC: the error names it.
	_, err := hs2.Open(context.Background(), r.endpoint(t, b, "hs2-c.test"), opts, hs2.SessionConfig{})
	if !errors.Is(err, kerberos.ErrServerUnknown) || !strings.Contains(err.Error(), "hive/hs2-c.test") {
		t.Fatalf("unknown server principal: %v", err)
	}
	// A connector principal pinned to hs2-a while the server is b (the
	// failover bug): b cannot accept a ticket for a, and says so.
	pinned := r.opts(hs2.Kerberos{Principal: r.kdc.Principal("hive/hs2-a.test")})
	pinned.DialContext = d.dial
	_, err = hs2.Open(context.Background(), r.endpoint(t, b, "HS2-B.test"), pinned, hs2.SessionConfig{})
	var ae *hs2.AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "refused our Kerberos ticket for hive/hs2-a.test") {
		t.Fatalf("ticket for another host's principal: %v", err)
	}
}

// Tickets that expire between queries and during a long one: sessions
// stay (HS2 authenticates a connection once), new connections get new
// tickets, and hiveqd logs in again by itself.
func TestKerberosTicketExpiry(t *testing.T) {
	const life = 3 * time.Second
	r := newKrbRealm(t, testenv.KDCOptions{TicketLifetime: life, RenewableLifetime: life, ClockSkew: time.Second}, "hive/localhost")
	s := r.sim(t, hs2sim.Config{SASLQOP: "auth-int"})
	ep := r.endpoint(t, s, "localhost")
	opts := r.opts(hs2.Kerberos{})
	sess, err := hs2.Open(context.Background(), ep, opts, hs2.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(context.Background())
	tk, err := r.id.ServiceTicket("hive/localhost")
	if err != nil {
		t.Fatal(err)
	}
	// A query that runs across the ticket's end.
	op, err := sess.Execute(context.Background(), "SELECT * FROM synth.rows_2000", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, tk.EndTime.Add(1500*time.Millisecond))
	if _, err := op.Wait(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		b, err := op.Fetch(context.Background(), 500)
		if err != nil {
			t.Fatalf("fetch after the ticket expired: %v", err)
		}
		if b.Rows == 0 {
			break
		}
		n += b.Rows
	}
	op.Close(context.Background())
	if n != 2000 {
		t.Fatalf("%d rows", n)
	}
	logins, _ := r.id.Stats()
	// Between queries: a new connection, after the TGT ended.
	sess2, err := hs2.Open(context.Background(), ep, opts, hs2.SessionConfig{})
	if err != nil {
		t.Fatalf("new session after the tickets expired: %v", err)
	}
	defer sess2.Close(context.Background())
	if u := scalar(t, sess2, "SELECT current_user()"); u != "hiveqd" {
		t.Fatal(u)
	}
	if l, _ := r.id.Stats(); l != logins+1 {
		t.Fatalf("logins %d, want %d: hiveqd did not log in again", l, logins+1)
	}
}

// waitUntil waits for the wall clock (Kerberos ticket times are real).
func waitUntil(t *testing.T, when time.Time) {
	t.Helper()
	for time.Now().Before(when) {
		time.Sleep(50 * time.Millisecond)
	}
}
