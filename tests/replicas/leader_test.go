package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/routing"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// newLeader waits until every watcher has seen a leader other than old and
// returns it with the time the last one saw it.
func newLeader(t *testing.T, ws []*watcher, old string, timeout time.Duration) (string, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var leader string
	var last time.Time
	for _, w := range ws {
		o, err := w.first(ctx, func(o observation) bool { return o.leader != "" && o.leader != old })
		if err != nil {
			t.Fatalf("no new leader after %s: %v", old, err)
		}
		if leader != "" && o.leader != leader {
			t.Fatalf("replicas elected different leaders: %s and %s", leader, o.leader)
		}
		leader = o.leader
		if o.at.After(last) {
			last = o.at
		}
	}
	return leader, last
}

// The leader dies without a word (SIGKILL): another replica leads within
// the lease TTL plus a second, and HS2 routing does not move. Then the new
// leader is stopped gracefully (SIGTERM): it resigns at once and the next
// leader takes over in under a second.
func TestLeaderKilledThenStopped(t *testing.T) {
	e := start(t, setup{sims: 2})
	route0, leader0 := e.agreed(10*time.Second, e.clients, nil)
	unchanged := func(r harness.Route, _ string) error {
		if r != route0 {
			return fmt.Errorf("route %+v, want %+v unchanged", r, route0)
		}
		return nil
	}

	// SIGKILL.
	var ws []*watcher
	for _, id := range e.ids {
		if id != leader0 {
			ws = append(ws, watch(t, id, e.clients[e.index(id)]))
		}
	}
	h := e.fleet.Replica(leader0)
	killed := time.Now()
	h.Kill()
	leader1, seen := newLeader(t, ws, leader0, 2*leaseTTL+10*time.Second)
	took := seen.Sub(killed)
	t.Logf("SIGKILL of leader %s: %s leads after %v (lease TTL %v)", leader0, leader1, took, leaseTTL)
	if took > leaseTTL+time.Second {
		t.Errorf("new leader after %v, want within lease TTL + 1s = %v", took, leaseTTL+time.Second)
	}
	e.agreed(10*time.Second, e.others(leader0), unchanged)
	for _, w := range ws {
		for _, o := range mustSnapshot(t, w) {
			if o.route != route0 {
				t.Errorf("replica %s saw route %+v during the leader change, want %+v throughout", w.id, o.route, route0)
				break
			}
		}
		w.stop()
	}
	for _, c := range e.others(leader0) {
		if r := mustQuery(t, c, "SELECT 1"); r.Server() != route0.Server {
			t.Errorf("served from %s, want %s", r.Server(), route0.Server)
		}
	}

	// Back to three replicas; the restarted one follows.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	e.agreed(15*time.Second, e.clients, func(r harness.Route, l string) error {
		if l != leader1 {
			return fmt.Errorf("leader %s, want %s to keep leading", l, leader1)
		}
		return unchanged(r, l)
	})

	// SIGTERM.
	ws = nil
	for _, id := range e.ids {
		if id != leader1 {
			ws = append(ws, watch(t, id, e.clients[e.index(id)]))
		}
	}
	h1 := e.fleet.Replica(leader1)
	stopped := time.Now()
	if err := h1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	leader2, seen := newLeader(t, ws, leader1, 2*leaseTTL+10*time.Second)
	took = seen.Sub(stopped)
	t.Logf("SIGTERM of leader %s: %s leads after %v", leader1, leader2, took)
	if took >= time.Second {
		t.Errorf("graceful handover took %v, want under a second", took)
	}
	select {
	case <-h1.Done():
		if err := h1.Err(); err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want 0", leader1, err)
		}
	case <-ctx.Done():
		t.Fatalf("%s did not exit after SIGTERM", leader1)
	}
	e.agreed(10*time.Second, e.others(leader1), unchanged)
	for _, w := range ws {
		w.stop()
	}
}

func mustSnapshot(t *testing.T, w *watcher) []observation {
	t.Helper()
	obs, err := w.snapshot()
	if err != nil {
		t.Fatalf("watch %s: %v", w.id, err)
	}
	return obs
}

// querier runs SELECT 1 on one replica in a loop and records every failure.
type querier struct {
	id     string
	mu     sync.Mutex
	ok     int
	okAt   []time.Time
	fails  []error
	cancel context.CancelFunc
	done   chan struct{}
}

func startQuerier(t *testing.T, id string, c *harness.Client) *querier {
	ctx, cancel := context.WithCancel(context.Background())
	q := &querier{id: id, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for ctx.Err() == nil {
			qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
			r := c.Execute(qctx, &hiveqv1.ExecuteRequest{Statement: "SELECT 1"}, nil, nil)
			qcancel()
			if ctx.Err() != nil {
				return
			}
			q.mu.Lock()
			if r.Err == nil {
				q.ok++
				q.okAt = append(q.okAt, r.Finished)
			} else {
				q.fails = append(q.fails, r.Err)
			}
			q.mu.Unlock()
		}
	}()
	t.Cleanup(q.stop)
	return q
}

func (q *querier) stop() { q.cancel(); <-q.done }

// okSince counts successful queries that finished after t0.
func (q *querier) okSince(t0 time.Time) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, at := range q.okAt {
		if at.After(t0) {
			n++
		}
	}
	return n
}

// etcd goes away and comes back with its data: the replicas report
// themselves degraded and keep serving the last route meanwhile, queries
// never fail, and afterwards the same route (server and epoch) and leader
// are back, healthy.
func TestEtcdRestart(t *testing.T) {
	e := start(t, setup{sims: 2})
	route0, leader0 := e.agreed(10*time.Second, e.clients, nil)

	cli, err := clientv3.New(clientv3.Config{Endpoints: e.etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	key := "/hiveqd/" + e.fleet.Config.Cluster + "/connectors/" + connector
	stored := func() (routing.Route, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return routing.Route{}, err
		}
		if len(resp.Kvs) != 1 {
			return routing.Route{}, fmt.Errorf("%s: %d keys", key, len(resp.Kvs))
		}
		var r routing.Route
		err = json.Unmarshal(resp.Kvs[0].Value, &r)
		return r, err
	}
	before, err := stored()
	if err != nil {
		t.Fatal(err)
	}
	if before.Epoch != route0.Epoch || before.Endpoint == nil || before.Endpoint.Addr() != route0.Server {
		t.Fatalf("etcd holds %+v, replicas report %+v", before, route0)
	}

	var qs []*querier
	for i, c := range e.clients {
		qs = append(qs, startQuerier(t, e.ids[i], c))
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, q := range qs {
			if q.okSince(time.Time{}) == 0 {
				return fmt.Errorf("%s served nothing yet", q.id)
			}
		}
		return nil
	})

	e.etcd.Stop()
	down := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	testenv.Eventually(t, 15*time.Second, func() error {
		for i, c := range e.clients {
			top, err := c.Topology(ctx)
			if err != nil {
				return err
			}
			if !top.GetDegraded() || top.GetDegradedReason() == "" {
				return fmt.Errorf("%s not degraded yet", e.ids[i])
			}
			if cs := harness.ConnectorState(top, connector); harness.ServerAddr(cs.GetServer()) != route0.Server || cs.GetEpoch() != route0.Epoch {
				return fmt.Errorf("%s dropped its route while degraded: %v", e.ids[i], cs)
			}
		}
		return nil
	})
	degraded := time.Now()
	// Queries keep working on every replica while etcd is away.
	testenv.Eventually(t, 15*time.Second, func() error {
		for _, q := range qs {
			if q.okSince(degraded) < 3 {
				return fmt.Errorf("%s: %d queries served since degraded", q.id, q.okSince(degraded))
			}
		}
		return nil
	})
	if err := e.etcd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd was down for %v", time.Since(down))
	e.agreed(30*time.Second, e.clients, func(r harness.Route, _ string) error {
		if r != route0 {
			return fmt.Errorf("route %+v, want %+v as before the restart", r, route0)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		for i, c := range e.clients {
			top, err := c.Topology(ctx)
			if err != nil {
				return err
			}
			if n := len(top.GetReplicas()); n != 3 {
				return fmt.Errorf("%s lists %d replicas", e.ids[i], n)
			}
		}
		return nil
	})
	after, err := stored()
	if err != nil {
		t.Fatal(err)
	}
	if after.Epoch != before.Epoch || after.Endpoint.Addr() != before.Endpoint.Addr() || !after.ChosenAt.Equal(before.ChosenAt) {
		t.Errorf("etcd holds %+v after the restart, want %+v", after, before)
	}
	for _, q := range qs {
		q.stop()
		q.mu.Lock()
		if len(q.fails) > 0 {
			t.Errorf("%s: %d of %d queries failed around the etcd restart; first: %v", q.id, len(q.fails), len(q.fails)+q.ok, q.fails[0])
		}
		q.mu.Unlock()
	}
	_, leader := e.agreed(10*time.Second, e.clients, nil)
	t.Logf("leader before %s, after %s", leader0, leader)
}
