package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/routing"
)

func TestStandalone(t *testing.T) {
	p := newProber()
	table := routing.NewTable()
	var mu sync.Mutex
	var epochs []uint64
	table.OnSwitch(func(_, nw *routing.Route) {
		mu.Lock()
		epochs = append(epochs, nw.Epoch)
		mu.Unlock()
	})
	var c cluster.Coordinator
	s, err := cluster.NewStandalone(cluster.StandaloneConfig{
		ReplicaID: "solo", Address: "solo:7443", Connectors: hiveConn(p), Table: table, Logger: logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	c = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	route := func() (routing.Route, error) {
		cur, err := c.Routes().Get("hive")
		if err != nil {
			return routing.Route{}, err
		}
		return cur.Route, nil
	}
	want := func(ep any, epoch uint64) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, func() error {
			r, err := route()
			if err != nil {
				return err
			}
			if *r.Endpoint != ep || r.Epoch != epoch {
				return fmt.Errorf("route %v epoch %d", r.Endpoint, r.Epoch)
			}
			return nil
		})
	}
	want(s1, 1)
	top := c.Topology()
	if top.Coordination != "standalone" || top.Leader == nil || top.Leader.ID != "solo" || len(top.Replicas) != 1 ||
		len(top.Connectors) != 1 || len(top.Connectors[0].Candidates) != 2 || top.Degraded {
		t.Fatalf("topology %+v", top)
	}
	if ok, _ := c.Health(); !ok || c.LeaderAddr() != "solo:7443" {
		t.Fatal("health/leader addr")
	}

	// A report for an old epoch does nothing; a current one fails over once.
	p.set(s1, true)
	c.ReportFailure("hive", 0, s1.Addr(), errors.New("old"))
	for i := 0; i < 100; i++ {
		c.ReportFailure("hive", 1, s1.Addr(), errors.New("reset"))
	}
	want(s2, 2)

	_, err = c.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: 1, Reason: "x"})
	if !errors.Is(err, cluster.ErrEpochMismatch) {
		t.Fatalf("stale failover: %v", err)
	}
	p.set(s1, false)
	// s1 is held down for the cooldown after failing; retry until the
	// selector accepts it.
	var r routing.Route
	testenv.Eventually(t, 10*time.Second, func() error {
		r, err = c.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: 2, Reason: "back"})
		return err
	})
	if *r.Endpoint != s1 || r.Epoch != 3 || !r.Drain {
		t.Fatalf("failover route %+v", r)
	}
	// OnSwitch runs after the table has the route (which Failover waits
	// for), so the last epoch may land a moment after Failover returns.
	testenv.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(epochs, []uint64{1, 2, 3}) {
			return fmt.Errorf("epochs %v", epochs)
		}
		return nil
	})
}

// Standalone: a crash (refused) ends running queries (Lost), a manual
// failover drains by default and aborts only when asked.
func TestStandaloneDeadVersusDrain(t *testing.T) {
	p := newProber()
	s, err := cluster.NewStandalone(cluster.StandaloneConfig{ReplicaID: "solo", Connectors: hiveConn(p), Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	cur := func() *routing.Current {
		var c *routing.Current
		testenv.Eventually(t, 10*time.Second, func() error {
			var err error
			c, err = s.Routes().Get("hive")
			return err
		})
		return c
	}
	lost := func(c *routing.Current) bool {
		select {
		case <-c.Lost():
			return true
		default:
			return false
		}
	}
	c1 := cur()
	r, err := s.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", Reason: "patch"})
	if err != nil || !r.Drain || r.PrevDead {
		t.Fatalf("drained failover: %+v %v", r, err)
	}
	if lost(c1) {
		t.Fatal("a drain ended running queries")
	}
	c2 := cur()
	testenv.Eventually(t, 10*time.Second, func() error {
		r, err = s.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", Reason: "kill", AbortRunning: true})
		return err
	})
	if !r.PrevDead || !lost(c2) {
		t.Fatalf("aborting failover: %+v, lost %v", r, lost(c2))
	}
	c3 := cur()
	p.set(*c3.Endpoint, true)
	s.ReportFailure("hive", c3.Epoch, c3.Endpoint.Addr(), errRefusedSys)
	testenv.Eventually(t, 10*time.Second, func() error {
		if !lost(c3) {
			return errors.New("a crashed server's queries are not lost")
		}
		return nil
	})
}
