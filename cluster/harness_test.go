package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const clusterName = "t"

var (
	s1 = hs2.Endpoint{Host: "127.0.0.1", Port: 10001, Transport: hs2.TransportBinary, Auth: hs2.AuthNone}
	s2 = hs2.Endpoint{Host: "127.0.0.1", Port: 10002, Transport: hs2.TransportHTTP, HTTPPath: "cliservice", Auth: hs2.AuthLDAP, TLS: true}
)

func logger() *slog.Logger {
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// prober is the HS2 world as the real registry.Selector probes it: servers
// are up unless marked down.
type prober struct {
	mu     sync.Mutex
	down   map[string]bool
	probes map[string]int
}

func newProber() *prober { return &prober{down: map[string]bool{}, probes: map[string]int{}} }

func (p *prober) Probe(ctx context.Context, ep hs2.Endpoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes[ep.Addr()]++
	if p.down[ep.Addr()] {
		return fmt.Errorf("dial tcp %s: %w", ep.Addr(), syscall.ECONNREFUSED)
	}
	return nil
}

func (p *prober) set(ep hs2.Endpoint, down bool) {
	p.mu.Lock()
	p.down[ep.Addr()] = down
	p.mu.Unlock()
}

func (p *prober) count(ep hs2.Endpoint) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.probes[ep.Addr()]
}

// realSelector builds registry selectors over a static list. One failed
// probe fails a server; reports make the selector probe within a quarter
// of the 2s interval.
func realSelector(name string, p *prober, eps ...hs2.Endpoint) func() cluster.Selector {
	return func() cluster.Selector {
		return registry.NewSelector(registry.SelectorConfig{
			Connector:     name,
			Discovery:     registry.NewStatic(eps),
			Prober:        p,
			ProbeInterval: 2 * time.Second,
			ProbeTimeout:  time.Second,
			FailThreshold: 1,
			Cooldown:      300 * time.Millisecond,
			Logger:        logger(),
		})
	}
}

// replica is one running cluster.Node with a record of its table's switches.
type replica struct {
	id     string
	node   *cluster.Node
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	switches []routing.Route
}

type nodeOpt func(*cluster.EtcdConfig)

func startReplica(t *testing.T, id string, endpoints []string, conns []cluster.ConnectorConfig, opts ...nodeOpt) *replica {
	t.Helper()
	r := &replica{id: id, done: make(chan struct{})}
	table := routing.NewTable()
	table.OnSwitch(func(old, nw *routing.Route) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if old != nil && nw.Epoch <= old.Epoch {
			t.Errorf("%s: epoch went from %d to %d", id, old.Epoch, nw.Epoch)
		}
		r.switches = append(r.switches, *nw)
	})
	cfg := cluster.EtcdConfig{
		Etcd:               clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop()},
		Cluster:            clusterName,
		ReplicaID:          id,
		Address:            id + ".example:7443",
		Connectors:         conns,
		Table:              table,
		LeaseTTL:           2 * time.Second,
		HealthInterval:     100 * time.Millisecond,
		RequestTimeout:     time.Second,
		ReportInterval:     200 * time.Millisecond,
		CandidatesInterval: 300 * time.Millisecond,
		Backoff:            100 * time.Millisecond,
		Logger:             logger(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	n, err := cluster.NewEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.node = n
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		if err := n.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", id, err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func (r *replica) epochs(connector string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, s := range r.switches {
		if s.Connector == connector {
			out = append(out, s.Epoch)
		}
	}
	return out
}

// route returns the connector's route in r's table, or an error.
func (r *replica) route(connector string) (routing.Route, error) {
	c, err := r.node.Routes().Get(connector)
	if c == nil {
		return routing.Route{}, err
	}
	return c.Route, err
}

// waitRoute waits until every replica routes connector to ep at epoch.
func waitRoute(t *testing.T, timeout time.Duration, connector string, ep hs2.Endpoint, epoch uint64, rs ...*replica) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		for _, r := range rs {
			got, err := r.route(connector)
			if err != nil {
				return fmt.Errorf("%s: %w", r.id, err)
			}
			if *got.Endpoint != ep || got.Epoch != epoch {
				return fmt.Errorf("%s routes to %v at epoch %d, want %v at %d", r.id, got.Endpoint, got.Epoch, ep, epoch)
			}
		}
		return nil
	})
}

func waitLeader(t *testing.T, timeout time.Duration, rs ...*replica) *replica {
	t.Helper()
	var leader *replica
	testenv.Eventually(t, timeout, func() error {
		n := 0
		for _, r := range rs {
			if r.node.IsLeader() {
				leader = r
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d leaders", n)
		}
		return nil
	})
	return leader
}

func client(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// published reads a connector's route straight from etcd.
func published(t *testing.T, cli *clientv3.Client, connector string) (routing.Route, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/hiveqd/"+clusterName+"/connectors/"+connector)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return routing.Route{}, false
	}
	var r routing.Route
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		t.Fatal(err)
	}
	return r, true
}

// epochMonitor watches every write of the connector keys and fails the
// test if an epoch ever fails to increase.
func epochMonitor(t *testing.T, cli *clientv3.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	pfx := "/hiveqd/" + clusterName + "/connectors/"
	wch := cli.Watch(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(1))
	go func() {
		defer close(done)
		last := map[string]uint64{}
		for wr := range wch {
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					t.Errorf("connector key %s deleted", ev.Kv.Key)
					continue
				}
				var r routing.Route
				if err := json.Unmarshal(ev.Kv.Value, &r); err != nil {
					t.Errorf("bad route %s: %v", ev.Kv.Value, err)
					continue
				}
				k := string(ev.Kv.Key)
				if r.Epoch <= last[k] {
					t.Errorf("%s: published epoch %d after %d", k, r.Epoch, last[k])
				}
				last[k] = r.Epoch
			}
		}
	}()
}

// fakeSelector is a Selector the test drives by hand, recording reports
// synchronously; for tests whose point is the etcd protocol.
type fakeSelector struct {
	mu        sync.Mutex
	publish   func(registry.Choice)
	initial   *hs2.Endpoint
	reports   []string
	failovers []string
	running   chan struct{}
}

type fakeWorld struct {
	mu   sync.Mutex
	sels []*fakeSelector
}

func (w *fakeWorld) newSelector() cluster.Selector {
	s := &fakeSelector{running: make(chan struct{})}
	w.mu.Lock()
	w.sels = append(w.sels, s)
	w.mu.Unlock()
	return s
}

// current is the most recently started selector (the leader's).
func (w *fakeWorld) current() *fakeSelector {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sels) == 0 {
		return nil
	}
	return w.sels[len(w.sels)-1]
}

func (w *fakeWorld) reports() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, s := range w.sels {
		s.mu.Lock()
		out = append(out, s.reports...)
		s.mu.Unlock()
	}
	return out
}

func (s *fakeSelector) Run(ctx context.Context, initial *hs2.Endpoint, publish func(registry.Choice)) error {
	s.mu.Lock()
	s.publish, s.initial = publish, initial
	s.mu.Unlock()
	close(s.running)
	<-ctx.Done()
	return nil
}

func (s *fakeSelector) choose(ep *hs2.Endpoint, reason string) {
	<-s.running
	s.mu.Lock()
	pub := s.publish
	s.mu.Unlock()
	pub(registry.Choice{Endpoint: ep, Reason: reason})
}

func (s *fakeSelector) Report(server string) {
	s.mu.Lock()
	s.reports = append(s.reports, server)
	s.mu.Unlock()
}

func (s *fakeSelector) Failover(_ context.Context, reason string, _ registry.FailoverOptions) error {
	s.mu.Lock()
	s.failovers = append(s.failovers, reason)
	s.mu.Unlock()
	return errors.New("fake: no failover")
}

func (s *fakeSelector) Snapshot() []registry.CandidateHealth { return nil }

// initialServer is the server the selector was started from (adopted).
func (s *fakeSelector) initialServer() *hs2.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initial
}
