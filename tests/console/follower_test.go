package console_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/replica"
)

// TestConsoleFailoverFromFollower: the failover button on a follower's
// console takes the ClusterService.Failover path, forwarded to the leader
// with the caller's token, with the RPC's epoch check.
func TestConsoleFailoverFromFollower(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	ctx, cancel := context.WithCancel(context.Background())
	var servers []string
	for range 2 {
		s, err := hs2sim.Start(ctx, hs2sim.Config{Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		servers = append(servers, s.Addr())
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(adminToken+" ops admin\n"+userToken+" alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var consoles []string
	dones := make([]chan error, 2)
	for i := range 2 {
		cfg := config.Default()
		cfg.Listen = "127.0.0.1:0"
		cfg.ReplicaID = []string{"f1", "f2"}[i]
		cfg.Cluster = "console-follower"
		cfg.Coordination = "etcd"
		cfg.Etcd.Endpoints = etcd.Endpoints()
		cfg.Etcd.LeaseTTL = 3 * time.Second
		cfg.Security.AuthTokenFile = tokens
		cfg.Connectors = []config.Connector{{Name: "hive", Discovery: "static", Static: servers}}
		cfg.Finish()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		alis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rep, err := replica.New(ctx, cfg, replica.Options{Listener: lis, AdminListener: alis})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rep.Shutdown) // after the cleanup below, which waits for Serve
		dones[i] = make(chan error, 1)
		go func() { dones[i] <- rep.Serve(ctx) }()
		consoles = append(consoles, "http://"+alis.Addr().String()+"/console/")
	}
	t.Cleanup(func() {
		cancel()
		for _, d := range dones {
			if err := <-d; err != nil {
				t.Errorf("replica: %v", err)
			}
		}
	})
	// Find the follower: its page names the other replica as the leader.
	var follower string
	waitFor(t, time.Minute, "a leader and a route on both consoles", func() bool {
		follower = ""
		for i, u := range consoles {
			body, code := get(t, u, "Bearer "+adminToken)
			if code != 200 || !strings.Contains(body, `class="epoch">1<`) {
				return false
			}
			self := []string{"f1", "f2"}[i]
			if strings.Contains(body, `id="leader">`) && !strings.Contains(body, `id="leader">`+self+" ") {
				follower = u
			}
		}
		return follower != ""
	})
	page, _ := get(t, follower, "Bearer "+adminToken)
	i := strings.Index(page, `name="csrf" value="`)
	if i < 0 {
		t.Fatal("no CSRF field on the follower's admin page")
	}
	csrf := page[i+len(`name="csrf" value="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	post := func(token, csrf string) (int, string) {
		form := url.Values{"connector": {"hive"}, "epoch": {"1"}, "csrf": {csrf}, "format": {"text"}}
		req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(follower, "/console/")+"/console/failover", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	if code, body := post(adminToken, csrf); code != http.StatusOK {
		t.Fatalf("failover from the follower's console: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "epoch 2 on the follower's console", func() bool {
		body, _ := get(t, follower, "Bearer "+adminToken)
		return strings.Contains(body, `class="epoch">2<`) && strings.Contains(body, "manual failover from the console by ops")
	})
	// The epoch check is the RPC's: epoch 1 is stale now.
	if code, body := post(adminToken, csrf); code != http.StatusConflict || !strings.Contains(body, "epoch") {
		t.Fatalf("stale epoch: %d %s", code, body)
	}
}
