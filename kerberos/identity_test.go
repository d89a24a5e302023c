package kerberos_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/service"

	"github.com/hiveqd/hiveqd/gssapi"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/kerberos"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type realm struct {
	kdc       *testenv.KDC
	clientKT  string
	serviceKT string
}

func newRealm(t *testing.T, opts testenv.KDCOptions) realm {
	t.Helper()
	kdc := testenv.StartKDC(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ckt, err := kdc.NewPrincipal(ctx, "hiveqd/gw.localhost")
	if err != nil {
		t.Fatal(err)
	}
	skt, err := kdc.NewPrincipal(ctx, "hive/localhost")
	if err != nil {
		t.Fatal(err)
	}
	return realm{kdc: kdc, clientKT: ckt, serviceKT: skt}
}

func TestKeytabLoginServiceTicketAndGSSAPI(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	id, err := kerberos.New(kerberos.Config{Principal: r.kdc.Principal("hiveqd/gw.localhost"), Keytab: r.clientKT, Krb5Conf: r.kdc.Krb5Conf()})
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Login(); err != nil {
		t.Fatal(err)
	}
	tk, err := id.ServiceTicket("hive/localhost")
	if err != nil {
		t.Fatal(err)
	}
	// A real ticket through our AP-REQ, gokrb5's acceptor and our AP-REP.
	ini, tok, err := gssapi.NewInitiator(tk.CName, tk.Realm, tk.Ticket, tk.SessionKey, gssapi.DefaultFlags)
	if err != nil {
		t.Fatal(err)
	}
	kt, err := keytab.Load(r.serviceKT)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := gssapi.Accept(tok, service.NewSettings(kt, service.DecodePAC(false)), gssapi.AcceptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if acc.Client != r.kdc.Principal("hiveqd/gw.localhost") {
		t.Fatalf("acceptor saw %q", acc.Client)
	}
	ctx, err := ini.Complete(acc.APRep)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := ctx.Wrap([]byte("hello"), true)
	if p, _, err := acc.Context.Unwrap(w); err != nil || string(p) != "hello" {
		t.Fatal(err)
	}
	// Cached: a second ticket for the same principal costs no exchange.
	tk2, err := id.ServiceTicket("hive/localhost@" + r.kdc.Realm())
	if err != nil || !tk2.EndTime.Equal(tk.EndTime) {
		t.Fatalf("second ticket: %v", err)
	}
}

func TestRenewalAndRelogin(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{TicketLifetime: time.Hour, RenewableLifetime: 4 * time.Hour})
	clock := &fakeClock{t: time.Now()}
	id, err := kerberos.New(kerberos.Config{Principal: r.kdc.Principal("hiveqd/gw.localhost"), Keytab: r.clientKT,
		Krb5Conf: r.kdc.Krb5Conf(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.ServiceTicket("hive/localhost"); err != nil {
		t.Fatal(err)
	}
	if l, n := id.Stats(); l != 1 || n != 0 {
		t.Fatalf("after first ticket: %d logins %d renewals", l, n)
	}
	// Past 80% of the lifetime: the TGT is renewed, the service ticket
	// replaced.
	clock.Add(50 * time.Minute)
	if _, err := id.ServiceTicket("hive/localhost"); err != nil {
		t.Fatal(err)
	}
	if l, n := id.Stats(); l != 1 || n != 1 {
		t.Fatalf("after 50m: %d logins %d renewals, want 1 and 1", l, n)
	}
	// Idle past the TGT's end: it cannot be renewed any more; a new login
	// from the keytab. (The fake clock is hours ahead of the KDC's, which
	// does not matter to the AS exchange.)
	clock.Add(3 * time.Hour)
	if _, err := id.ServiceTicket("hive/localhost"); err != nil {
		t.Fatal(err)
	}
	if l, _ := id.Stats(); l != 2 {
		t.Fatalf("after the TGT's end: %d logins, want 2", l)
	}
}

func TestTicketCache(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	ctx := context.Background()
	cc, err := r.kdc.Kinit(ctx, "hiveqd/gw.localhost", r.clientKT)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KRB5CCNAME": cc, "KRB5_CONFIG": r.kdc.Krb5Conf()}
	id, err := kerberos.New(kerberos.Config{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if id.Principal() != r.kdc.Principal("hiveqd/gw.localhost") {
		t.Fatal(id.Principal())
	}
	if _, err := id.ServiceTicket("hive/localhost"); err != nil {
		t.Fatal(err)
	}
	// A principal other than the cache's is refused up front.
	_, err = kerberos.New(kerberos.Config{Principal: "someone@" + r.kdc.Realm(), Getenv: func(k string) string { return env[k] }})
	if err == nil || !strings.Contains(err.Error(), "not the configured principal") {
		t.Fatalf("mismatched cache principal: %v", err)
	}
	// An expired cache says so.
	clock := &fakeClock{t: time.Now().Add(48 * time.Hour)}
	id, _ = kerberos.New(kerberos.Config{Getenv: func(k string) string { return env[k] }, Now: clock.Now})
	if _, err := id.ServiceTicket("hive/localhost"); !errors.Is(err, kerberos.ErrExpired) {
		t.Fatalf("expired cache: %v", err)
	}
	// No cache at all.
	env["KRB5CCNAME"] = filepath.Join(t.TempDir(), "none")
	if _, err := kerberos.New(kerberos.Config{Getenv: func(k string) string { return env[k] }}); err == nil || !strings.Contains(err.Error(), "kinit") {
		t.Fatalf("missing cache: %v", err)
	}
}

func TestClearErrors(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{})
	ctx := context.Background()
	login := func(principal, kt, conf string) error {
		id, err := kerberos.New(kerberos.Config{Principal: principal, Keytab: kt, Krb5Conf: conf})
		if err != nil {
			return err
		}
		if err := id.Login(); err != nil {
			return err
		}
		_, err = id.ServiceTicket("hive/nosuchhost")
		return err
	}
	// A keytab that does not hold the principal.
	if err := login(r.kdc.Principal("other/gw.localhost"), r.clientKT, r.kdc.Krb5Conf()); !errors.Is(err, kerberos.ErrBadKeytab) {
		t.Errorf("principal not in keytab: %v", err)
	}
	// A principal the KDC does not know (in a keytab of its own).
	kt := keytab.New()
	_ = kt.AddEntry("ghost/gw.localhost", r.kdc.Realm(), "x", time.Now(), 1, 18)
	ghost := filepath.Join(t.TempDir(), "ghost.keytab")
	f, _ := os.Create(ghost)
	_, _ = kt.Write(f)
	f.Close()
	if err := login(r.kdc.Principal("ghost/gw.localhost"), ghost, r.kdc.Krb5Conf()); !errors.Is(err, kerberos.ErrPrincipalUnknown) {
		t.Errorf("unknown principal: %v", err)
	}
	// A stale keytab: the key changed in the KDC.
	if err := r.kdc.RandomizeKey(ctx, "hiveqd/gw.localhost"); err != nil {
		t.Fatal(err)
	}
	if err := login(r.kdc.Principal("hiveqd/gw.localhost"), r.clientKT, r.kdc.Krb5Conf()); !errors.Is(err, kerberos.ErrBadKeytab) {
		t.Errorf("stale keytab: %v", err)
	}
	fresh, err := r.kdc.Keytab(ctx, "hiveqd/gw.localhost")
	if err != nil {
		t.Fatal(err)
	}
	// An unknown server principal.
	if err := login(r.kdc.Principal("hiveqd/gw.localhost"), fresh, r.kdc.Krb5Conf()); !errors.Is(err, kerberos.ErrServerUnknown) || !strings.Contains(err.Error(), "hive/nosuchhost") {
		t.Errorf("unknown server: %v", err)
	}
	// The KDC down.
	r.kdc.Stop()
	if err := login(r.kdc.Principal("hiveqd/gw.localhost"), fresh, r.kdc.Krb5Conf()); !errors.Is(err, kerberos.ErrKDCUnreachable) {
		t.Errorf("KDC down: %v", err)
	}
	// No krb5.conf.
	if err := login(r.kdc.Principal("hiveqd/gw.localhost"), fresh, "/nonexistent/krb5.conf"); err == nil || !strings.Contains(err.Error(), "krb5.conf") {
		t.Errorf("missing krb5.conf: %v", err)
	}
}

func TestKrb5ConfPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"/flag.conf", map[string]string{"KRB5_CONFIG": "/env.conf"}, "/flag.conf"},
		{"", map[string]string{"KRB5_CONFIG": "/env.conf"}, "/env.conf"},
		{"", map[string]string{"KRB5_CONFIG": "/a.conf:/b.conf"}, "/a.conf"},
		{"", nil, "/etc/krb5.conf"},
	} {
		if got := kerberos.Krb5ConfPath(tc.flag, env(tc.env)); got != tc.want {
			t.Errorf("%q %v: %q, want %q", tc.flag, tc.env, got, tc.want)
		}
	}
}

// TestKDCTimeResolution: KDC times are whole seconds. With a clockskew of
// 1s, replies that take 0.4s to arrive, stamped late in their second and
// read early in the next, are well within the skew and must be accepted,
// for a login (AS) and a service ticket (TGS) alike. gokrb5 alone refused
// them: it compares the stamp with the sub-second clock.
func TestKDCTimeResolution(t *testing.T) {
	r := newRealm(t, testenv.KDCOptions{ClockSkew: time.Second})
	p, err := testenv.NewProxy(r.kdc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	conf := filepath.Join(t.TempDir(), "krb5.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(r.kdc.Krb5ConfText(), r.kdc.Addr(), p.Addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := kerberos.New(kerberos.Config{Principal: r.kdc.Principal("hiveqd/gw.localhost"), Keytab: r.clientKT, Krb5Conf: conf})
	if err != nil {
		t.Fatal(err)
	}
	// Undelayed first: the client learns whether the KDC wants
	// pre-authentication, so each exchange below is one round trip.
	if err := id.Login(); err != nil {
		t.Fatal(err)
	}
	const delay = 400 * time.Millisecond
	p.SetDelay(delay) // each way
	for i := 0; i < 3; i++ {
		// Sent at .4 of a second: the KDC stamps it at about .8, the reply
		// is read at about 1.2.
		alignToSecond(400 * time.Millisecond)
		if err := id.Login(); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	alignToSecond(400 * time.Millisecond)
	if _, err := id.ServiceTicket("hive/localhost"); err != nil {
		t.Fatal(err)
	}
}

// alignToSecond waits until the wall clock is at phase past a whole second
// (KDC time stamps are whole seconds): the phase is the point of the test,
// not synchronisation.
func alignToSecond(phase time.Duration) {
	now := time.Now()
	at := now.Truncate(time.Second).Add(phase)
	if !at.After(now) {
		at = at.Add(time.Second)
	}
	time.Sleep(time.Until(at))
}
