package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hiveqd/hiveqd/etcdsync"
	"github.com/hiveqd/hiveqd/leaderelect"
	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
)

// EtcdConfig configures NewEtcd.
type EtcdConfig struct {
	// Etcd is how to reach etcd (endpoints, TLS, credentials). The node
	// opens its own clients from it and closes them when Run returns.
	Etcd clientv3.Config
	// Cluster scopes the keys: /hiveqd/<Cluster>/. Default "default".
	Cluster string
	// ReplicaID names this replica (required); Address is its gRPC address,
	// where followers forward admin calls when it leads.
	ReplicaID string
	Address   string
	// Connectors are chosen by the leader; every replica must configure
	// the same set.
	Connectors []ConnectorConfig
	// Table receives the routes; NewEtcd makes one when nil.
	Table *routing.Table
	// LeaseTTL is the election and replica lease TTL (whole seconds, at
	// least 2s; default 10s): a crashed leader is replaced within about it.
	LeaseTTL time.Duration
	// HealthInterval between etcd reachability checks; default 1s. From
	// the third failed check in a row on, checks go through a fresh etcd
	// client, which replaces the current one once it answers, in case the
	// old connection is half-broken rather than etcd down.
	HealthInterval time.Duration
	// ResyncInterval: the follower re-reads everything this often even
	// when its watch looks fine; default 30s.
	ResyncInterval time.Duration
	// ProgressInterval: how often a watch asks etcd to confirm it is
	// current; a watch that does not answer within another interval is
	// abandoned and the view re-read. Default 1s.
	ProgressInterval time.Duration
	// RequestTimeout bounds single etcd calls; default 3s.
	RequestTimeout time.Duration
	// ReportInterval: the same failure report (connector, epoch, server) is
	// sent at most this often; default 1s.
	ReportInterval time.Duration
	// CandidatesInterval: the leader republishes candidate health at most
	// this often (and at once with every new choice); default 5s.
	CandidatesInterval time.Duration
	// FailoverTimeout bounds Failover's wait for the new route when ctx has
	// no earlier deadline; default 15s.
	FailoverTimeout time.Duration
	// Backoff between retries of failed etcd work; default 250ms.
	Backoff time.Duration
	// Traffic is this replica's passive HS2 health evidence (optional):
	// its summary is published under traffic/<id> at most every
	// TrafficInterval while calls happen, and other replicas' summaries
	// are merged into it, so the leader's selector sees every replica's
	// traffic (see package traffic).
	Traffic TrafficExchange
	// TrafficInterval between traffic summary writes; default 500ms.
	TrafficInterval time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
}

func (c EtcdConfig) withDefaults() EtcdConfig {
	if c.Cluster == "" {
		c.Cluster = "default"
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
	c.LeaseTTL = time.Duration(math.Ceil(c.LeaseTTL.Seconds())) * time.Second
	if c.HealthInterval <= 0 {
		c.HealthInterval = time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 3 * time.Second
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = 30 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	if c.ReportInterval <= 0 {
		c.ReportInterval = time.Second
	}
	if c.CandidatesInterval <= 0 {
		c.CandidatesInterval = 5 * time.Second
	}
	if c.TrafficInterval <= 0 {
		c.TrafficInterval = 500 * time.Millisecond
	}
	if c.FailoverTimeout <= 0 {
		c.FailoverTimeout = 15 * time.Second
	}
	if c.Backoff <= 0 {
		c.Backoff = 250 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Table == nil {
		c.Table = routing.NewTable()
	}
	return c
}

func validateConnectors(cs []ConnectorConfig) error {
	seen := map[string]bool{}
	for _, c := range cs {
		if c.Name == "" || strings.ContainsAny(c.Name, "/ ") {
			return fmt.Errorf("cluster: connector name %q must be non-empty, without / or spaces", c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("cluster: connector %q configured twice", c.Name)
		}
		if c.NewSelector == nil {
			return fmt.Errorf("cluster: connector %q has no NewSelector", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// keys is the etcd layout of one cluster.
type keys struct{ root string }

func newKeys(cluster string) keys { return keys{root: "/hiveqd/" + cluster + "/"} }

func (k keys) leader() string                { return k.root + "leader" }
func (k keys) connector(name string) string  { return k.root + "connectors/" + name }
func (k keys) candidates(name string) string { return k.root + "candidates/" + name }
func (k keys) replica(id string) string      { return k.root + "replicas/" + id }
func (k keys) reports() string               { return k.root + "reports/" }
func (k keys) report(conn, id string) string { return k.reports() + conn + "/" + id }
func (k keys) traffic(id string) string      { return k.root + "traffic/" + id }

// candidatesDoc is the value of candidates/<name>.
type candidatesDoc struct {
	Leader     string                     `json:"leader"`
	Updated    time.Time                  `json:"updated"`
	Candidates []registry.CandidateHealth `json:"candidates"`
}

// reportDoc is the value of reports/<connector>/<replica>.
type reportDoc struct {
	Epoch  uint64 `json:"epoch"`
	Server string `json:"server"`
	Error  string `json:"error"`
	// Refused: the replica's call found the port closed (the server is
	// gone), as opposed to a stall or a reset. The leader's probes still
	// decide; the flag says how urgent and is logged.
	Refused bool      `json:"refused,omitempty"`
	Time    time.Time `json:"time"`
}

// Refused reports whether err is a refused connection: nothing listens on
// the server's port, its process is gone. Timeouts, stalls and resets are
// not: a slow or saturated server is never declared dead.
func Refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// Node is the etcd-mode Coordinator of one replica.
type Node struct {
	cfg     EtcdConfig
	keys    keys
	table   *routing.Table
	log     *slog.Logger
	started time.Time
	conns   map[string]ConnectorConfig

	mirrorSync *etcdsync.Syncer // keeps the mirrored view of etcd current
	rep        reporter
	// closing tracks clients being closed in the background: closing one
	// whose connection is blackholed can block for seconds (gRPC flushes a
	// GOAWAY first), and the health loop must not wait for it.
	closing sync.WaitGroup
	// reregister is set when the mirror sees this replica's entry missing
	// or different from what it holds (deleted, or etcd restored from an
	// older snapshot): the replica loop writes it again.
	reregister atomic.Bool

	mu         sync.Mutex
	cli        *clientv3.Client // replaced when its connection looks broken
	running    bool
	synced     bool   // the mirror has read etcd at least once
	etcdErr    string // the last reachability check's failure, "" if fine
	leaders    map[string]leaderelect.Leader
	replicas   map[string]Replica
	candidates map[string]candidatesDoc
	term       *term // set while this replica leads
	changed    broadcast
}

var _ Coordinator = (*Node)(nil)

// NewEtcd returns a replica that coordinates through etcd; call Run.
func NewEtcd(cfg EtcdConfig) (*Node, error) {
	if cfg.ReplicaID == "" || strings.ContainsAny(cfg.ReplicaID, "/ ") {
		return nil, fmt.Errorf("cluster: replica id %q must be non-empty, without / or spaces", cfg.ReplicaID)
	}
	if strings.ContainsAny(cfg.Cluster, "/ ") {
		return nil, fmt.Errorf("cluster: cluster name %q must be without / or spaces", cfg.Cluster)
	}
	if len(cfg.Etcd.Endpoints) == 0 {
		return nil, errors.New("cluster: no etcd endpoints")
	}
	if err := validateConnectors(cfg.Connectors); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:        cfg,
		keys:       newKeys(cfg.Cluster),
		table:      cfg.Table,
		log:        cfg.Logger.With("replica", cfg.ReplicaID, "cluster", cfg.Cluster),
		started:    cfg.Now().UTC(),
		conns:      map[string]ConnectorConfig{},
		rep:        newReporter(),
		leaders:    map[string]leaderelect.Leader{},
		replicas:   map[string]Replica{},
		candidates: map[string]candidatesDoc{},
		changed:    newBroadcast(),
	}
	for _, c := range cfg.Connectors {
		n.conns[c.Name] = c
	}
	var err error
	n.mirrorSync, err = n.newSyncer(n.keys.root)
	if err != nil {
		return nil, err
	}
	n.table.OnSwitch(func(_, _ *routing.Route) {
		n.notify()
		n.rep.signal() // republish the epochs this replica holds
	})
	return n, nil
}

// Routes is the table this replica follows.
func (n *Node) Routes() *routing.Table { return n.table }

// Run coordinates until ctx ends. Run may be called once.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.running {
		n.mu.Unlock()
		return errors.New("cluster: Run called twice")
	}
	n.running = true
	n.mu.Unlock()

	cli, err := clientv3.New(leaderelect.ClientConfig(n.cfg.Etcd))
	if err != nil {
		return fmt.Errorf("cluster: etcd client: %w", err)
	}
	n.mu.Lock()
	n.cli = cli
	n.mu.Unlock()
	defer func() {
		n.etcd().Close()
		n.closing.Wait()
	}()

	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	spawn(func() { n.mirror(ctx) })
	spawn(func() { n.health(ctx) })
	spawn(func() { n.replicaLoop(ctx) })
	spawn(func() {
		err := leaderelect.Run(ctx, leaderelect.Config{
			Etcd:           n.cfg.Etcd,
			Prefix:         n.keys.leader(),
			Self:           leaderelect.Identity{ID: n.cfg.ReplicaID, Addr: n.cfg.Address},
			TTL:            n.cfg.LeaseTTL,
			RequestTimeout: n.cfg.RequestTimeout,
			Logger:         n.cfg.Logger.With("cluster", n.cfg.Cluster),
		}, func(lctx context.Context, t leaderelect.Term) error { return n.lead(lctx, t) })
		if err != nil {
			n.log.Error("leader election stopped", "err", err)
		}
	})
	wg.Wait()
	return nil
}

// newSyncer returns an etcdsync.Syncer for the prefix under this node's
// client, timeouts and logger.
func (n *Node) newSyncer(prefix string) (*etcdsync.Syncer, error) {
	return etcdsync.New(etcdsync.Config{
		Client:           n.etcd,
		Key:              prefix,
		Prefix:           true,
		RequestTimeout:   n.cfg.RequestTimeout,
		Backoff:          n.cfg.Backoff,
		ProgressInterval: n.cfg.ProgressInterval,
		ResyncInterval:   n.cfg.ResyncInterval,
		Logger:           n.log,
	})
}

// etcd is the current client.
func (n *Node) etcd() *clientv3.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cli
}

// check is a linearizable read of etcd. From the third failure in a row
// on, it reads through a fresh client instead, which replaces the current
// one once it answers: a link that was blackholed leaves connections that
// never recover, while a client that works is never dropped for one that
// may not. Users of the old client see their calls and watches fail and
// pick up the new one when they retry.
func (n *Node) check(ctx context.Context, failures int) error {
	cli, fresh := n.etcd(), (*clientv3.Client)(nil)
	if failures >= 3 {
		c, err := clientv3.New(leaderelect.ClientConfig(n.cfg.Etcd))
		if err != nil {
			n.log.Error("cluster: new etcd client", "err", err)
		} else {
			cli, fresh = c, c
		}
	}
	hctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	_, err := cli.Get(hctx, n.keys.leader()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if fresh == nil {
		return err
	}
	if err != nil {
		n.closeLater(fresh)
		return err
	}
	n.mu.Lock()
	old := n.cli
	n.cli = fresh
	n.mu.Unlock()
	n.closeLater(old)
	return nil
}

// closeLater closes cli in the background; Run waits for it before it
// returns.
func (n *Node) closeLater(cli *clientv3.Client) {
	n.closing.Add(1)
	go func() {
		defer n.closing.Done()
		cli.Close()
	}()
}

func (n *Node) notify() {
	n.mu.Lock()
	n.changed.notify()
	n.mu.Unlock()
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ---- following ----

// mirror keeps the table and the topology in step with etcd through the
// etcdsync primitive: a snapshot of everything under the cluster's root,
// then events, and a fresh snapshot after any watch failure (compaction,
// lost leader, disconnect, unanswered progress request), every
// ResyncInterval, and when health recovers.
func (n *Node) mirror(ctx context.Context) {
	err := n.mirrorSync.Run(ctx, func(u etcdsync.Update) error {
		if u.Snapshot {
			n.applySnapshot(u.Kvs)
		} else {
			n.applyEvents(u.Events)
		}
		return nil
	})
	if err != nil {
		n.log.Error("cluster: mirror stopped", "err", err)
	}
}

// checkSelf compares this replica's entry as etcd has it (nil: absent)
// with what it should say, and has the replica loop rewrite it if they
// differ, so that the epochs it holds stay registered for a future leader's
// floor even after etcd lost them.
func (n *Node) checkSelf(raw []byte) {
	if string(raw) != n.selfDoc() {
		n.reregister.Store(true)
		n.rep.signal()
	}
}

// split returns the kind of a key under root and the rest of it.
func (n *Node) split(key string) (kind, rest string) {
	s, ok := strings.CutPrefix(key, n.keys.root)
	if !ok {
		return "", ""
	}
	kind, rest, _ = strings.Cut(s, "/")
	return kind, rest
}

func (n *Node) parseRoute(name string, v []byte) (routing.Route, bool) {
	var r routing.Route
	if err := json.Unmarshal(v, &r); err != nil {
		n.log.Warn("cluster: bad published route", "connector", name, "err", err)
		return r, false
	}
	r.Connector = name
	return r, true
}

func (n *Node) applySnapshot(kvs []*mvccpb.KeyValue) {
	leaders := map[string]leaderelect.Leader{}
	replicas := map[string]Replica{}
	cands := map[string]candidatesDoc{}
	var routes []routing.Route
	pubs := map[string]*routing.Route{}
	var selfRaw []byte
	for _, kv := range kvs {
		key := string(kv.Key)
		switch kind, rest := n.split(key); kind {
		case "leader":
			if l, err := leaderelect.ParseLeader(key, kv.Value, kv.CreateRevision); err == nil {
				leaders[key] = l
			}
		case "replicas":
			var r Replica
			if json.Unmarshal(kv.Value, &r) == nil {
				replicas[rest] = r
			}
			if rest == n.cfg.ReplicaID {
				selfRaw = kv.Value
			}
		case "candidates":
			var d candidatesDoc
			if json.Unmarshal(kv.Value, &d) == nil {
				cands[rest] = d
			}
		case "connectors":
			if r, ok := n.parseRoute(rest, kv.Value); ok {
				routes = append(routes, r)
				pubs[rest] = &r
			}
		}
	}
	for _, r := range routes {
		n.table.Update(r)
	}
	n.checkSelf(selfRaw)
	n.mu.Lock()
	n.leaders, n.replicas, n.candidates = leaders, replicas, cands
	n.synced = true
	n.changed.notify()
	t := n.term
	n.mu.Unlock()
	if t != nil {
		for name, c := range t.conns {
			c.observe(pubs[name])
		}
	}
}

func (n *Node) applyEvents(evs []*clientv3.Event) {
	var routes []routing.Route
	pubs := map[string]*routing.Route{}
	selfEv, selfRaw := false, []byte(nil)
	replicasChanged := false
	n.mu.Lock()
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		del := ev.Type == clientv3.EventTypeDelete
		switch kind, rest := n.split(key); kind {
		case "leader":
			if del {
				delete(n.leaders, key)
			} else if l, err := leaderelect.ParseLeader(key, ev.Kv.Value, ev.Kv.CreateRevision); err == nil {
				n.leaders[key] = l
			}
		case "replicas":
			replicasChanged = true
			var r Replica
			if del {
				delete(n.replicas, rest)
			} else if json.Unmarshal(ev.Kv.Value, &r) == nil {
				n.replicas[rest] = r
			}
			if rest == n.cfg.ReplicaID {
				selfEv, selfRaw = true, nil
				if !del {
					selfRaw = ev.Kv.Value
				}
			}
		case "candidates":
			var d candidatesDoc
			if del {
				delete(n.candidates, rest)
			} else if json.Unmarshal(ev.Kv.Value, &d) == nil {
				n.candidates[rest] = d
			}
		case "traffic":
			n.applyTraffic(rest, ev.Kv.Value, del)
		case "connectors":
			// A deleted route is ignored: the table keeps the last one,
			// which is what a replica should serve until told otherwise.
			// The leader republishes it.
			pubs[rest] = nil
			if !del {
				if r, ok := n.parseRoute(rest, ev.Kv.Value); ok {
					routes = append(routes, r)
					pubs[rest] = &r
				}
			}
		}
	}
	n.changed.notify()
	t := n.term
	n.mu.Unlock()
	for _, r := range routes {
		n.table.Update(r)
	}
	if selfEv {
		n.checkSelf(selfRaw)
	}
	if t != nil {
		for name, c := range t.conns {
			if r, ok := pubs[name]; ok {
				c.observe(r)
			} else if replicasChanged {
				c.recheck()
			}
		}
	}
}

// health checks that etcd answers a linearizable read; when it recovers
// the mirror re-reads everything.
func (n *Node) health(ctx context.Context) {
	failures := 0
	stale := false
	for {
		stale = n.logStaleness(stale)
		err := n.check(ctx, failures)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		n.mu.Lock()
		was := n.etcdErr
		if err != nil {
			n.etcdErr = err.Error()
		} else {
			n.etcdErr = ""
		}
		if was != n.etcdErr {
			n.changed.notify()
		}
		n.mu.Unlock()
		switch {
		case err != nil && was == "":
			n.log.Warn("cluster: etcd unreachable; serving the last published routes, no failover until it returns", "err", err)
		case err == nil && was != "":
			n.log.Info("cluster: etcd reachable again; resynchronising")
			n.mirrorSync.Resync()
		}
		if !sleep(ctx, n.cfg.HealthInterval) {
			return
		}
	}
}

// logStaleness logs when the view becomes stale or current again, and
// notifies topology watchers; it returns whether the view is stale now.
func (n *Node) logStaleness(was bool) bool {
	if n.ViewConfirmedAt().IsZero() {
		// Not read yet: nothing to call stale or current. Returning was
		// (not "stale") keeps the first real staleness a transition that
		// gets logged, however soon it comes.
		return was
	}
	stale, age := n.viewStale(time.Now())
	if stale == was {
		return stale
	}
	if stale {
		n.log.Warn("cluster: view of etcd not confirmed; a failover may have been missed", "age", age.Round(time.Millisecond))
	} else {
		n.log.Info("cluster: view of etcd confirmed current again")
	}
	n.notify()
	return stale
}

// Health is false while etcd is unreachable or not yet read.
func (n *Node) Health() (bool, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.healthLocked()
}

func (n *Node) healthLocked() (bool, string) {
	switch {
	case !n.running:
		return false, "coordinator not running"
	case n.etcdErr != "":
		return false, "etcd unreachable (serving the last published routes; no failover possible): " + n.etcdErr
	case !n.synced:
		return false, "not yet synchronised with etcd"
	}
	return true, ""
}

// Healthy is Health without the reason.
func (n *Node) Healthy() bool {
	ok, _ := n.Health()
	return ok
}

// IsLeader reports whether this replica leads now.
func (n *Node) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.term != nil
}

// leaderLocked is the holder of the oldest election key.
func (n *Node) leaderLocked() (leaderelect.Leader, bool) {
	var best leaderelect.Leader
	ok := false
	for _, l := range n.leaders {
		if !ok || l.Rev < best.Rev {
			best, ok = l, true
		}
	}
	return best, ok
}

// LeaderAddr is the leader's gRPC address as last seen in etcd.
func (n *Node) LeaderAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, _ := n.leaderLocked()
	return l.Addr
}

// Topology is this replica's view of the cluster.
func (n *Node) Topology() Topology {
	routes := n.table.Snapshot()
	n.mu.Lock()
	defer n.mu.Unlock()
	t := Topology{
		Cluster:      n.cfg.Cluster,
		Coordination: "etcd",
		Self:         Replica{ID: n.cfg.ReplicaID, Address: n.cfg.Address, Started: n.started, Leader: n.term != nil},
	}
	if ok, why := n.healthLocked(); !ok {
		t.Degraded, t.DegradedReason = true, why
	}
	t.ViewConfirmedAt = n.ViewConfirmedAt()
	var age time.Duration
	t.ViewStale, age = n.viewStale(time.Now())
	if t.ViewStale && !t.Degraded && !t.ViewConfirmedAt.IsZero() {
		t.Degraded, t.DegradedReason = true, fmt.Sprintf("view of etcd not confirmed for %v: a failover may have been missed", age.Round(time.Second))
	}
	l, haveLeader := n.leaderLocked()
	if haveLeader {
		lr := Replica{ID: l.ID, Address: l.Addr, Leader: true}
		if r, ok := n.replicas[l.ID]; ok {
			lr.Started = r.Started
		}
		t.Leader = &lr
	}
	seenSelf := false
	for _, r := range n.replicas {
		r.Leader = haveLeader && r.ID == l.ID
		seenSelf = seenSelf || r.ID == n.cfg.ReplicaID
		t.Replicas = append(t.Replicas, r)
	}
	if !seenSelf {
		t.Replicas = append(t.Replicas, t.Self)
	}
	sort.Slice(t.Replicas, func(i, j int) bool { return t.Replicas[i].ID < t.Replicas[j].ID })
	t.Connectors = n.connectorStates(routes, func(name string) ([]registry.CandidateHealth, time.Time) {
		d := n.candidates[name]
		return d.Candidates, d.Updated
	})
	return t
}

// connectorStates lists every configured or published connector.
func (n *Node) connectorStates(routes []routing.Route, cands func(string) ([]registry.CandidateHealth, time.Time)) []ConnectorState {
	return connectorStates(n.cfg.Connectors, routes, cands)
}

func connectorStates(conf []ConnectorConfig, routes []routing.Route, cands func(string) ([]registry.CandidateHealth, time.Time)) []ConnectorState {
	byName := map[string]routing.Route{}
	for _, r := range routes {
		byName[r.Connector] = r
	}
	for _, c := range conf {
		if _, ok := byName[c.Name]; !ok {
			byName[c.Name] = routing.Route{Connector: c.Name, Reason: "not chosen yet"}
		}
	}
	out := make([]ConnectorState, 0, len(byName))
	for _, r := range byName {
		cs := ConnectorState{Route: r}
		cs.Candidates, cs.CandidatesAt = cands(r.Connector)
		out = append(out, cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Connector < out[j].Connector })
	return out
}

// WatchTopology streams the topology now and after every change.
func (n *Node) WatchTopology(ctx context.Context) <-chan Topology {
	return watchTopology(ctx, n.Topology, func() <-chan struct{} {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.changed.ch
	})
}
