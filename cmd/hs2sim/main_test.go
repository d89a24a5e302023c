package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beltran/gohive"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestProcess builds the command, starts it, uses it through gohive and the
// control endpoint, and stops it with SIGTERM.
func TestProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hs2sim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--auth", "ldap", "--users", "ann:pw,bo:pw2", "--version", "3.1.2")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for range lines {
		}
		<-exited
	})
	next := func(prefix string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok || !strings.HasPrefix(l, prefix) {
				t.Fatalf("stdout %q, want %q...; stderr:\n%s", l, prefix, stderr.String())
			}
			return strings.TrimPrefix(l, prefix)
		case <-time.After(30 * time.Second):
			t.Fatalf("no %q line; stderr:\n%s", prefix, stderr.String())
		}
		return ""
	}
	addr := next("hs2sim listening on ")
	ctl := next("hs2sim control on ")

	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	cfg := gohive.NewConnectConfiguration()
	cfg.Username, cfg.Password = "ann", "pw"
	conn, err := gohive.Connect(host, port, "LDAP", cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	cur := conn.Cursor()
	ctx := context.Background()
	cur.Exec(ctx, "SELECT count(*) FROM sales.orders")
	var n int64
	if cur.FetchOne(ctx, &n); cur.Err != nil || n != 8 {
		t.Errorf("count %d %v", n, cur.Err)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var st struct {
		OpenSessions   int   `json:"open_sessions"`
		SessionsOpened int64 `json:"sessions_opened"`
	}
	resp, err := client.Get("http://" + ctl + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.OpenSessions != 1 || st.SessionsOpened != 1 {
		t.Errorf("stats %+v %v", st, err)
	}
	resp.Body.Close()
	resp, err = client.Post("http://"+ctl+"/fault/fail?on=true", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fault: %v %v", resp, err)
	}
	resp.Body.Close()
	cur.Exec(ctx, "SELECT 1")
	if cur.Err == nil || !strings.Contains(cur.Err.Error(), "return code 2") {
		t.Errorf("failing query: %v", cur.Err)
	}
	cur.Close()
	conn.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
		exited <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still listening after SIGTERM")
	}
}

func TestFlags(t *testing.T) {
	var out, errOut strings.Builder
	for _, args := range [][]string{{"--users", "nocolon"}, {"--auth", "kerberos", "--listen", "127.0.0.1:0"}, {"--log-level", "loud"}, {"--nope"}} {
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
