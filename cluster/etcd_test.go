package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/routing"
)

func hiveConn(p *prober) []cluster.ConnectorConfig {
	return []cluster.ConnectorConfig{{Name: "hive", NewSelector: realSelector("hive", p, s1, s2)}}
}

// threeReplicas starts r1, r2 and r3, each with one connector "hive" that
// probes through p.
func threeReplicas(t *testing.T, endpoints []string, p *prober) []*replica {
	var rs []*replica
	for _, id := range []string{"r1", "r2", "r3"} {
		rs = append(rs, startReplica(t, id, endpoints, hiveConn(p)))
	}
	return rs
}

func TestPublishFollowTopology(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	p := newProber()
	rs := threeReplicas(t, e.Endpoints(), p)
	leader := waitLeader(t, 10*time.Second, rs...)
	waitRoute(t, 10*time.Second, "hive", s1, 1, rs...)
	got, _ := published(t, cli, "hive")
	if got.ChosenBy != leader.id || got.ChosenAt.IsZero() || !strings.Contains(got.Reason, "chose") || *got.Endpoint != s1 {
		t.Fatalf("published %+v", got)
	}

	var follower *replica
	for _, r := range rs {
		if r != leader {
			follower = r
			break
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		top := follower.node.Topology()
		if top.Cluster != clusterName || top.Coordination != "etcd" || top.Self.ID != follower.id || top.Self.Leader {
			return fmt.Errorf("topology header %+v", top)
		}
		if top.Leader == nil || top.Leader.ID != leader.id || top.Leader.Address != leader.id+".example:7443" || top.Leader.Started.IsZero() {
			return fmt.Errorf("leader %+v", top.Leader)
		}
		if len(top.Replicas) != 3 {
			return fmt.Errorf("replicas %+v", top.Replicas)
		}
		if top.Degraded {
			return fmt.Errorf("degraded: %s", top.DegradedReason)
		}
		if len(top.Connectors) != 1 {
			return fmt.Errorf("connectors %+v", top.Connectors)
		}
		c := top.Connectors[0]
		if c.Connector != "hive" || c.Epoch != 1 || *c.Endpoint != s1 {
			return fmt.Errorf("connector %+v", c.Route)
		}
		if len(c.Candidates) != 2 || !c.Candidates[0].Healthy || c.Candidates[0].Endpoint != s1 {
			return fmt.Errorf("candidates %+v", c.Candidates)
		}
		return nil
	})
	if got := follower.node.LeaderAddr(); got != leader.id+".example:7443" {
		t.Fatalf("LeaderAddr = %q", got)
	}
	if ok, why := follower.node.Health(); !ok {
		t.Fatalf("unhealthy: %s", why)
	}

	// WatchTopology: the current topology, then the change a failover makes.
	ctx, cancel := context.WithCancel(context.Background())
	watch := follower.node.WatchTopology(ctx)
	first := <-watch
	if first.Connectors[0].Epoch != 1 {
		t.Fatalf("first topology epoch %d", first.Connectors[0].Epoch)
	}
	rt, err := leader.node.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: 1, Reason: "maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Epoch != 2 || *rt.Endpoint != s2 || !rt.Drain || !strings.Contains(rt.Reason, "maintenance") {
		t.Fatalf("failover route %+v", rt)
	}
	deadline := time.After(10 * time.Second)
	for top := range watch {
		if top.Connectors[0].Epoch == 2 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("WatchTopology never showed epoch 2")
		default:
		}
	}
	cancel()
	for range watch {
	}
	waitRoute(t, 10*time.Second, "hive", s2, 2, rs...)
}

func TestFailoverErrors(t *testing.T) {
	e := testenv.StartEtcd(t)
	p := newProber()
	conns := append(hiveConn(p), cluster.ConnectorConfig{Name: "solo", NewSelector: realSelector("solo", p, s1)})
	var rs []*replica
	for _, id := range []string{"r1", "r2"} {
		rs = append(rs, startReplica(t, id, e.Endpoints(), conns))
	}
	leader := waitLeader(t, 10*time.Second, rs...)
	waitRoute(t, 10*time.Second, "hive", s1, 1, rs...)
	waitRoute(t, 10*time.Second, "solo", s1, 1, rs...)
	follower := rs[0]
	if follower == leader {
		follower = rs[1]
	}
	ctx := context.Background()

	_, err := leader.node.Failover(ctx, cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: 7, Reason: "x"})
	var em *cluster.EpochMismatchError
	if !errors.As(err, &em) || !errors.Is(err, cluster.ErrEpochMismatch) || em.Current != 1 {
		t.Fatalf("stale-epoch failover: %v", err)
	}
	_, err = follower.node.Failover(ctx, cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: 1, Reason: "x"})
	var nl *cluster.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != leader.id || nl.LeaderAddr != follower.node.LeaderAddr() || nl.LeaderAddr == "" {
		t.Fatalf("failover on follower: %v", err)
	}
	if _, err := leader.node.Failover(ctx, cluster.FailoverRequest{Connector: "nope", ExpectedEpoch: 0, Reason: "x"}); !errors.Is(err, routing.ErrUnknownConnector) {
		t.Fatalf("unknown connector: %v", err)
	}
	// No other server: the selector refuses and nothing moves.
	if _, err := leader.node.Failover(ctx, cluster.FailoverRequest{Connector: "solo", ExpectedEpoch: 1, Reason: "x"}); err == nil || !strings.Contains(err.Error(), "no other") {
		t.Fatalf("failover with no alternative: %v", err)
	}
	waitRoute(t, time.Second, "solo", s1, 1, rs...)
}

// A leadership change alone never moves traffic: the new leader adopts the
// published server (same epoch) and re-chooses only when it is unhealthy.
func TestHandoverAdoptsPublishedServer(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	p := newProber()
	rs := threeReplicas(t, e.Endpoints(), p)
	first := waitLeader(t, 10*time.Second, rs...)
	waitRoute(t, 10*time.Second, "hive", s1, 1, rs...)
	before, _ := published(t, cli, "hive")

	t0 := time.Now()
	first.stop()
	rest := slices.DeleteFunc(slices.Clone(rs), func(r *replica) bool { return r == first })
	second := waitLeader(t, 5*time.Second, rest...)
	d := time.Since(t0)
	t.Logf("handover %s -> %s in %v", first.id, second.id, d)
	if d > time.Second {
		t.Errorf("handover took %v, want < 1s", d)
	}
	// The new leader probes the adopted server and keeps it.
	testenv.Eventually(t, 10*time.Second, func() error {
		top := second.node.Topology()
		if c := top.Connectors[0]; len(c.Candidates) == 0 || c.Candidates[0].LastProbe.Before(t0) {
			return errors.New("new leader has not probed yet")
		}
		return nil
	})
	after, _ := published(t, cli, "hive")
	if after.Epoch != before.Epoch || after.ChosenBy != first.id || !after.ChosenAt.Equal(before.ChosenAt) {
		t.Fatalf("route changed on handover: %+v -> %+v", before, after)
	}
	for _, r := range rest {
		if got := r.epochs("hive"); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("%s saw epochs %v", r.id, got)
		}
	}

	// The published server is down when the next leader takes over: it
	// re-chooses.
	p.set(s1, true)
	second.stop()
	third := waitLeader(t, 5*time.Second, slices.DeleteFunc(rest, func(r *replica) bool { return r == second })...)
	waitRoute(t, 10*time.Second, "hive", s2, 2, third)
	after, _ = published(t, cli, "hive")
	if after.ChosenBy != third.id || after.Drain {
		t.Fatalf("re-chosen route %+v", after)
	}
}

// Many replicas reporting the same failure cause one failover.
func TestManyReportsOneFailover(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	p := newProber()
	rs := threeReplicas(t, e.Endpoints(), p)
	waitLeader(t, 10*time.Second, rs...)
	waitRoute(t, 10*time.Second, "hive", s1, 1, rs...)

	p.set(s1, true)
	var wg sync.WaitGroup
	for _, r := range rs {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					r.node.ReportFailure("hive", 1, s1.Addr(), errors.New("connection reset by peer"))
				}
			}()
		}
	}
	wg.Wait()
	waitRoute(t, 10*time.Second, "hive", s2, 2, rs...)
	// Reports keep coming for the old epoch from slow queries: ignored.
	for _, r := range rs {
		r.node.ReportFailure("hive", 1, s1.Addr(), errors.New("late"))
	}
	got, _ := published(t, cli, "hive")
	if got.Epoch != 2 || got.Drain {
		t.Fatalf("published %+v", got)
	}
	for _, r := range rs {
		if ep := r.epochs("hive"); !slices.Equal(ep, []uint64{1, 2}) {
			t.Fatalf("%s saw epochs %v", r.id, ep)
		}
	}
	if n := p.count(s1); n > 4 {
		t.Errorf("s1 probed %d times for %d reports; want them coalesced", n, 600)
	}
}

// A report made under an older epoch is ignored even when it names the
// server that is current again; one for the current epoch is acted on.
func TestStaleReportIgnored(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	var wa, wb fakeWorld
	conns := []cluster.ConnectorConfig{{Name: "a", NewSelector: wa.newSelector}, {Name: "b", NewSelector: wb.newSelector}}
	var rs []*replica
	for _, id := range []string{"r1", "r2"} {
		rs = append(rs, startReplica(t, id, e.Endpoints(), conns))
	}
	waitLeader(t, 10*time.Second, rs...)
	testenv.Eventually(t, 10*time.Second, func() error {
		if wa.current() == nil || wb.current() == nil {
			return errors.New("selectors not started")
		}
		return nil
	})
	ep1, ep2 := s1, s2
	wa.current().choose(&ep1, "first")
	waitRoute(t, 10*time.Second, "a", s1, 1, rs...)
	wa.current().choose(&ep2, "second")
	waitRoute(t, 10*time.Second, "a", s2, 2, rs...)
	wa.current().choose(&ep1, "back")
	waitRoute(t, 10*time.Second, "a", s1, 3, rs...)
	wb.current().choose(&ep2, "b")
	waitRoute(t, 10*time.Second, "b", s2, 1, rs...)

	// ReportFailure itself drops a report for an epoch the replica is past.
	rs[0].node.ReportFailure("a", 1, s1.Addr(), errors.New("old"))
	// A slow replica's report written before it saw epoch 2, arriving now.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stale, _ := json.Marshal(map[string]any{"epoch": 1, "server": s1.Addr(), "error": "reset", "time": time.Now()})
	if _, err := cli.Put(ctx, "/hiveqd/"+clusterName+"/reports/a/slow", string(stale)); err != nil {
		t.Fatal(err)
	}
	// A current report on b, written after: once the leader has acted on
	// it, it has seen the stale one (one ordered watch).
	rs[1].node.ReportFailure("b", 1, s2.Addr(), errors.New("reset"))
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := wb.reports(); !slices.Equal(got, []string{s2.Addr()}) {
			return fmt.Errorf("b reports %v", got)
		}
		return nil
	})
	if got := wa.reports(); len(got) != 0 {
		t.Fatalf("stale reports reached a's selector: %v", got)
	}
	rs[1].node.ReportFailure("a", 3, s1.Addr(), errors.New("reset"))
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := wa.reports(); !slices.Equal(got, []string{s1.Addr()}) {
			return fmt.Errorf("a reports %v", got)
		}
		return nil
	})
}

// No HS2: every replica fails fast with the published reason, until one
// appears and the leader publishes it.
func TestNoServerThenOne(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	p := newProber()
	p.set(s1, true)
	p.set(s2, true)
	var rs []*replica
	for _, id := range []string{"r1", "r2"} {
		rs = append(rs, startReplica(t, id, e.Endpoints(), hiveConn(p)))
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, r := range rs {
			_, err := r.node.Routes().Get("hive")
			if !errors.Is(err, routing.ErrNoRoute) {
				return fmt.Errorf("%s: %v", r.id, err)
			}
			if !strings.Contains(err.Error(), "failed health checks") || !strings.Contains(err.Error(), "connection refused") {
				return fmt.Errorf("%s: reason missing: %v", r.id, err)
			}
		}
		return nil
	})
	pub, _ := published(t, cli, "hive")
	if pub.Endpoint != nil || pub.Reason == "" {
		t.Fatalf("published %+v", pub)
	}
	p.set(s2, false)
	waitRoute(t, 10*time.Second, "hive", s2, pub.Epoch+1, rs...)
}

// etcd down: replicas keep serving the last routes and say they are
// degraded; when it returns they resynchronise and failover works again.
func TestEtcdRestartKeepsRoutes(t *testing.T) {
	e := testenv.StartEtcd(t)
	p := newProber()
	rs := threeReplicas(t, e.Endpoints(), p)
	waitLeader(t, 10*time.Second, rs...)
	waitRoute(t, 10*time.Second, "hive", s1, 1, rs...)

	e.Kill()
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, r := range rs {
			if ok, why := r.node.Health(); ok || !strings.Contains(why, "etcd unreachable") {
				return fmt.Errorf("%s health %v %q", r.id, ok, why)
			}
			if top := r.node.Topology(); !top.Degraded {
				return fmt.Errorf("%s topology not degraded", r.id)
			}
		}
		return nil
	})
	// Routes are still served, and reporting never blocks.
	waitRoute(t, time.Second, "hive", s1, 1, rs...)
	p.set(s1, true)
	for _, r := range rs {
		r.node.ReportFailure("hive", 1, s1.Addr(), errors.New("reset"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	testenv.Eventually(t, 20*time.Second, func() error {
		for _, r := range rs {
			if ok, why := r.node.Health(); !ok {
				return fmt.Errorf("%s: %s", r.id, why)
			}
		}
		return nil
	})
	t.Logf("healthy again %v after etcd restarted", time.Since(t0))
	// The reports queued during the outage reach the new leader, which
	// fails over; every replica follows.
	waitRoute(t, 20*time.Second, "hive", s2, 2, rs...)
	t.Logf("failover published %v after etcd restarted", time.Since(t0))
	for _, r := range rs {
		if ep := r.epochs("hive"); !slices.Equal(ep, []uint64{1, 2}) {
			t.Fatalf("%s saw epochs %v", r.id, ep)
		}
	}
}

// A follower cut off from etcd (blackholed) keeps its route, reports
// degraded, and catches up with what it missed once it can reach etcd.
func TestBlackholedFollowerResyncs(t *testing.T) {
	e := testenv.StartEtcd(t)
	px, err := testenv.NewProxy(e.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	p := newProber()
	leader := startReplica(t, "r1", e.Endpoints(), hiveConn(p))
	waitLeader(t, 10*time.Second, leader)
	follower := startReplica(t, "r2", []string{px.Addr()}, hiveConn(p))
	waitRoute(t, 10*time.Second, "hive", s1, 1, leader, follower)

	px.SetMode(testenv.Blackhole)
	testenv.Eventually(t, 10*time.Second, func() error {
		if ok, _ := follower.node.Health(); ok {
			return errors.New("follower still healthy")
		}
		return nil
	})
	if _, err := leader.node.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: 1, Reason: "move"}); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, 10*time.Second, "hive", s2, 2, leader)
	waitRoute(t, time.Second, "hive", s1, 1, follower)

	px.SetMode(testenv.Pass)
	waitRoute(t, 20*time.Second, "hive", s2, 2, follower)
	testenv.Eventually(t, 10*time.Second, func() error {
		if ok, why := follower.node.Health(); !ok {
			return errors.New(why)
		}
		return nil
	})
	if l := waitLeader(t, 10*time.Second, leader, follower); l != leader {
		t.Fatalf("leader moved to %s", l.id)
	}
}

// A leader cut off from etcd beyond the TTL stops leading before another
// replica starts; the new leader adopts the route (same epoch).
func TestBlackholedLeaderSteppedDown(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	px, err := testenv.NewProxy(e.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	p := newProber()
	old := startReplica(t, "r1", []string{px.Addr()}, hiveConn(p))
	waitLeader(t, 10*time.Second, old)
	waitRoute(t, 10*time.Second, "hive", s1, 1, old)
	nw := startReplica(t, "r2", e.Endpoints(), hiveConn(p))
	waitRoute(t, 10*time.Second, "hive", s1, 1, nw)

	t0 := time.Now()
	px.SetMode(testenv.Blackhole)
	testenv.Eventually(t, 10*time.Second, func() error {
		if !nw.node.IsLeader() {
			return errors.New("r2 not leading")
		}
		// Checked when r2 is first seen leading: r1 must have stopped.
		if old.node.IsLeader() {
			t.Fatal("r1 still leads while r2 leads")
		}
		return nil
	})
	t.Logf("r2 leads %v after r1 was blackholed (TTL 2s)", time.Since(t0))
	got, _ := published(t, cli, "hive")
	if got.Epoch != 1 || got.ChosenBy != "r1" {
		t.Fatalf("route moved on takeover: %+v", got)
	}
	// The deposed leader keeps serving its last route.
	waitRoute(t, time.Second, "hive", s1, 1, old)
	px.SetMode(testenv.Pass)
	if _, err := nw.node.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: 1, Reason: "move"}); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, 20*time.Second, "hive", s2, 2, old, nw)
}

// Epochs only move forward through failovers and leader changes, on every
// replica and in etcd (epochMonitor).
func TestEpochsAcrossLeaderChurn(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	p := newProber()
	live := []*replica{}
	for _, id := range []string{"r0", "r1", "r2"} {
		live = append(live, startReplica(t, id, e.Endpoints(), hiveConn(p)))
	}
	watcher := startReplica(t, "watcher", e.Endpoints(), hiveConn(p))
	all := append([]*replica{watcher}, live...)
	waitRoute(t, 10*time.Second, "hive", s1, 1, all...)
	servers := []any{s1, s2}
	epoch := uint64(1)
	for i := 0; i < 4; i++ {
		leader := waitLeader(t, 10*time.Second, append([]*replica{watcher}, live...)...)
		var r routing.Route
		testenv.Eventually(t, 10*time.Second, func() error {
			var err error
			r, err = leader.node.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: epoch, Reason: fmt.Sprint("round ", i)})
			return err
		})
		epoch++
		if r.Epoch != epoch || *r.Endpoint != servers[int(epoch-1)%2] {
			t.Fatalf("round %d: %+v", i, r)
		}
		if leader == watcher {
			continue
		}
		// Replace the leader by a fresh replica.
		leader.stop()
		live = slices.DeleteFunc(live, func(x *replica) bool { return x == leader })
		nr := startReplica(t, fmt.Sprint("n", i), e.Endpoints(), hiveConn(p))
		live = append(live, nr)
		all = append(all, nr)
	}
	for _, r := range all {
		select {
		case <-r.done:
			continue
		default:
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			if got, _ := r.route("hive"); got.Epoch != epoch {
				return fmt.Errorf("%s at epoch %d", r.id, got.Epoch)
			}
			return nil
		})
	}
	// The table runs its switch callbacks just after it changes.
	testenv.Eventually(t, 10*time.Second, func() error {
		if ep := watcher.epochs("hive"); len(ep) != int(epoch) {
			return fmt.Errorf("watcher saw %v, want 1..%d", ep, epoch)
		}
		return nil
	})
}

func TestShutdownWhileEtcdDown(t *testing.T) {
	e := testenv.StartEtcd(t)
	p := newProber()
	rs := []*replica{startReplica(t, "r1", e.Endpoints(), hiveConn(p)), startReplica(t, "r2", e.Endpoints(), hiveConn(p))}
	waitRoute(t, 10*time.Second, "hive", s1, 1, rs...)
	rs[0].node.ReportFailure("hive", 1, s1.Addr(), errors.New("x"))
	e.Kill()
	rs[1].node.ReportFailure("hive", 1, s1.Addr(), errors.New("x"))
	for _, r := range rs {
		t0 := time.Now()
		r.stop()
		t.Logf("%s stopped in %v with etcd down", r.id, time.Since(t0))
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("%s took %v to stop", r.id, d)
		}
	}
}
