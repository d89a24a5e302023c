package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/leaderelect"
	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
)

// campaign wins the election at prefix with a fresh session.
func campaign(t *testing.T, ctx context.Context, cli *clientv3.Client, prefix, id string) (*concurrency.Session, leaderelect.Term) {
	t.Helper()
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := concurrency.NewElection(s, prefix)
	if err := e.Campaign(ctx, `{"id":"`+id+`"}`); err != nil {
		t.Fatal(err)
	}
	return s, leaderelect.Term{Key: e.Key(), Rev: e.Rev(), Lease: s.Lease()}
}

// fenceNode is a node of cluster, not run, whose one connector "hive" has
// no selector: the tests drive its connLeader by hand.
func fenceNode(t *testing.T, endpoints []string, cluster, id string) (*Node, ConnectorConfig) {
	t.Helper()
	cc := ConnectorConfig{Name: "hive", NewSelector: func() Selector { return nil }}
	n, err := NewEtcd(EtcdConfig{Etcd: clientv3.Config{Endpoints: endpoints}, Cluster: cluster, ReplicaID: id,
		Connectors: []ConnectorConfig{cc}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return n, cc
}

// A leader that lost its election key can never write a route, and a write
// computed from a superseded epoch fails and reloads.
func TestFencedWrites(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, cc := fenceNode(t, e.Endpoints(), "f", "old")
	sa, termA := campaign(t, ctx, cli, n.keys.leader(), "old")
	n.cli = cli
	leaderA := &connLeader{n: n, cc: cc, lt: termA, key: n.keys.connector("hive"), wake: make(chan struct{}, 1)}
	if !leaderA.load(ctx) {
		t.Fatal("load")
	}
	ep1, ep2 := hs2.Endpoint{Host: "h1", Port: 1}, hs2.Endpoint{Host: "h2", Port: 2}
	leaderA.onChoice(registry.Choice{Endpoint: &ep1, Reason: "first"})
	if err := leaderA.sync(ctx); err != nil {
		t.Fatal(err)
	}
	read := func() routing.Route {
		resp, err := cli.Get(ctx, leaderA.key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get: %v %v", resp, err)
		}
		var r routing.Route
		if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := read(); r.Epoch != 1 || *r.Endpoint != ep1 || r.ChosenBy != "old" {
		t.Fatalf("published %+v", r)
	}

	// A loses its lease (say, partitioned past the TTL); B is elected.
	if _, err := cli.Revoke(ctx, sa.Lease()); err != nil {
		t.Fatal(err)
	}
	_, termB := campaign(t, ctx, cli, n.keys.leader(), "new")

	// A, unaware, tries to publish: refused, nothing written.
	leaderA.onChoice(registry.Choice{Endpoint: &ep2, Reason: "deposed"})
	if err := leaderA.sync(ctx); !errors.Is(err, errDeposed) {
		t.Fatalf("deposed leader's write: %v", err)
	}
	if r := read(); r.Epoch != 1 || *r.Endpoint != ep1 {
		t.Fatalf("deposed leader changed the route: %+v", r)
	}

	// B writes from a stale view (it loaded before a concurrent write):
	// the epoch check fails, B reloads and publishes on top of it.
	nB, _ := fenceNode(t, e.Endpoints(), "f", "new")
	nB.cli = cli
	leaderB := &connLeader{n: nB, cc: cc, lt: termB, key: leaderA.key, wake: make(chan struct{}, 1)}
	if !leaderB.load(ctx) {
		t.Fatal("load")
	}
	leaderB.mu.Lock()
	leaderB.published, leaderB.modRev = nil, 0 // as if it read before epoch 1 existed
	leaderB.mu.Unlock()
	leaderB.onChoice(registry.Choice{Endpoint: &ep2, Reason: "b"})
	if err := leaderB.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := read(); r.Epoch != 2 || *r.Endpoint != ep2 || r.ChosenBy != "new" {
		t.Fatalf("after conflict: %+v", r)
	}
	// B adopting what is published changes nothing.
	leaderB.onChoice(registry.Choice{Endpoint: &ep2, Reason: "same"})
	if err := leaderB.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := read(); r.Epoch != 2 || r.Reason != "b" {
		t.Fatalf("re-publishing the same server moved the epoch: %+v", r)
	}
}

func TestNextRoute(t *testing.T) {
	now := time.Unix(100, 0)
	a, b := hs2.Endpoint{Host: "a", Port: 1}, hs2.Endpoint{Host: "b", Port: 1}
	cur := &routing.Route{Connector: "c", Epoch: 4, Endpoint: &a, Reason: "x"}
	if _, ok := nextRoute(cur, registry.Choice{Endpoint: &a, Reason: "y"}, "c", "me", 0, now); ok {
		t.Fatal("same server republished")
	}
	r, ok := nextRoute(cur, registry.Choice{Endpoint: &b, Reason: "y", Drain: true}, "c", "me", 0, now)
	if !ok || r.Epoch != 5 || *r.Endpoint != b || !r.Drain || r.ChosenBy != "me" || !r.ChosenAt.Equal(now) {
		t.Fatalf("%+v", r)
	}
	r, _ = nextRoute(cur, registry.Choice{Reason: "none left"}, "c", "me", 9, now)
	if r.Epoch != 10 || r.Endpoint != nil || r.Reason != "none left" || r.Drain {
		t.Fatalf("floor/none: %+v", r)
	}
	// The last server drained: "none" keeps the drain; a dead one says so.
	if r, _ := nextRoute(cur, registry.Choice{Reason: "gone", Drain: true}, "c", "me", 0, now); r.Endpoint != nil || !r.Drain || r.PrevDead {
		t.Fatalf("drained to none: %+v", r)
	}
	if r, _ := nextRoute(cur, registry.Choice{Endpoint: &b, Reason: "dead", PrevDead: true}, "c", "me", 0, now); !r.PrevDead || r.Drain {
		t.Fatalf("dead: %+v", r)
	}
	none := &routing.Route{Connector: "c", Epoch: 2, Reason: "none left"}
	if r, _ := nextRoute(none, registry.Choice{Endpoint: &a, PrevDead: true, Drain: true}, "c", "me", 0, now); r.PrevDead || r.Drain {
		t.Fatalf("from none, nothing runs on a previous server: %+v", r)
	}
	if _, ok := nextRoute(none, registry.Choice{Reason: "none left"}, "c", "me", 0, now); ok {
		t.Fatal("same no-server reason republished")
	}
	if r, ok := nextRoute(nil, registry.Choice{Endpoint: &a, Drain: true}, "c", "me", 0, now); !ok || r.Epoch != 1 || r.Drain {
		t.Fatalf("first: %+v", r)
	}
	if !reportApplies(cur, 4, "a:1") || reportApplies(cur, 3, "a:1") || reportApplies(cur, 4, "b:1") || reportApplies(nil, 4, "a:1") {
		t.Fatal("reportApplies")
	}
}

// The leader's mirror lags behind its own writes: a view of the key from
// before the last publication (an older epoch, or the key not yet there)
// must not make the leader publish a new epoch for an unchanged choice.
// Only a loss that etcd confirms (the key deleted, or taken back to an
// older epoch) is republished, once.
func TestLaggingMirrorNeverRepublishes(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, cc := fenceNode(t, e.Endpoints(), "lag", "l")
	_, term := campaign(t, ctx, cli, n.keys.leader(), "l")
	n.cli = cli
	c := &connLeader{n: n, cc: cc, lt: term, key: n.keys.connector("hive"), wake: make(chan struct{}, 1)}
	if !c.load(ctx) {
		t.Fatal("load")
	}
	ep1, ep2 := hs2.Endpoint{Host: "h1", Port: 1}, hs2.Endpoint{Host: "h2", Port: 2}
	var first routing.Route
	for i, ep := range []hs2.Endpoint{ep1, ep2} {
		c.onChoice(registry.Choice{Endpoint: &ep, Reason: "choice"})
		if err := c.sync(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = *c.current()
		}
	}
	// What the mirror delivers for the leader's own writes puts epoch 2
	// into the replica's table: the floor.
	n.table.Update(*c.current())
	read := func() (routing.Route, int64) {
		resp, err := cli.Get(ctx, c.key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return routing.Route{}, 0
		}
		var r routing.Route
		if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
			t.Fatal(err)
		}
		return r, resp.Kvs[0].ModRevision
	}
	_, rev := read()

	for _, stale := range []*routing.Route{&first, nil} {
		c.observe(stale)
		if err := c.sync(ctx); err != nil {
			t.Fatal(err)
		}
		if r, got := read(); got != rev || r.Epoch != 2 {
			t.Fatalf("a lagging view (%v) republished: epoch %d at revision %d, want 2 at %d", stale, r.Epoch, got, rev)
		}
	}

	// Deleted for real: republished once, above the floor, same server.
	if _, err := cli.Delete(ctx, c.key); err != nil {
		t.Fatal(err)
	}
	c.observe(nil)
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	r, rev := read()
	if r.Epoch != 3 || r.Endpoint == nil || *r.Endpoint != ep2 {
		t.Fatalf("after deletion: %+v", r)
	}
	c.observe(nil) // the mirror's late view of the deletion
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r, got := read(); got != rev || r.Epoch != 3 {
		t.Fatalf("the deletion was republished twice: epoch %d", r.Epoch)
	}
}
