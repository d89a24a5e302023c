package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// TestKerberosFlags runs the command with the Kerberos flags over HTTP and
// authenticates with SPNEGO (gokrb5's client) against a real MIT KDC.
func TestKerberosFlags(t *testing.T) {
	kdc := testenv.StartKDC(t, testenv.KDCOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	svc, err := kdc.NewPrincipal(ctx, "hive/localhost")
	if err != nil {
		t.Fatal(err)
	}
	akt, err := kdc.NewPrincipal(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "hs2sim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, "--listen", "127.0.0.1:0", "--transport", "http", "--auth", "kerberos",
		"--kerberos-principal", "hive/localhost@"+kdc.Realm(), "--kerberos-keytab", svc, "--sasl-qop", "auth-conf")
	cmd.Env = append(cmd.Environ(), kdc.Env(false)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "hs2sim listening on ") {
		t.Fatalf("stdout %q; stderr:\n%s", sc.Text(), stderr.String())
	}
	addr := strings.TrimPrefix(sc.Text(), "hs2sim listening on ")

	kt, err := keytab.Load(akt)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := config.NewFromString(kdc.Krb5ConfText())
	if err != nil {
		t.Fatal(err)
	}
	cl := client.NewWithKeytab("alice", kdc.Realm(), kt, conf, client.DisablePAFXFAST(true))
	defer cl.Destroy()
	// A CloseSession with a bogus handle: authentication is all that matters.
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/cliservice", bytes.NewReader([]byte{0x80, 0x01, 0, 1}))
	if err := spnego.SetSPNEGOHeader(cl, req, "hive/localhost"); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Set-Cookie"), "hive.server2.auth=cu=alice&") {
		t.Errorf("status %d, Set-Cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	// No token: refused with a Negotiate challenge.
	resp, err = hc.Post("http://"+addr+"/cliservice", "application/x-thrift", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Negotiate" {
		t.Errorf("no token: %d %v", resp.StatusCode, resp.Header)
	}
}
