package hs2sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// saslDial connects and negotiates SASL PLAIN by hand, sending the initial
// response with status final (OK like gohive, COMPLETE like Java).
func saslDial(t *testing.T, addr, user, pass string, final byte) (net.Conn, *bufio.Reader, byte, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeSASL(conn, saslStart, "PLAIN"); err != nil {
		t.Fatal(err)
	}
	if err := writeSASL(conn, final, "\x00"+user+"\x00"+pass); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	st, msg, err := readSASL(r)
	if err != nil {
		t.Fatalf("sasl reply: %v", err)
	}
	return conn, r, st, string(msg)
}

// callFramed makes one Thrift call over a negotiated SASL connection.
func callFramed(t *testing.T, conn net.Conn, r *bufio.Reader, name string, args, result thrift.TStruct) error {
	t.Helper()
	if _, err := conn.Write(encodeCall(t, name, args)); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	p := thrift.NewTBinaryProtocolConf(&thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(body)}, &thrift.TConfiguration{})
	ctx := context.Background()
	_, typ, _, err := p.ReadMessageBegin(ctx)
	if err != nil {
		return err
	}
	if typ == thrift.EXCEPTION {
		x := thrift.NewTApplicationException(0, "")
		if err := x.Read(ctx, p); err != nil {
			return err
		}
		return x
	}
	return result.Read(ctx, p)
}

func openSessionFramed(t *testing.T, conn net.Conn, r *bufio.Reader) *hiveserver.TOpenSessionResp {
	t.Helper()
	res := &hiveserver.TCLIServiceOpenSessionResult{}
	if err := callFramed(t, conn, r, "OpenSession", &hiveserver.TCLIServiceOpenSessionArgs{Req: &hiveserver.TOpenSessionReq{ClientProtocol: v10}}, res); err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	return res.Success
}

func TestSASLJavaCompleteStatus(t *testing.T) {
	s := startServer(t, Config{})
	for _, final := range []byte{saslOK, saslComplete} {
		conn, r, st, _ := saslDial(t, s.Addr(), "java", "pw", final)
		if st != saslComplete {
			t.Fatalf("final %d: server replied %d", final, st)
		}
		resp := openSessionFramed(t, conn, r)
		ok(t, resp.Status)
		// An unknown method is answered with UNKNOWN_METHOD; the
		// connection stays usable.
		err := callFramed(t, conn, r, "NoSuchCall", &hiveserver.TCLIServiceOpenSessionArgs{Req: &hiveserver.TOpenSessionReq{}}, &hiveserver.TCLIServiceOpenSessionResult{})
		var ae thrift.TApplicationException
		if !errors.As(err, &ae) || ae.TypeId() != thrift.UNKNOWN_METHOD {
			t.Errorf("unknown method: %v", err)
		}
		res := &hiveserver.TCLIServiceCloseSessionResult{}
		if err := callFramed(t, conn, r, "CloseSession", &hiveserver.TCLIServiceCloseSessionArgs{Req: &hiveserver.TCloseSessionReq{SessionHandle: resp.SessionHandle}}, res); err != nil {
			t.Fatal(err)
		}
		ok(t, res.Success.Status)
	}
}

func TestLDAPAuth(t *testing.T) {
	s := startServer(t, Config{Auth: "ldap", Users: map[string]string{"alice": "wonderland"}})
	_, _, st, msg := saslDial(t, s.Addr(), "alice", "wrong", saslOK)
	if st != saslBad || msg != "Error validating the login" {
		t.Errorf("bad password: status %d %q", st, msg)
	}
	_, _, st, _ = saslDial(t, s.Addr(), "mallory", "wonderland", saslOK)
	if st != saslBad {
		t.Errorf("unknown user: status %d", st)
	}
	c := dialRaw(t, s, dialOpts{user: "alice", password: "wonderland"})
	h := c.open(nil)
	if got := c.query(h, "SELECT current_user()"); got[0][0] != "alice" {
		t.Errorf("user %v", got)
	}
	c.closeSession(h)

	hs := startServer(t, Config{Auth: "ldap", Transport: "http", Users: map[string]string{"alice": "wonderland"}})
	resp := postThrift(t, "http://"+hs.Addr()+"/cliservice", "alice", "wrong", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("http bad password: %d", resp.StatusCode)
	}
	hc := dialRaw(t, hs, dialOpts{mode: "http", user: "alice", password: "wonderland"})
	h = hc.open(nil)
	hc.closeSession(h)
}

// postThrift POSTs an OpenSession call with Basic auth (when user != "").
func postThrift(t *testing.T, url, user, pass string, cookies []*http.Cookie) *http.Response {
	t.Helper()
	body := encodeCall(t, "OpenSession", &hiveserver.TCLIServiceOpenSessionArgs{Req: &hiveserver.TOpenSessionReq{ClientProtocol: v10}})[4:]
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-thrift")
	if user != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
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

func decodeOpenSession(t *testing.T, r io.Reader) *hiveserver.TOpenSessionResp {
	t.Helper()
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	p := thrift.NewTBinaryProtocolConf(&thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(body)}, &thrift.TConfiguration{})
	if _, _, _, err := p.ReadMessageBegin(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := &hiveserver.TCLIServiceOpenSessionResult{}
	if err := res.Read(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return res.Success
}

func TestHTTPCookieAndErrors(t *testing.T) {
	s := startServer(t, Config{Transport: "http", HTTPPath: "hs2"})
	url := "http://" + s.Addr() + "/hs2"
	resp := postThrift(t, url, "", "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no credentials: %d", resp.StatusCode)
	}
	resp = postThrift(t, url, "dave", "x", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-thrift" {
		t.Fatalf("basic: %d %v", resp.StatusCode, resp.Header)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "hive.server2.auth" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.MaxAge != 86400 || !strings.HasPrefix(cookie.Value, "cu=dave&") {
		t.Fatalf("cookie %v", resp.Header.Values("Set-Cookie"))
	}
	first := decodeOpenSession(t, resp.Body)
	ok(t, first.Status)
	// The cookie alone authenticates.
	resp = postThrift(t, url, "", "", []*http.Cookie{{Name: "hive.server2.auth", Value: cookie.Value}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cookie only: %d", resp.StatusCode)
	}
	second := decodeOpenSession(t, resp.Body)
	ok(t, second.Status)
	// A forged cookie doesn't.
	forged := strings.Replace(cookie.Value, "cu=dave", "cu=root", 1)
	if resp := postThrift(t, url, "", "", []*http.Cookie{{Name: "hive.server2.auth", Value: forged}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged cookie: %d", resp.StatusCode)
	}
	// HTTP sessions outlive connections: close them explicitly.
	c := dialRaw(t, s, dialOpts{mode: "http"})
	c.closeSession(first.SessionHandle)
	c.closeSession(second.SessionHandle)

	if resp, err := http.Get(url); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp := postThrift(t, "http://"+s.Addr()+"/other", "dave", "x", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("wrong path: %d", resp.StatusCode)
	}
	// garbage body: 500, server fine
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("not thrift at all"))
	req.SetBasicAuth("dave", "x")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("garbage body: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestGarbageClosesOnlyThatConnection: malformed input ends the offending
// connection; the process and other connections carry on.
func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	for _, auth := range []string{"none", "nosasl"} {
		t.Run(auth, func(t *testing.T) {
			s := startServer(t, Config{Auth: auth})
			mode := "sasl"
			if auth == "nosasl" {
				mode = "nosasl"
			}
			good := dialRaw(t, s, dialOpts{mode: mode})
			h := good.open(nil)
			defer good.closeSession(h)

			attacks := [][]byte{
				[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
				{0x80, 0x01, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff}, // a message name of 4 GiB
				bytes.Repeat([]byte{0xff}, 4096),
				{saslStart, 0x7f, 0xff, 0xff, 0xff}, // a 2 GiB SASL message
			}
			for _, a := range attacks {
				conn, err := net.Dial("tcp", s.Addr())
				if err != nil {
					t.Fatal(err)
				}
				_, _ = conn.Write(a)
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.Copy(io.Discard, conn); err != nil {
					t.Errorf("%x: connection not closed: %v", a[:4], err)
				}
				conn.Close()
				if got := good.query(h, "SELECT 1"); got[0][0] != "1" {
					t.Fatalf("good connection broken: %v", got)
				}
			}
		})
	}
	t.Run("oversized frame", func(t *testing.T) {
		s := startServer(t, Config{})
		conn, _, st, _ := saslDial(t, s.Addr(), "x", "y", saslOK)
		if st != saslComplete {
			t.Fatal(st)
		}
		_, _ = conn.Write([]byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3})
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Errorf("not closed: %v", err)
		}
		c := dialRaw(t, s, dialOpts{})
		c.closeSession(c.open(nil))
	})
}

// selfSigned makes a server certificate for 127.0.0.1 and a client
// config trusting it.
func selfSigned(t *testing.T) (*tls.Config, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hs2sim"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func TestTLS(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	for _, tc := range []struct{ transport, mode string }{{"binary", "sasl"}, {"http", "http"}} {
		t.Run(tc.transport, func(t *testing.T) {
			s := startServer(t, Config{Transport: tc.transport, TLS: srvTLS})
			c := dialRaw(t, s, dialOpts{mode: tc.mode, tls: cliTLS})
			h := c.open(nil)
			if got := c.query(h, "SELECT count(*) FROM employees"); got[0][0] != "6" {
				t.Errorf("got %v", got)
			}
			c.closeSession(h)
		})
	}
}
