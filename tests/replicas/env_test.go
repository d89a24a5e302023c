package replicas

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2sim/synth"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

const (
	connector = "hive"
	leaseTTL  = 3 * time.Second
)

// setup describes a test's processes.
type setup struct {
	sims     int
	replicas int    // default 3
	digest   string // user:password for ZooKeeper digest auth ("" = open ACLs)
	// standalone: one `hiveqd serve --coordination standalone`, no etcd.
	standalone bool
}

// env is one test's etcd, simulators and replicas (ZooKeeper is shared).
type env struct {
	t       *testing.T
	etcd    *testenv.Etcd
	fleet   *harness.Fleet
	sims    []*harness.Sim
	clients []*harness.Client
	ids     []string
}

// replicaConfig is the fleet's hiveqd.yaml: a short lease so that leader
// changes take seconds, and a fast probe so that a dead HS2 is noticed in
// a few hundred milliseconds.
func replicaConfig(t *testing.T, etcd *testenv.Etcd) harness.ReplicaConfig {
	cfg := harness.ReplicaConfig{
		Cluster:       "c-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		ZooKeeper:     zooKeeper.Servers(),
		Namespace:     namespace(t),
		ShutdownGrace: 5 * time.Second,
		ProbeInterval: 100 * time.Millisecond,
		ProbeTimeout:  time.Second,
		ProbeFailures: 2,
		Cooldown:      30 * time.Second,
	}
	if etcd != nil {
		cfg.Etcd, cfg.LeaseTTL = etcd.Endpoints(), leaseTTL
	}
	return cfg
}

// start brings up etcd, the simulators (registered in this order, so
// sims[0] is the oldest registration) and the replicas r1, r2, ... (r1
// starts first and leads), and waits until all replicas agree on a leader
// and route to sims[0].
func start(t *testing.T, s setup, tweak ...func(*harness.ReplicaConfig)) *env {
	t.Helper()
	if s.replicas == 0 {
		s.replicas = 3
	}
	e := &env{t: t}
	if s.standalone {
		s.replicas = 1
	} else {
		e.etcd = testenv.StartEtcd(t)
	}
	cfg := replicaConfig(t, e.etcd)
	for _, f := range tweak {
		f(&cfg)
	}
	fleet, err := harness.NewFleet(bins, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.digest != "" {
		fleet.SimArgs = []string{"--zk-digest", s.digest}
	}
	e.fleet = fleet
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process output:\n%s", fleet.Logs(12000))
		}
		fleet.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range s.sims {
		sim, err := fleet.StartSim(ctx, fmt.Sprintf("sim-%c", 'a'+i))
		if err != nil {
			t.Fatal(err)
		}
		e.sims = append(e.sims, sim)
	}
	for i := range s.replicas {
		id := fmt.Sprintf("r%d", i+1)
		_, c, err := fleet.StartReplica(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		e.ids = append(e.ids, id)
		e.clients = append(e.clients, c)
	}
	if s.sims > 0 {
		e.agreed(30*time.Second, e.clients, func(r harness.Route, _ string) error {
			if r.Server != e.sims[0].Addr {
				return fmt.Errorf("route %+v, want the oldest registration %s", r, e.sims[0].Addr)
			}
			return nil
		})
	}
	return e
}

// dumpStacks ends every replica with SIGQUIT, which makes a Go process
// print all its goroutines: the evidence for a hang.
func (e *env) dumpStacks() {
	for _, h := range e.fleet.Replicas {
		select {
		case <-h.Done():
			continue
		default:
		}
		_ = h.Signal(syscall.SIGQUIT)
		<-h.Done()
		e.t.Logf("%s goroutines:\n%s", h.Name, h.Output())
	}
}

// agreed waits until clients agree on leader and route and check accepts.
func (e *env) agreed(timeout time.Duration, clients []*harness.Client, check func(harness.Route, string) error) (harness.Route, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, leader, err := harness.WaitAgreed(ctx, clients, connector, check)
	if err != nil {
		e.t.Fatalf("replicas did not agree within %v: %v", timeout, err)
	}
	return r, leader
}

// index is the position of replica id in e.ids.
func (e *env) index(id string) int {
	for i, x := range e.ids {
		if x == id {
			return i
		}
	}
	e.t.Fatalf("unknown replica %q", id)
	return -1
}

// others are the clients of every replica but id.
func (e *env) others(id string) []*harness.Client {
	var out []*harness.Client
	for i, x := range e.ids {
		if x != id {
			out = append(out, e.clients[i])
		}
	}
	return out
}

// query runs stmt on c with a deadline; a stream still open then is a hang.
func query(t *testing.T, c *harness.Client, timeout time.Duration, stmt string) harness.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: stmt}, nil, nil)
}

// mustQuery runs stmt and fails the test unless it finished.
func mustQuery(t *testing.T, c *harness.Client, stmt string) harness.Result {
	t.Helper()
	r := query(t, c, 30*time.Second, stmt)
	if r.Err != nil {
		t.Fatalf("%s on %s: %v", stmt, c.Addr, r.Err)
	}
	if r.Last.GetState() != hiveqv1.QueryState_QUERY_STATE_FINISHED {
		t.Fatalf("%s on %s: last state %v", stmt, c.Addr, r.Last.GetState())
	}
	return r
}

// checkSynthIDs checks that a batch of synth.rows_N carries the ids of its
// rows: column 0 is id = row index.
func checkSynthIDs(b *hiveqv1.RowBatch) error {
	ids := b.GetColumns()[0].GetInt64Values().GetValues()
	if len(ids) != int(b.GetRowCount()) {
		return fmt.Errorf("batch at %d: %d ids for %d rows", b.GetStartRow(), len(ids), b.GetRowCount())
	}
	for i, id := range ids {
		if want := synth.ID(b.GetStartRow() + int64(i)); id != want {
			return fmt.Errorf("row %d: id %d, want %d", b.GetStartRow()+int64(i), id, want)
		}
	}
	return nil
}

// observation is one WatchTopology event as a test saw it.
type observation struct {
	at       time.Time
	route    harness.Route
	leader   string
	degraded bool
}

// watcher records a replica's WatchTopology stream.
type watcher struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	obs  []observation
	err  error
	grew chan struct{}
}

func watch(t *testing.T, id string, c *harness.Client) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{id: id, cancel: cancel, done: make(chan struct{}), grew: make(chan struct{})}
	stream, err := c.Cluster.WatchTopology(ctx, &hiveqv1.WatchTopologyRequest{})
	if err != nil {
		cancel()
		t.Fatalf("watch %s: %v", id, err)
	}
	go func() {
		defer close(w.done)
		for {
			resp, err := stream.Recv()
			if err != nil {
				w.mu.Lock()
				if ctx.Err() == nil {
					w.err = err
				}
				w.mu.Unlock()
				return
			}
			top := resp.GetTopology()
			o := observation{at: time.Now(), leader: harness.LeaderID(top), degraded: top.GetDegraded()}
			if cs := harness.ConnectorState(top, connector); cs != nil {
				o.route = harness.Route{Server: harness.ServerAddr(cs.GetServer()), Epoch: cs.GetEpoch()}
			}
			w.mu.Lock()
			w.obs = append(w.obs, o)
			close(w.grew)
			w.grew = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.stop)
	return w
}

// stop ends the stream and returns what it saw.
func (w *watcher) stop() {
	w.cancel()
	<-w.done
}

func (w *watcher) snapshot() ([]observation, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]observation(nil), w.obs...), w.err
}

// first waits for the first observation that satisfies pred.
func (w *watcher) first(ctx context.Context, pred func(observation) bool) (observation, error) {
	seen := 0
	for {
		w.mu.Lock()
		obs, grew, err := w.obs[seen:], w.grew, w.err
		seen = len(w.obs)
		w.mu.Unlock()
		for _, o := range obs {
			if pred(o) {
				return o, nil
			}
		}
		if err != nil {
			return observation{}, fmt.Errorf("watch %s ended: %w", w.id, err)
		}
		select {
		case <-grew:
		case <-w.done:
			// Loop once more for events that came with the end.
			w.mu.Lock()
			if len(w.obs) == seen {
				w.mu.Unlock()
				return observation{}, fmt.Errorf("watch %s ended", w.id)
			}
			w.mu.Unlock()
		case <-ctx.Done():
			return observation{}, fmt.Errorf("watch %s: %w", w.id, ctx.Err())
		}
	}
}

// epochsOf lists the distinct epochs w saw, in order of arrival, and fails
// if one went backwards.
func epochsOf(t *testing.T, w *watcher) []uint64 {
	t.Helper()
	obs, err := w.snapshot()
	if err != nil {
		t.Errorf("watch %s: %v", w.id, err)
	}
	var out []uint64
	for i, o := range obs {
		if i > 0 && o.route.Epoch < obs[i-1].route.Epoch {
			t.Errorf("replica %s: epoch went backwards: %d after %d", w.id, o.route.Epoch, obs[i-1].route.Epoch)
		}
		if len(out) == 0 || out[len(out)-1] != o.route.Epoch {
			out = append(out, o.route.Epoch)
		}
	}
	return out
}

// counts renders a histogram for failure messages.
func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%d ", k, m[k])
	}
	return s
}
