// Package cluster decides, for every connector, which HiveServer2 this
// replica routes to, and keeps routing.Table up to date with that decision.
//
// Two coordinators implement the same interface. Etcd mode (NewEtcd): the
// replicas elect a leader (package leaderelect); only the leader runs
// discovery and health checks, and it publishes each connector's choice with
// an epoch in etcd, every write fenced on its leadership. Every replica,
// the leader included, follows the published keys into its routing.Table.
// Standalone mode (NewStandalone): one process runs the selectors itself and
// feeds its own table.
//
// etcd keys, under /hiveqd/<cluster>/:
//
//	leader/<lease>               election value {id, addr} (leaderelect)
//	connectors/<name>            routing.Route JSON: server, epoch, chosen_by, chosen_at, reason, drain
//	candidates/<name>            candidate health as the leader last saw it (throttled)
//	replicas/<id>                {id, address, started}, bound to the replica's lease
//	reports/<connector>/<id>     {epoch, server, error, refused, time}, bound to the replica's lease
//	traffic/<id>                 traffic.Summary: when calls to each HS2 were last answered (ages), bound to the replica's lease
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
)

// Selector chooses one connector's server; *registry.Selector implements
// it. Run's publish is called serially with every new choice; initial is the
// server already published, kept unless it is unhealthy.
type Selector interface {
	Run(ctx context.Context, initial *hs2.Endpoint, publish func(registry.Choice)) error
	Report(server string)
	Failover(ctx context.Context, reason string, opts registry.FailoverOptions) error
	Snapshot() []registry.CandidateHealth
}

// ConnectorConfig is one connector. NewSelector builds a fresh selector
// (discovery plus health checks) for each period this process chooses for
// the connector, i.e. each leadership term in etcd mode.
type ConnectorConfig struct {
	Name        string
	NewSelector func() Selector
}

// Coordinator is what the rest of the binary uses, whatever the mode.
type Coordinator interface {
	// Run works until ctx ends; it returns nil then, or an error for a
	// configuration it cannot use.
	Run(ctx context.Context) error
	// Routes is the table the query engine reads.
	Routes() *routing.Table
	// ReportFailure tells the chooser that this replica got a transport
	// error from server while using the connector's route at epoch. It
	// never blocks; repeated reports coalesce.
	ReportFailure(connector string, epoch uint64, server string, err error)
	Topology() Topology
	// WatchTopology sends the topology now and after each change (the
	// latest only, if the reader is slow) until ctx ends, then closes.
	WatchTopology(ctx context.Context) <-chan Topology
	// Failover moves a connector off its current server. A follower
	// returns a *NotLeaderError: forward the call to its LeaderAddr.
	Failover(ctx context.Context, req FailoverRequest) (routing.Route, error)
	// Health is false, with a reason, while this replica cannot reach its
	// coordination store (it keeps serving the last routes).
	Health() (ok bool, reason string)
	// LeaderAddr is the leader's gRPC address, "" while unknown.
	LeaderAddr() string
}

// FailoverRequest is a manual failover.
type FailoverRequest struct {
	Connector string
	// ExpectedEpoch 0 skips the epoch check.
	ExpectedEpoch uint64
	Reason        string
	// AbortRunning ends the queries still running on the old server (the
	// route says PrevDead); by default they may finish there (drain).
	AbortRunning bool
}

// Replica is one hiveqd process.
type Replica struct {
	ID      string    `json:"id"`
	Address string    `json:"address"`
	Started time.Time `json:"started"`
	Leader  bool      `json:"-"`
	// Epochs are the route epochs this replica's table holds, by
	// connector: a leader never publishes below them, even when etcd lost
	// the routes (a key deleted, a restore from an older snapshot).
	Epochs map[string]uint64 `json:"epochs,omitempty"`
}

// ConnectorState is one connector's route with the candidates behind it.
type ConnectorState struct {
	routing.Route
	Candidates []registry.CandidateHealth
	// CandidatesAt is when the candidates were last published.
	CandidatesAt time.Time
}

// Topology is this replica's view of the cluster (hiveq.v1.Topology).
type Topology struct {
	Cluster      string
	Coordination string // "etcd" or "standalone"
	Self         Replica
	Leader       *Replica // nil while no leader is known
	Replicas     []Replica
	Connectors   []ConnectorState
	// Degraded is set while etcd is unreachable: the last routes are
	// served and no failover can happen.
	Degraded       bool
	DegradedReason string
	// ViewConfirmedAt is when etcd last confirmed this replica's view
	// current (zero in standalone mode or before the first read);
	// ViewStale is set once that is older than a few progress intervals:
	// the replica may have missed a failover.
	ViewConfirmedAt time.Time
	ViewStale       bool
}

// ErrNotLeader is wrapped by *NotLeaderError.
var ErrNotLeader = errors.New("not the leader")

// ErrEpochMismatch is wrapped by *EpochMismatchError.
var ErrEpochMismatch = errors.New("epoch is no longer current")

// NotLeaderError is a leader-only call made on a follower.
type NotLeaderError struct {
	LeaderID   string // "" while no leader is known
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "not the leader, and no leader is elected"
	}
	return fmt.Sprintf("not the leader; the leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// EpochMismatchError refuses a Failover that names a superseded epoch.
type EpochMismatchError struct {
	Connector         string
	Expected, Current uint64
}

func (e *EpochMismatchError) Error() string {
	return fmt.Sprintf("connector %q: expected epoch %d, current is %d", e.Connector, e.Expected, e.Current)
}

func (e *EpochMismatchError) Unwrap() error { return ErrEpochMismatch }

// nextRoute turns a selector's choice into the route to publish after prev,
// or reports false when the choice changes nothing: same server (only the
// epoch would move, and a leadership change alone must not move traffic),
// or still no server for the same reason.
func nextRoute(prev *routing.Route, c registry.Choice, connector, by string, floor uint64, now time.Time) (routing.Route, bool) {
	if prev != nil {
		if prev.Endpoint != nil && c.Endpoint != nil && *prev.Endpoint == *c.Endpoint {
			return routing.Route{}, false
		}
		if prev.Endpoint == nil && c.Endpoint == nil && prev.Reason == c.Reason {
			return routing.Route{}, false
		}
	}
	epoch := floor
	if prev != nil && prev.Epoch > epoch {
		epoch = prev.Epoch
	}
	r := routing.Route{
		Connector: connector,
		Epoch:     epoch + 1,
		Reason:    c.Reason,
		ChosenBy:  by,
		ChosenAt:  now.UTC(),
	}
	if c.Endpoint != nil {
		ep := *c.Endpoint
		r.Endpoint = &ep
	}
	// Labels of the switch away from the previous server; "none" keeps
	// them too (the last server drained, or died).
	fromServer := prev != nil && prev.Endpoint != nil
	r.Drain = c.Drain && fromServer
	r.PrevDead = c.PrevDead && fromServer
	return r, true
}

// reportApplies says whether a failure report concerns the published route:
// a report made under an older epoch, or about another server, is stale and
// must not move traffic off a server chosen since.
func reportApplies(cur *routing.Route, epoch uint64, server string) bool {
	return cur != nil && cur.Endpoint != nil && cur.Epoch == epoch && cur.Endpoint.Addr() == server
}

// waitRoute waits until connector's route in t is newer than epoch.
func waitRoute(ctx context.Context, t *routing.Table, connector string, epoch uint64) (routing.Route, error) {
	for {
		ch := t.Changed()
		if c, _ := t.Get(connector); c != nil && c.Epoch > epoch {
			return c.Route, nil
		}
		select {
		case <-ctx.Done():
			return routing.Route{}, fmt.Errorf("connector %q: waiting for a route newer than epoch %d: %w", connector, epoch, ctx.Err())
		case <-ch:
		}
	}
}

// broadcast is a channel closed and replaced on every change.
type broadcast struct{ ch chan struct{} }

func newBroadcast() broadcast { return broadcast{ch: make(chan struct{})} }

// notify must be called with the owner's lock held.
func (b *broadcast) notify() {
	close(b.ch)
	b.ch = make(chan struct{})
}

// watchTopology runs the WatchTopology loop for get/changed. It sends the
// newest topology: a change while the reader is busy replaces the pending one.
func watchTopology(ctx context.Context, get func() Topology, changed func() <-chan struct{}) <-chan Topology {
	out := make(chan Topology)
	go func() {
		defer close(out)
		for {
			ch := changed()
			t := get()
			select {
			case out <- t:
			case <-ch:
				continue
			case <-ctx.Done():
				return
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
