package replica_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/replica"
)

func lifecycleConfig(t *testing.T, servers []string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.ReplicaID = "r1"
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownGrace = time.Second
	cfg.Connectors = []config.Connector{{Name: "hive", Discovery: "static", Static: servers}}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestLifecycle covers New, Serve and Shutdown apart: a replica that never
// served releases its ports; Shutdown from another goroutine ends Serve;
// Serve after Shutdown refuses; Shutdown twice is harmless; and a failed
// New leaves nothing bound (goleak checks the goroutines at the end).
func TestLifecycle(t *testing.T) {
	sim := startSim(t)
	cfg := lifecycleConfig(t, []string{sim.Addr()})

	t.Run("never served", func(t *testing.T) {
		lis := listen(t)
		addr := lis.Addr().String()
		r, err := replica.New(context.Background(), cfg, replica.Options{Listener: lis})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Shutdown) // (Shutdown is idempotent) also when a check below fails
		if r.Addr() != addr {
			t.Fatalf("Addr %q, want %q", r.Addr(), addr)
		}
		r.Shutdown()
		r.Shutdown()
		l2, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the port stayed bound after Shutdown: %v", err)
		}
		l2.Close()
		if err := r.Serve(context.Background()); !errors.Is(err, replica.ErrShutdown) {
			t.Fatalf("Serve after Shutdown: %v, want ErrShutdown", err)
		}
	})

	t.Run("shutdown ends serve", func(t *testing.T) {
		ready := &readyWriter{ch: make(chan struct{})}
		r, err := replica.New(context.Background(), cfg, replica.Options{Listener: listen(t), Ready: ready})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Shutdown) // (Shutdown is idempotent) also when a check below fails
		done := make(chan error, 1)
		go func() { done <- r.Serve(context.Background()) }()
		select {
		case <-ready.ch:
		case <-time.After(waitFor):
			t.Fatal("replica not ready")
		}
		r.Shutdown()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(waitFor):
			t.Fatal("Serve did not return after Shutdown")
		}
	})

	t.Run("failed New releases", func(t *testing.T) {
		bad := cfg
		bad.Security.AuthTokenFile = "/nonexistent/tokens"
		lis := listen(t)
		addr := lis.Addr().String()
		_, err := replica.New(context.Background(), bad, replica.Options{Listener: lis})
		if err == nil || !strings.Contains(err.Error(), "security") {
			t.Fatalf("New with a missing token file: %v", err)
		}
		l2, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the port stayed bound after a failed New: %v", err)
		}
		l2.Close()
	})
}
