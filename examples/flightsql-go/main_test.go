package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
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

const token = "example-token-0123456789"

// TestExample runs the example against a whole hiveqd process (replica.New
// with its Flight SQL port, tokens and /metrics) on the simulator.
func TestExample(t *testing.T) {
	sim, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(token+" alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ReplicaID = "r1"
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownGrace = 2 * time.Second
	cfg.Security.AuthTokenFile = tokens
	cfg.Connectors = []config.Connector{{Name: "hive", Discovery: "static", Static: []string{sim.Addr()}}}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	flis, mlis := listen(), listen()
	ctx, cancel := context.WithCancel(context.Background())
	rep, err := replica.New(ctx, cfg, replica.Options{Listener: listen(), FlightSQLListener: flis, MetricsListener: mlis, Version: "example"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rep.Serve(ctx) }()
	defer func() {
		cancel()
		err := <-done
		rep.Shutdown()
		if err != nil {
			t.Errorf("replica: %v", err)
		}
	}()
	addr := flis.Addr().String()
	var out, errOut bytes.Buffer
	// The replica routes once it has probed the simulator.
	testenv.Eventually(t, 30*time.Second, func() error {
		out.Reset()
		errOut.Reset()
		if run(ctx, []string{"-addr", addr, "-token", token, "SELECT id, name, salary, hired FROM default.employees"}, &out, &errOut) != 0 {
			return errFrom(errOut.String())
		}
		return nil
	})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 7 || lines[0] != "id:int32\tname:utf8\tsalary:decimal(10, 2)\thired:date32" ||
		lines[1] != "1\tAlice\t120000\t2019-03-01" && lines[1] != "1\tAlice\t120000.00\t2019-03-01" {
		t.Fatalf("output:\n%s", out.String())
	}
	// Basic handshake: any user, the token as password.
	out.Reset()
	if code := run(ctx, []string{"-addr", addr, "-user", "bob", "-token", token, "SELECT 1"}, &out, &errOut); code != 0 {
		t.Fatalf("Basic: %s", errOut.String())
	}
	// No token: refused.
	errOut.Reset()
	if code := run(ctx, []string{"-addr", addr, "-token", "", "SELECT 1"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "Unauthenticated") {
		t.Fatalf("no token: %d %s", code, errOut.String())
	}
	// The query counts under the flightsql front-end.
	resp, err := http.Get("http://" + mlis.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `hiveqd_queries_total{connector="hive",frontend="flightsql",outcome="OK"}`) &&
			!strings.HasSuffix(sc.Text(), " 0") {
			found = true
		}
	}
	if !found {
		t.Fatal("no hiveqd_queries_total for the flightsql front-end")
	}
}

type errFrom string

func (e errFrom) Error() string { return string(e) }
