package chaos

// Regressions for bugs the chaos suite found in other packages.

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// SIGTERM with a WatchTopology client connected: hiveqd must exit within
// shutdown_grace (2s here) plus a little, and end the watch with
// UNAVAILABLE. GracefulStop used to wait for the watch stream, which only
// ended with its context, so every graceful stop took up to grace + 5s.
func TestSIGTERMDoesNotWaitForWatchTopology(t *testing.T) {
	s := startSim(t)
	h, c := standalone(t, s.Addr, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.Cluster.WatchTopology(ctx, &hiveqv1.WatchTopologyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	start := time.Now()
	_ = h.Stop(30 * time.Second)
	took := time.Since(start)
	if took > 2*time.Second+2*time.Second {
		t.Errorf("hiveqd took %v to exit after SIGTERM with shutdown_grace 2s and no query running", took)
	}
	if err := <-ended; status.Code(err) != codes.Unavailable {
		t.Errorf("WatchTopology ended with %v, want UNAVAILABLE", err)
	}
}
