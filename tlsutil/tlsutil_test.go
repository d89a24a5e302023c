package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// handshake runs a TLS handshake over loopback TCP and returns the
// certificate the server presented and the client certificate it verified
// (nil when none), or the first error of either side. The server writes a
// byte after its handshake so a client refused late (TLS 1.3 verifies the
// client certificate after the client's handshake returns) sees the error.
func handshake(t *testing.T, server, client *tls.Config) (serverCert, clientCert *x509.Certificate, err error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		peer *x509.Certificate
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		var peer *x509.Certificate
		if chains := tc.ConnectionState().VerifiedChains; len(chains) > 0 {
			peer = chains[0][0]
		}
		_, err = tc.Write([]byte{1})
		done <- result{peer, err}
	}()
	conn, cerr := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), client)
	if cerr == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		serverCert = conn.ConnectionState().PeerCertificates[0]
		_, cerr = conn.Read(make([]byte, 1))
		conn.Close()
	}
	r := <-done
	if r.err != nil {
		return nil, nil, r.err
	}
	return serverCert, r.peer, cerr
}

func TestHandshakes(t *testing.T) {
	dir := t.TempDir()
	pki, err := GenerateTestPKI(dir, "hiveqd.example")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := pki.IssueClient("alice")
	if err != nil {
		t.Fatal(err)
	}
	spiffe, err := pki.IssueClient("", "spiffe://hiveq/ns/default/sa/etl")
	if err != nil {
		t.Fatal(err)
	}
	mtls, err := ServerConfig(pki.Server.CertFile, pki.Server.KeyFile, pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ServerConfig(pki.Server.CertFile, pki.Server.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		server     *tls.Config
		ca         string
		client     KeyPair
		serverName string
		wantErr    string // substring; "" = success
		wantCN     string // verified client CommonName
		wantURI    string
	}{
		{name: "mtls trusted client", server: mtls, ca: pki.CAFile, client: alice, wantCN: "alice"},
		{name: "mtls default client", server: mtls, ca: pki.CAFile, client: pki.Client, wantCN: "client"},
		{name: "mtls SAN-only client", server: mtls, ca: pki.CAFile, client: spiffe, wantURI: "spiffe://hiveq/ns/default/sa/etl"},
		{name: "mtls extra host name", server: mtls, ca: pki.CAFile, client: alice, serverName: "hiveqd.example", wantCN: "alice"},
		{name: "mtls no client cert", server: mtls, ca: pki.CAFile, wantErr: "certificate"},
		{name: "mtls untrusted client", server: mtls, ca: pki.CAFile, client: pki.UntrustedClient, wantErr: "certificate"},
		{name: "server not trusted by client", server: mtls, ca: pki.UntrustedCAFile, client: alice, wantErr: "certificate"},
		{name: "wrong server name", server: plain, ca: pki.CAFile, serverName: "elsewhere.example", wantErr: "certificate"},
		{name: "tls without client auth", server: plain, ca: pki.CAFile},
		{name: "tls ignores offered client cert", server: plain, ca: pki.CAFile, client: alice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := ClientConfig(tc.ca, tc.client.CertFile, tc.client.KeyFile, tc.serverName)
			if err != nil {
				t.Fatal(err)
			}
			_, peer, err := handshake(t, tc.server, cc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			switch {
			case tc.wantCN != "" && (peer == nil || peer.Subject.CommonName != tc.wantCN):
				t.Fatalf("verified client = %v, want CN %q", peer, tc.wantCN)
			case tc.wantURI != "" && (peer == nil || len(peer.URIs) == 0 || peer.URIs[0].String() != tc.wantURI):
				t.Fatalf("verified client = %v, want URI %q", peer, tc.wantURI)
			case tc.wantCN == "" && tc.wantURI == "" && peer != nil:
				t.Fatalf("server verified a client certificate it did not ask for: %v", peer.Subject)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	pki, err := GenerateTestPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	server := func(c, k, ca string) func() error {
		return func() error { _, err := ServerConfig(c, k, ca); return err }
	}
	client := func(ca, c, k string) func() error {
		return func() error { _, err := ClientConfig(ca, c, k, ""); return err }
	}
	tests := []struct {
		name    string
		build   func() error
		wantErr string
	}{
		{"server ok", server(pki.Server.CertFile, pki.Server.KeyFile, pki.CAFile), ""},
		{"server no files", server("", "", ""), "both required"},
		{"server missing cert", server(missing, pki.Server.KeyFile, ""), "no such file"},
		{"server missing key", server(pki.Server.CertFile, missing, ""), "no such file"},
		{"server mismatched pair", server(pki.Server.CertFile, pki.Client.KeyFile, ""), "private key does not match"},
		{"server garbage cert", server(garbage, pki.Server.KeyFile, ""), "key pair"},
		{"server garbage CA", server(pki.Server.CertFile, pki.Server.KeyFile, garbage), "no PEM certificates"},
		{"server missing CA", server(pki.Server.CertFile, pki.Server.KeyFile, missing), "no such file"},
		{"client ok system roots", client("", "", ""), ""},
		{"client ok with cert", client(pki.CAFile, pki.Client.CertFile, pki.Client.KeyFile), ""},
		{"client cert without key", client(pki.CAFile, pki.Client.CertFile, ""), "together"},
		{"client key without cert", client(pki.CAFile, "", pki.Client.KeyFile), "together"},
		{"client garbage CA", client(garbage, "", ""), "no PEM certificates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.build()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}

func TestServerCertificateReloadsAfterRotation(t *testing.T) {
	pki, err := GenerateTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ServerConfig(pki.Server.CertFile, pki.Server.KeyFile, pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfig(pki.CAFile, pki.Client.CertFile, pki.Client.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := handshake(t, srv, cli)
	if err != nil {
		t.Fatal(err)
	}

	// Half-way through a rotation the key is new and the certificate old:
	// the previous pair keeps serving.
	next, err := pki.IssueServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next.KeyFile, pki.Server.KeyFile); err != nil {
		t.Fatal(err)
	}
	mid, _, err := handshake(t, srv, cli)
	if err != nil {
		t.Fatalf("handshake during rotation: %v", err)
	}
	if mid.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("a mismatched pair replaced the served certificate")
	}
	if err := os.Rename(next.CertFile, pki.Server.CertFile); err != nil {
		t.Fatal(err)
	}
	after, _, err := handshake(t, srv, cli)
	if err != nil {
		t.Fatal(err)
	}
	if after.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("rotated certificate not served")
	}

	// RotateServer does the same in one step.
	if err := pki.RotateServer(); err != nil {
		t.Fatal(err)
	}
	again, _, err := handshake(t, srv, cli)
	if err != nil {
		t.Fatal(err)
	}
	if again.SerialNumber.Cmp(after.SerialNumber) == 0 {
		t.Fatal("second rotation not served")
	}

	// Files that vanish keep the last good pair serving.
	if err := os.Remove(pki.Server.CertFile); err != nil {
		t.Fatal(err)
	}
	gone, _, err := handshake(t, srv, cli)
	if err != nil || gone.SerialNumber.Cmp(again.SerialNumber) != 0 {
		t.Fatalf("after the files vanished: %v", err)
	}
}

func TestClientCertificateReloads(t *testing.T) {
	pki, err := GenerateTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ServerConfig(pki.Server.CertFile, pki.Server.KeyFile, pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfig(pki.CAFile, pki.Client.CertFile, pki.Client.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := pki.IssueClient("bob")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{{bob.KeyFile, pki.Client.KeyFile}, {bob.CertFile, pki.Client.CertFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	_, peer, err := handshake(t, srv, cli)
	if err != nil {
		t.Fatal(err)
	}
	if peer == nil || peer.Subject.CommonName != "bob" {
		t.Fatalf("server saw %v, want the rotated client certificate bob", peer)
	}
}

func TestChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write := func(s string) os.FileInfo {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	a := write("one")
	if changed(a, a) {
		t.Fatal("same info reported as changed")
	}
	b := write("three") // size differs even if the clock did not tick
	if !changed(a, b) {
		t.Fatal("size change not seen")
	}
	write("three")
	if err := os.Chtimes(path, time.Time{}, b.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !changed(b, c) {
		t.Fatal("mtime change not seen")
	}
}
