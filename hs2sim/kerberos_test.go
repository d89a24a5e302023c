package hs2sim

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beltran/gohive/hiveserver"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// These tests use gokrb5's client (SPNEGO over HTTP) and raw SASL frames
// against a real MIT KDC; gohive's MIT-based client runs in
// kerberos_gohive_test.go (-tags kerberos).

type krbFixture struct {
	kdc    *testenv.KDC
	keytab string // hive/localhost, HTTP/localhost, hive/otherhost
	alice  *client.Client
}

func startKrbFixture(t *testing.T) *krbFixture {
	t.Helper()
	kdc := testenv.StartKDC(t, testenv.KDCOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kdc.AddPrincipal(ctx, "hive/localhost", "HTTP/localhost", "hive/otherhost", "alice"); err != nil {
		t.Fatal(err)
	}
	svc, err := kdc.Keytab(ctx, "hive/localhost", "HTTP/localhost", "hive/otherhost")
	if err != nil {
		t.Fatal(err)
	}
	akt, err := kdc.Keytab(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	kt, err := keytab.Load(akt)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := config.NewFromString(kdc.Krb5ConfText())
	if err != nil {
		t.Fatal(err)
	}
	cl := client.NewWithKeytab("alice", kdc.Realm(), kt, conf, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Destroy)
	return &krbFixture{kdc: kdc, keytab: svc, alice: cl}
}

func (f *krbFixture) config() Config {
	return Config{Auth: "kerberos", KerberosPrincipal: "hive/localhost@" + f.kdc.Realm(), KerberosKeytab: f.keytab}
}

// negotiateHeader is a SPNEGO token for spn, as "Negotiate <base64>".
func (f *krbFixture) negotiateHeader(t *testing.T, spn string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://localhost/", nil)
	if err := spnego.SetSPNEGOHeader(f.alice, req, spn); err != nil {
		t.Fatal(err)
	}
	return req.Header.Get("Authorization")
}

func postOpenSession(t *testing.T, url, authz string, cookies []*http.Cookie, conf map[string]string) *http.Response {
	t.Helper()
	body := encodeCall(t, "OpenSession", &hiveserver.TCLIServiceOpenSessionArgs{Req: &hiveserver.TOpenSessionReq{ClientProtocol: v10, Configuration: conf}})[4:]
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-thrift")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func authCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == authCookie {
			return c
		}
	}
	return nil
}

func TestKerberosHTTPSPNEGO(t *testing.T) {
	f := startKrbFixture(t)
	cfg := f.config()
	cfg.Transport = "http"
	cfg.ProxyUsers = []string{"alice"}
	cfg.CookieMaxAge = time.Hour
	s := startServer(t, cfg)
	url := "http://" + s.Addr() + "/cliservice"
	// Afterwards, a client holding the cookie (its token is then a replay,
	// which the cookie makes irrelevant) checks and closes the sessions.
	raw := dialRaw(t, s, dialOpts{mode: "http", authz: f.negotiateHeader(t, "HTTP/localhost")})
	var handles []*hiveserver.TSessionHandle
	defer func() {
		for _, h := range handles {
			raw.closeSession(h)
		}
	}()

	// No token: 401 with a Negotiate challenge.
	resp := postOpenSession(t, url, "", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Negotiate" {
		t.Fatalf("no token: %d %v", resp.StatusCode, resp.Header)
	}
	// SPNEGO for HTTP/localhost, then the cookie alone.
	authz := f.negotiateHeader(t, "HTTP/localhost")
	resp = postOpenSession(t, url, authz, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SPNEGO HTTP/localhost: %d", resp.StatusCode)
	}
	cookie := authCookieOf(resp)
	if cookie == nil || !strings.HasPrefix(cookie.Value, "cu=alice&") || cookie.MaxAge != 3600 {
		t.Fatalf("cookie %v", resp.Header.Values("Set-Cookie"))
	}
	first := decodeOpenSession(t, resp.Body)
	ok(t, first.Status)
	handles = append(handles, first.SessionHandle)
	resp = postOpenSession(t, url, "", []*http.Cookie{cookie}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cookie: %d", resp.StatusCode)
	}
	second := decodeOpenSession(t, resp.Body)
	ok(t, second.Status)
	handles = append(handles, second.SessionHandle)
	if n := s.Stats().KerberosLogins; n != 1 {
		t.Errorf("%d Kerberos logins, want 1 (the cookie was used)", n)
	}
	// The same token again is a replay.
	if resp := postOpenSession(t, url, authz, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("replayed token: %d", resp.StatusCode)
	}
	// A token for the service principal is accepted too; one for another
	// host's is not.
	resp = postOpenSession(t, url, f.negotiateHeader(t, "hive/localhost"), nil, map[string]string{"hive.server2.proxy.user": "bob"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SPNEGO hive/localhost: %d", resp.StatusCode)
	}
	third := decodeOpenSession(t, resp.Body)
	ok(t, third.Status)
	handles = append(handles, third.SessionHandle)
	if resp := postOpenSession(t, url, f.negotiateHeader(t, "hive/otherhost"), nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token for hive/otherhost: %d", resp.StatusCode)
	}
	if resp := postOpenSession(t, url, "Negotiate bm90IGEgdG9rZW4=", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("garbage token: %d", resp.StatusCode)
	}
	// The sessions run as alice, and as bob when alice impersonates him.
	for h, want := range map[*hiveserver.TSessionHandle]string{first.SessionHandle: "alice", third.SessionHandle: "bob"} {
		if got := raw.query(h, "SELECT current_user()"); len(got) != 1 || got[0][0] != want {
			t.Errorf("current_user() = %v, want %q", got, want)
		}
	}
}

func TestKerberosProxyUserRefused(t *testing.T) {
	f := startKrbFixture(t)
	cfg := f.config()
	cfg.Transport = "http"
	s := startServer(t, cfg)
	resp := postOpenSession(t, "http://"+s.Addr()+"/cliservice", f.negotiateHeader(t, "HTTP/localhost"), nil,
		map[string]string{"hive.server2.proxy.user": "bob"})
	st := decodeOpenSession(t, resp.Body)
	if st.Status.GetStatusCode() != hiveserver.TStatusCode_ERROR_STATUS || st.Status.GetSqlState() != "08S01" ||
		st.Status.GetErrorMessage() != "Failed to validate proxy privilege of alice for bob" {
		t.Fatalf("status %+v", st.Status)
	}
	// Impersonating oneself needs no rights.
	resp = postOpenSession(t, "http://"+s.Addr()+"/cliservice?doAs=alice", f.negotiateHeader(t, "HTTP/localhost"), nil, nil)
	self := decodeOpenSession(t, resp.Body)
	ok(t, self.Status)
	dialRaw(t, s, dialOpts{mode: "http", authz: f.negotiateHeader(t, "HTTP/localhost")}).closeSession(self.SessionHandle)
}

// saslExchange sends START mech and an initial response and returns the
// server's reply.
func saslExchange(t *testing.T, s *Server, mech string, initial []byte) (byte, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeSASL(c, saslStart, mech); err != nil {
		t.Fatal(err)
	}
	if err := writeSASL(c, saslOK, string(initial)); err != nil {
		t.Fatal(err)
	}
	status, payload, err := readSASL(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	return status, string(payload)
}

func TestKerberosSASLRefusals(t *testing.T) {
	f := startKrbFixture(t)
	s := startServer(t, f.config())
	if st, msg := saslExchange(t, s, "PLAIN", []byte("\x00alice\x00pw")); st != saslBad || msg != "Unsupported mechanism type PLAIN" {
		t.Errorf("PLAIN: %d %q", st, msg)
	}
	if st, msg := saslExchange(t, s, "GSSAPI", []byte("garbage")); st != saslBad || msg != "GSS initiate failed" {
		t.Errorf("garbage token: %d %q", st, msg)
	}
	// A valid AP-REQ for another principal in the keytab: refused.
	tkt, key, err := f.alice.GetServiceTicket("hive/otherhost")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := spnego.NewKRB5TokenAPREQ(f.alice, tkt, key, []int{2, 32, 16, 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tok.Marshal()
	if st, msg := saslExchange(t, s, "GSSAPI", b); st != saslBad || msg != "GSS initiate failed" {
		t.Errorf("ticket for hive/otherhost: %d %q", st, msg)
	}
	// The right principal gets its AP-REP (mutual auth requested).
	tkt, key, err = f.alice.GetServiceTicket("hive/localhost")
	if err != nil {
		t.Fatal(err)
	}
	tok, err = spnego.NewKRB5TokenAPREQ(f.alice, tkt, key, []int{2, 32, 16, 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = tok.Marshal()
	st, msg := saslExchange(t, s, "GSSAPI", b)
	var rep spnego.KRB5Token
	if err := rep.Unmarshal([]byte(msg)); st != saslOK || err != nil || !rep.IsAPRep() {
		t.Errorf("valid AP-REQ: %d %v", st, err)
	}
}

func TestKerberosConfigErrors(t *testing.T) {
	f := startKrbFixture(t)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Auth: "kerberos", KerberosKeytab: f.keytab}, "service principal like hive/host@REALM"},
		{Config{Auth: "kerberos", KerberosPrincipal: "hive/nohost@" + f.kdc.Realm(), KerberosKeytab: f.keytab}, "has no key for hive/nohost@"},
		{Config{Auth: "kerberos", KerberosPrincipal: "hive/localhost@" + f.kdc.Realm(), KerberosKeytab: "/nonexistent"}, "keytab"},
		{Config{Auth: "kerberos", KerberosPrincipal: "hive/localhost@" + f.kdc.Realm(), KerberosKeytab: f.keytab, SASLQOP: "privacy"}, "unknown SASL QOP"},
	} {
		if _, err := Start(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestKerberosZooKeeperRegistration(t *testing.T) {
	f := startKrbFixture(t)
	z := testenv.StartZooKeeper(t)
	zc := zkClient(t, z.Servers())
	cfg := f.config()
	cfg.ZK, cfg.ZKNamespace, cfg.SASLQOP, cfg.AdvertiseHost = z.Servers(), "krb", "auth-conf", "localhost"
	s := startServer(t, cfg)
	kids := children(t, zc, "/krb")
	if len(kids) != 1 {
		t.Fatalf("children %v", kids)
	}
	data, _, err := zc.Get("/krb/" + kids[0])
	if err != nil {
		t.Fatal(err)
	}
	p := strconv.Itoa(s.Port())
	want := "hive.server2.instance.uri=localhost:" + p + ";hive.server2.authentication=KERBEROS;hive.server2.transport.mode=binary;" +
		"hive.server2.thrift.sasl.qop=auth-conf;hive.server2.thrift.bind.host=localhost;hive.server2.thrift.port=" + p +
		";hive.server2.use.SSL=false;hive.server2.authentication.kerberos.principal=hive/_HOST@" + f.kdc.Realm()
	if string(data) != want {
		t.Errorf("data\n got  %s\n want %s", data, want)
	}
	// Active/passive: the -sasl namespace.
	cfg.ZKMode, cfg.Active = "ha", true
	startServer(t, cfg)
	if kids := children(t, zc, "/krb-sasl/instances"); len(kids) != 1 {
		t.Fatalf("-sasl instances: %v", kids)
	}
}
