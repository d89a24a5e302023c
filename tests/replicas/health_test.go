package replicas

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// defaultProbes leaves the probe settings at hiveqd's defaults.
func defaultProbes(c *harness.ReplicaConfig) {
	c.ProbeInterval, c.ProbeTimeout, c.ProbeFailures, c.Cooldown = 0, 0, 0, 0
}

func healthOf(c *harness.Client) healthpb.HealthCheckResponse_ServingStatus {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(c.Conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return r.GetStatus()
}

// waitHealth waits until every client reports want and returns how long
// after since the last one did.
func waitHealth(t *testing.T, timeout time.Duration, since time.Time, want healthpb.HealthCheckResponse_ServingStatus, cs ...*harness.Client) time.Duration {
	t.Helper()
	var took time.Duration
	testenv.Eventually(t, timeout, func() error {
		for _, c := range cs {
			if got := healthOf(c); got != want {
				return fmt.Errorf("%s health %v, want %v", c.Addr, got, want)
			}
		}
		took = time.Since(since)
		return nil
	})
	return took
}

// connState is the connector's published state as c sees it.
func connState(t *testing.T, c *harness.Client) *hiveqv1.ConnectorState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	top, err := c.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return harness.ConnectorState(top, connector)
}

// TestLoneHungHS2 (issue 11): the only HS2 hangs. With default probe
// settings "none" is published: every replica's health turns NOT_SERVING
// and a new query fails UNAVAILABLE at once; when it answers again,
// SERVING returns.
func TestLoneHungHS2(t *testing.T) {
	e := start(t, setup{sims: 1}, defaultProbes)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitHealth(t, 10*time.Second, time.Now(), healthpb.HealthCheckResponse_SERVING, e.clients...)
	hung := time.Now()
	if err := e.sims[0].Fault(ctx, "hang"); err != nil {
		t.Fatal(err)
	}
	took := waitHealth(t, 20*time.Second, hung, healthpb.HealthCheckResponse_NOT_SERVING, e.clients...)
	t.Logf("hang -> NOT_SERVING on every replica: %v", took.Round(time.Millisecond))
	if cs := connState(t, e.clients[1]); cs.GetServer() != nil || !cs.GetDrain() || cs.GetPrevDead() {
		t.Errorf("route after the hang: %v", cs)
	}
	r := query(t, e.clients[1], 10*time.Second, "SELECT 1")
	if code, info := harness.ErrorInfo(r.Err); code != codes.Unavailable || info.GetReason() != "NO_HS2_AVAILABLE" {
		t.Errorf("query on a follower: %v (reason %q), want UNAVAILABLE NO_HS2_AVAILABLE", r.Err, info.GetReason())
	}
	if d := r.Finished.Sub(r.Started); d > 3*time.Second {
		t.Errorf("query took %v to fail", d)
	}
	healed := time.Now()
	if err := e.sims[0].Fault(ctx, "heal"); err != nil {
		t.Fatal(err)
	}
	took = waitHealth(t, 20*time.Second, healed, healthpb.HealthCheckResponse_SERVING, e.clients...)
	t.Logf("heal -> SERVING on every replica: %v", took.Round(time.Millisecond))
	mustQuery(t, e.clients[2], "SELECT 1")
}

// pacedQuery starts a read of n paced rows on c and returns its result
// channel once the first batch arrived.
func pacedQuery(t *testing.T, ctx context.Context, c *harness.Client, n int) <-chan harness.Result {
	t.Helper()
	first := make(chan struct{})
	done := make(chan harness.Result, 1)
	go func() {
		var once sync.Once
		done <- c.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: fmt.Sprintf("SELECT * FROM synth.rows_%d", n), FetchSize: 500},
			func(*hiveqv1.RowBatch) error { once.Do(func() { close(first) }); return nil }, nil)
	}()
	select {
	case <-first:
	case r := <-done:
		t.Fatalf("stream ended before its first batch: %v", r.Err)
	}
	return done
}

// TestLastHS2GracefulStop (issue 11): the last HS2 deregisters and keeps
// serving (HS2's graceful stop): "none" is published as a drain, and a
// query running on a follower finishes.
func TestLastHS2GracefulStop(t *testing.T) {
	e := start(t, setup{sims: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.sims[0].Pace(ctx, 4000, 0); err != nil {
		t.Fatal(err)
	}
	done := pacedQuery(t, ctx, e.clients[1], 12000)
	if err := e.sims[0].Fault(ctx, "deregister"); err != nil {
		t.Fatal(err)
	}
	e.agreed(15*time.Second, e.clients, func(r harness.Route, _ string) error {
		if r.Server != "" {
			return fmt.Errorf("still routed to %s", r.Server)
		}
		return nil
	})
	if cs := connState(t, e.clients[1]); !cs.GetDrain() || cs.GetPrevDead() {
		t.Errorf("route after the graceful stop: %v", cs)
	}
	r := <-done
	if r.Err != nil || r.Last.GetState() != hiveqv1.QueryState_QUERY_STATE_FINISHED {
		t.Fatalf("the running query did not finish on the draining server: %v (last %v)", r.Err, r.Last.GetState())
	}
}

// TestManualFailoverDrainsOrAborts (issue 11): a manual failover, asked on
// a follower, drains by default (a query running there finishes) and, with
// abort_running, declares the old server dead (a query running there ends
// ABORTED). A crash (refused) is declared dead too.
func TestManualFailoverDrainsOrAborts(t *testing.T) {
	e := start(t, setup{sims: 2}, func(c *harness.ReplicaConfig) { c.Cooldown = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, s := range e.sims {
		if err := s.Pace(ctx, 4000, 0); err != nil {
			t.Fatal(err)
		}
	}
	admin := hiveqv1.NewClusterServiceClient(e.clients[1].Conn)

	done := pacedQuery(t, ctx, e.clients[1], 12000)
	resp, err := admin.Failover(ctx, &hiveqv1.FailoverRequest{Connector: connector, Reason: "patching"})
	if err != nil {
		t.Fatal(err)
	}
	if cs := resp.GetConnector(); harness.ServerAddr(cs.GetServer()) != e.sims[1].Addr || !cs.GetDrain() || cs.GetPrevDead() {
		t.Fatalf("drained failover: %v", cs)
	}
	r := <-done
	if r.Err != nil || r.Server() != e.sims[0].Addr {
		t.Fatalf("a query on the drained server: %v on %s", r.Err, r.Server())
	}

	done = pacedQuery(t, ctx, e.clients[1], 80000) // 20s, unless aborted
	var aborted *hiveqv1.ConnectorState
	testenv.Eventually(t, 15*time.Second, func() error { // the old server's cooldown must end first
		resp, err := admin.Failover(ctx, &hiveqv1.FailoverRequest{Connector: connector, Reason: "kill", AbortRunning: true})
		aborted = resp.GetConnector()
		return err
	})
	if harness.ServerAddr(aborted.GetServer()) != e.sims[0].Addr || aborted.GetDrain() || !aborted.GetPrevDead() {
		t.Fatalf("aborting failover: %v", aborted)
	}
	r = <-done
	if code := r.Code(); code != codes.Aborted {
		t.Fatalf("a query on the aborted server: %v, want ABORTED", r.Err)
	}

	if err := e.sims[0].Fault(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	e.agreed(40*time.Second, e.clients, func(r harness.Route, _ string) error {
		if r.Server == e.sims[0].Addr {
			return fmt.Errorf("still routed to the crashed %s", r.Server)
		}
		return nil
	})
	if cs := connState(t, e.clients[2]); !cs.GetPrevDead() {
		t.Errorf("route after a crash: %v", cs)
	}
}
