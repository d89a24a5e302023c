package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/metrics"
	"github.com/hiveqd/hiveqd/routing"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A failure report already in etcd when a term starts is acted on once the
// connector is ready, not consumed (and dropped for good) while its
// selector is still starting (issue 12, item 4).
func TestReportAtTermStartActedOn(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep := s1
	route, _ := json.Marshal(routing.Route{Connector: "a", Epoch: 1, Endpoint: &ep, Reason: "earlier term", ChosenBy: "old", ChosenAt: time.Now()})
	report, _ := json.Marshal(map[string]any{"epoch": 1, "server": s1.Addr(), "error": "reset", "time": time.Now()})
	for k, v := range map[string]string{"connectors/a": string(route), "reports/a/r9": string(report)} {
		if _, err := cli.Put(ctx, "/hiveqd/"+clusterName+"/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	// A selector that takes a while to construct (as one that dials
	// ZooKeeper does): the report watch starts meanwhile.
	var w fakeWorld
	slow := func() cluster.Selector {
		time.Sleep(300 * time.Millisecond)
		return w.newSelector()
	}
	r := startReplica(t, "r1", e.Endpoints(), []cluster.ConnectorConfig{{Name: "a", NewSelector: slow}})
	waitLeader(t, 10*time.Second, r)
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := w.reports(); !slices.Equal(got, []string{s1.Addr()}) {
			return fmt.Errorf("selector got reports %v, want [%s]", got, s1.Addr())
		}
		return nil
	})
}

func startFake(t *testing.T, w *fakeWorld, endpoints []string, ids ...string) []*replica {
	t.Helper()
	var rs []*replica
	for _, id := range ids {
		rs = append(rs, startReplica(t, id, endpoints, []cluster.ConnectorConfig{{Name: "a", NewSelector: w.newSelector}}))
	}
	waitLeader(t, 10*time.Second, rs...)
	testenv.Eventually(t, 10*time.Second, func() error {
		if w.current() == nil {
			return errors.New("selector not started")
		}
		return nil
	})
	return rs
}

// A connector key deleted mid-term is republished at once, above the
// epoch replicas hold, and every replica follows it (issue 12, item 6).
func TestDeletedRouteRepublished(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	var w fakeWorld
	rs := startFake(t, &w, e.Endpoints(), "r1", "r2")
	ep1, ep2 := s1, s2
	w.current().choose(&ep1, "first")
	waitRoute(t, 10*time.Second, "a", s1, 1, rs...)
	w.current().choose(&ep2, "second")
	waitRoute(t, 10*time.Second, "a", s2, 2, rs...)

	deleteRouteWaitRepublish(t, cli, s2, 3, rs...)
}

// deleteRouteWaitRepublish deletes connector "a"'s published route and
// waits until the leader republishes ep at epoch and every replica in rs
// routes to it.
func deleteRouteWaitRepublish(t *testing.T, cli *clientv3.Client, ep hs2.Endpoint, epoch uint64, rs ...*replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, "/hiveqd/"+clusterName+"/connectors/a"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		r, ok := published(t, cli, "a")
		if !ok || r.Epoch != epoch || r.Endpoint == nil || *r.Endpoint != ep {
			return fmt.Errorf("published %+v (present %v), want %v at epoch %d", r, ok, ep, epoch)
		}
		return nil
	})
	waitRoute(t, 10*time.Second, "a", ep, epoch, rs...)
}

// A fresh leader never publishes below the epochs replicas hold, and a
// route that goes back below them (an etcd restore from an older
// snapshot) is republished above them (issue 12, item 6).
func TestEpochFloorFromReplicas(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A replica that holds epoch 7 of a route etcd has lost.
	held, _ := json.Marshal(cluster.Replica{ID: "r9", Address: "r9:1", Epochs: map[string]uint64{"a": 7}})
	if _, err := cli.Put(ctx, "/hiveqd/"+clusterName+"/replicas/r9", string(held)); err != nil {
		t.Fatal(err)
	}
	var w fakeWorld
	rs := startFake(t, &w, e.Endpoints(), "r1", "r2")
	ep1 := s1
	w.current().choose(&ep1, "first")
	waitRoute(t, 10*time.Second, "a", s1, 8, rs...)

	// Every replica registers the epoch it holds.
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, r := range rs {
			resp, err := cli.Get(ctx, "/hiveqd/"+clusterName+"/replicas/"+r.id)
			if err != nil {
				return err
			}
			var got cluster.Replica
			if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &got) != nil || got.Epochs["a"] != 8 {
				return fmt.Errorf("%s registered %v", r.id, got.Epochs)
			}
		}
		return nil
	})
}

// A route restored from an older snapshot (a lower epoch, same server) is
// republished above what replicas hold (issue 12, item 6).
func TestRestoredOlderRouteRepublished(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	var w fakeWorld
	rs := startFake(t, &w, e.Endpoints(), "r1", "r2")
	ep1, ep2 := s1, s2
	w.current().choose(&ep1, "first")
	waitRoute(t, 10*time.Second, "a", s1, 1, rs...)
	w.current().choose(&ep2, "second")
	waitRoute(t, 10*time.Second, "a", s2, 2, rs...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old, _ := json.Marshal(routing.Route{Connector: "a", Epoch: 1, Endpoint: &ep2, Reason: "restored", ChosenAt: time.Now()})
	if _, err := cli.Put(ctx, "/hiveqd/"+clusterName+"/connectors/a", string(old)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		r, ok := published(t, cli, "a")
		if !ok || r.Epoch != 3 || r.Endpoint == nil || *r.Endpoint != s2 {
			return fmt.Errorf("published %+v (present %v), want s2 at epoch 3", r, ok)
		}
		return nil
	})
	waitRoute(t, 10*time.Second, "a", s2, 3, rs...)
}

// A follower whose etcd link is blackholed while the leader fails over
// shows a stale view in Topology and ViewConfirmedAt meanwhile, and
// converges within 2s once the link heals (issue 12, item 5).
func TestBlackholedFollowerShowsStaleAndConverges(t *testing.T) {
	e := testenv.StartEtcd(t)
	px, err := testenv.NewProxy(e.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	p := newProber()
	fast := func(c *cluster.EtcdConfig) { c.ProgressInterval = 200 * time.Millisecond }
	leader := startReplica(t, "r1", e.Endpoints(), hiveConn(p), fast)
	waitLeader(t, 10*time.Second, leader)
	var logs logBuffer
	follower := startReplica(t, "r2", []string{px.Addr()}, hiveConn(p), fast, func(c *cluster.EtcdConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	m := metrics.New(metrics.Config{})
	m.Watch(metrics.Sources{Coordinator: follower.node})
	waitRoute(t, 10*time.Second, "hive", s1, 1, leader, follower)
	testenv.Eventually(t, 10*time.Second, func() error {
		if top := follower.node.Topology(); top.ViewStale || top.Degraded {
			return fmt.Errorf("follower view stale %v, degraded %q", top.ViewStale, top.DegradedReason)
		}
		return nil
	})

	px.SetMode(testenv.Blackhole)
	if _, err := leader.node.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", ExpectedEpoch: 1, Reason: "move"}); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, 10*time.Second, "hive", s2, 2, leader)
	testenv.Eventually(t, 10*time.Second, func() error {
		top := follower.node.Topology()
		if !top.ViewStale || !top.Degraded {
			return fmt.Errorf("follower view stale %v, degraded %v", top.ViewStale, top.Degraded)
		}
		if age := time.Since(follower.node.ViewConfirmedAt()); age < time.Second {
			return fmt.Errorf("view age %v", age)
		}
		if age, ok := viewAge(t, m); !ok || age < 1 {
			return fmt.Errorf("hiveqd_view_age_seconds %v (present %v), want at least 1", age, ok)
		}
		if !strings.Contains(logs.String(), "view of etcd not confirmed") {
			return fmt.Errorf("no log line says the view is stale; follower log:\n%s", logs.String())
		}
		return nil
	})
	if got, _ := follower.route("hive"); got.Epoch != 1 {
		t.Fatalf("follower at epoch %d while blackholed", got.Epoch)
	}

	px.SetMode(testenv.Pass)
	healed := time.Now()
	waitRoute(t, 10*time.Second, "hive", s2, 2, follower)
	d := time.Since(healed)
	t.Logf("follower converged %v after the link healed", d)
	if d > 2*time.Second {
		t.Errorf("follower converged %v after the link healed, want within 2s", d)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if top := follower.node.Topology(); top.ViewStale {
			return errors.New("follower view still stale")
		}
		if age, ok := viewAge(t, m); !ok || age > 1 {
			return fmt.Errorf("hiveqd_view_age_seconds %v (present %v), want under 1", age, ok)
		}
		if !strings.Contains(logs.String(), "view of etcd confirmed current again") {
			return errors.New("no log line says the view is current again")
		}
		return nil
	})
}

// logBuffer collects a replica's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// viewAge scrapes hiveqd_view_age_seconds.
func viewAge(t *testing.T, m *metrics.Metrics) (float64, bool) {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "hiveqd_view_age_seconds" {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A route the new leader adopted (published by an earlier term, chosen
// again) is republished too when its key is deleted (issue 12, item 6).
func TestDeletedAdoptedRouteRepublished(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep := s1
	route, _ := json.Marshal(routing.Route{Connector: "a", Epoch: 4, Endpoint: &ep, Reason: "earlier term", ChosenBy: "old", ChosenAt: time.Now()})
	if _, err := cli.Put(ctx, "/hiveqd/"+clusterName+"/connectors/a", string(route)); err != nil {
		t.Fatal(err)
	}
	var w fakeWorld
	rs := startFake(t, &w, e.Endpoints(), "r1", "r2")
	w.current().choose(&ep, "adopted")
	waitRoute(t, 10*time.Second, "a", s1, 4, rs...)
	// Let the leader handle the adopted choice (candidates are written
	// with it) before the key goes.
	testenv.Eventually(t, 10*time.Second, func() error {
		resp, err := cli.Get(ctx, "/hiveqd/"+clusterName+"/candidates/a")
		if err != nil || len(resp.Kvs) == 0 {
			return fmt.Errorf("no candidates yet (%v)", err)
		}
		return nil
	})
	deleteRouteWaitRepublish(t, cli, s1, 5, rs...)
}

// etcd restored from an older snapshot (an operator's restore from backup:
// the route, the registrations and the revision go back in time) does not
// make epochs go backwards: the leader republishes its choice above every
// epoch replicas hold, and no replica's table ever moves back (startReplica
// fails the test on that). Issue 12, item 6.
func TestEtcdRestoredFromOlderSnapshot(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	var w fakeWorld
	// Leases long enough to outlive the restore: the leader that made
	// epoch 3 is the one that must notice.
	long := func(c *cluster.EtcdConfig) { c.LeaseTTL = 30 * time.Second }
	var rs []*replica
	for _, id := range []string{"r1", "r2"} {
		rs = append(rs, startReplica(t, id, e.Endpoints(), []cluster.ConnectorConfig{{Name: "a", NewSelector: w.newSelector}}, long))
	}
	leader := waitLeader(t, 10*time.Second, rs...)
	testenv.Eventually(t, 10*time.Second, func() error {
		if w.current() == nil {
			return errors.New("selector not started")
		}
		return nil
	})
	ep1, ep2 := s1, s2
	w.current().choose(&ep1, "first")
	waitRoute(t, 10*time.Second, "a", s1, 1, rs...)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap := t.TempDir() + "/backup.db"
	if err := e.SaveSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	w.current().choose(&ep2, "second")
	waitRoute(t, 10*time.Second, "a", s2, 2, rs...)
	w.current().choose(&ep1, "third")
	waitRoute(t, 10*time.Second, "a", s1, 3, rs...)

	// The route goes forward again, to the leader's current choice.
	r := restoreWaitRepublished(ctx, t, e, snap, cli, 3, s1, 20*time.Second, rs...)
	if !leader.node.IsLeader() {
		t.Errorf("leadership moved during the restore")
	}
	// Every replica registers the epoch it holds again (the restore took
	// its entry back to epoch 1): a later leader's floor needs it.
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, rep := range rs {
			resp, err := cli.Get(ctx, "/hiveqd/"+clusterName+"/replicas/"+rep.id)
			if err != nil {
				return err
			}
			var got cluster.Replica
			if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &got) != nil || got.Epochs["a"] != r.Epoch {
				return fmt.Errorf("%s registered %v, want epoch %d", rep.id, got.Epochs, r.Epoch)
			}
		}
		return nil
	})
}

// TestEtcdRestoredUnderAdoptingLeader is issue 12.6 when the leader never
// chose anything itself: it adopted the route of the term before, and etcd
// is then restored from a backup older than that route, which also ends its
// term. The new term finds etcd's route below the epoch every replica holds,
// and its selector, which keeps what it adopts, makes no new choice: it
// must still publish above the replicas' epoch, and the server they route
// to, not the one the backup names.
func TestEtcdRestoredUnderAdoptingLeader(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	var w fakeWorld
	conns := []cluster.ConnectorConfig{{Name: "a", NewSelector: w.newSelector}}
	r1 := startFake(t, &w, e.Endpoints(), "r1")[0]
	ep1, ep2 := s1, s2
	w.current().choose(&ep1, "first")
	r2 := startReplica(t, "r2", e.Endpoints(), conns)
	waitRoute(t, 10*time.Second, "a", s1, 1, r1, r2)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	snap := t.TempDir() + "/backup.db"
	if err := e.SaveSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	w.current().choose(&ep2, "second")
	waitRoute(t, 10*time.Second, "a", s2, 2, r1, r2)

	// r2 takes over and adopts epoch 2 without choosing.
	first := w.current()
	r1.stop()
	waitLeader(t, 15*time.Second, r2)
	testenv.Eventually(t, 10*time.Second, func() error {
		if s := w.current(); s == first || s.initialServer() == nil {
			return errors.New("r2's selector not started")
		}
		return nil
	})

	restoreWaitRepublished(ctx, t, e, snap, cli, 2, s2, 30*time.Second, r2)
	if got := w.current().initialServer(); got == nil || *got != s2 {
		t.Errorf("the last selector started from %v, want s2 (what the replicas route to)", got)
	}
}

// restoreWaitRepublished restores etcd from snap, taken when connector
// "a" was published at an epoch below taken (the one published when the
// restore starts), checks that the restore took the route back, then waits
// until the route is published again above taken, naming want, and every
// replica of rs follows it; it returns that route.
func restoreWaitRepublished(ctx context.Context, t *testing.T, e *testenv.Etcd, snap string, cli *clientv3.Client, taken uint64, want hs2.Endpoint, timeout time.Duration, rs ...*replica) routing.Route {
	t.Helper()
	if err := e.RestoreSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if r, ok := published(t, cli, "a"); ok && r.Epoch == taken { // (above taken: already republished)
		t.Fatalf("the restore did not take the route back: published %+v", r)
	}
	testenv.Eventually(t, timeout, func() error {
		r, ok := published(t, cli, "a")
		if !ok || r.Epoch <= taken || r.Endpoint == nil || *r.Endpoint != want {
			return fmt.Errorf("published %+v (present %v), want %s above epoch %d", r, ok, want.Addr(), taken)
		}
		return nil
	})
	r, _ := published(t, cli, "a")
	waitRoute(t, 10*time.Second, "a", want, r.Epoch, rs...)
	return r
}
