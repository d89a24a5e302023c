package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
)

// StandaloneConfig configures NewStandalone.
type StandaloneConfig struct {
	Cluster    string // for Topology only; default "default"
	ReplicaID  string
	Address    string
	Connectors []ConnectorConfig
	Table      *routing.Table // made when nil
	// FailoverTimeout bounds Failover's wait when ctx has no deadline;
	// default 15s.
	FailoverTimeout time.Duration
	// Backoff before restarting a selector that stopped; default 250ms.
	Backoff time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Standalone is the Coordinator of a single process: it runs the selectors
// itself and feeds its table with local epochs (starting at 1 per process).
type Standalone struct {
	cfg     StandaloneConfig
	table   *routing.Table
	log     *slog.Logger
	started time.Time
	conns   map[string]*localConn

	mu      sync.Mutex
	running bool
	changed broadcast
}

var _ Coordinator = (*Standalone)(nil)

// localConn is one connector: its chooser publishes into the table.
type localConn struct {
	s  *Standalone
	cc ConnectorConfig
	ch *chooser

	mu  sync.Mutex
	cur *routing.Route
}

// NewStandalone returns a coordinator for one process; call Run.
func NewStandalone(cfg StandaloneConfig) (*Standalone, error) {
	if err := validateConnectors(cfg.Connectors); err != nil {
		return nil, err
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "default"
	}
	if cfg.FailoverTimeout <= 0 {
		cfg.FailoverTimeout = 15 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Table == nil {
		cfg.Table = routing.NewTable()
	}
	s := &Standalone{cfg: cfg, table: cfg.Table, log: cfg.Logger, started: cfg.Now().UTC(),
		conns: map[string]*localConn{}, changed: newBroadcast()}
	for _, cc := range cfg.Connectors {
		c := &localConn{s: s, cc: cc}
		c.ch = newChooser(cc, c.publish, c.current, cfg.Backoff, cfg.Logger)
		s.conns[cc.Name] = c
	}
	s.table.OnSwitch(func(_, _ *routing.Route) {
		s.mu.Lock()
		s.changed.notify()
		s.mu.Unlock()
	})
	return s, nil
}

// Routes is the table this process feeds.
func (s *Standalone) Routes() *routing.Table { return s.table }

// Run runs every connector's selector until ctx ends.
func (s *Standalone) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("cluster: Run called twice")
	}
	s.running = true
	s.changed.notify()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
	}
	wg.Wait()
	<-ctx.Done()
	return nil
}

func (c *localConn) run(ctx context.Context) { c.ch.run(ctx) }

// current is the route this connector last published.
func (c *localConn) current() *routing.Route {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *localConn) publish(ch registry.Choice) {
	c.mu.Lock()
	r, ok := nextRoute(c.cur, ch, c.cc.Name, c.s.cfg.ReplicaID, 0, c.s.cfg.Now())
	if ok {
		c.cur = &r
	}
	c.mu.Unlock()
	if ok {
		c.s.log.Info("cluster: chose", "connector", c.cc.Name, "epoch", r.Epoch,
			"server", endpointString(r.Endpoint), "reason", r.Reason)
		c.s.table.Update(r)
	}
	// Candidates are read live by Topology; still tell watchers.
	c.s.mu.Lock()
	c.s.changed.notify()
	c.s.mu.Unlock()
}

// ReportFailure hands the report to the connector's selector, which
// confirms it with its own probe, unless it is stale.
func (s *Standalone) ReportFailure(connector string, epoch uint64, server string, err error) {
	if c := s.conns[connector]; c != nil {
		c.ch.report(epoch, server)
	}
}

// Failover asks the connector's selector to move off its server.
func (s *Standalone) Failover(ctx context.Context, req FailoverRequest) (routing.Route, error) {
	c := s.conns[req.Connector]
	if c == nil {
		return routing.Route{}, fmt.Errorf("connector %q: %w", req.Connector, routing.ErrUnknownConnector)
	}
	return c.ch.failover(ctx, req, s.cfg.FailoverTimeout, s.table)
}

// Topology: this process is the only replica and the leader.
func (s *Standalone) Topology() Topology {
	self := Replica{ID: s.cfg.ReplicaID, Address: s.cfg.Address, Started: s.started, Leader: true}
	leader := self
	t := Topology{Cluster: s.cfg.Cluster, Coordination: "standalone", Self: self, Leader: &leader, Replicas: []Replica{self}}
	now := s.cfg.Now().UTC()
	t.Connectors = connectorStates(s.cfg.Connectors, s.table.Snapshot(), func(name string) ([]registry.CandidateHealth, time.Time) {
		c := s.conns[name]
		if c == nil || c.ch.selector() == nil {
			return nil, time.Time{}
		}
		return c.ch.candidates(), now
	})
	return t
}

// WatchTopology streams the topology now and after every change.
func (s *Standalone) WatchTopology(ctx context.Context) <-chan Topology {
	return watchTopology(ctx, s.Topology, func() <-chan struct{} {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.changed.ch
	})
}

// Health is always fine: there is nothing to lose contact with.
func (s *Standalone) Health() (bool, string) { return true, "" }

// Healthy is always true.
func (s *Standalone) Healthy() bool { return true }

// LeaderAddr is this process's own address.
func (s *Standalone) LeaderAddr() string { return s.cfg.Address }
