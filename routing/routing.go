// Package routing holds, on every replica, the HS2 server each connector
// routes to and the epoch of that choice. Sources (the etcd follower, or
// discovery itself in standalone mode) feed it; the query engine reads it.
//
// Epochs only move forward: an update whose epoch is not newer than the
// current one is dropped, so a stale publication or report can never replace
// a newer choice.
package routing

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

// Route is one connector's published choice.
type Route struct {
	Connector string        `json:"connector"`
	Epoch     uint64        `json:"epoch"`
	Endpoint  *hs2.Endpoint `json:"endpoint,omitempty"` // nil: no HS2 available
	// Reason says why this choice was made, or why none is available.
	Reason   string    `json:"reason"`
	ChosenBy string    `json:"chosen_by,omitempty"` // replica id of the leader
	ChosenAt time.Time `json:"chosen_at"`
	// Drain labels a planned switch (the previous server deregistered, or
	// an admin moved traffic off it). It is informational: a route change
	// decides only where new queries go.
	Drain bool `json:"drain,omitempty"`
	// PrevDead is set when the previous server was found dead (every probe
	// refused: its process is gone). Only then does the switch end the
	// queries still running there (Current.Lost); any other switch leaves
	// them to finish, or to fail on evidence from their own calls.
	PrevDead bool `json:"prev_dead,omitempty"`
}

// ErrNoRoute is wrapped by Get's error when a connector has no server.
var ErrNoRoute = errors.New("no HiveServer2 available")

// ErrUnknownConnector is wrapped by Get's error for a connector the table
// has never heard of.
var ErrUnknownConnector = errors.New("unknown connector")

// Current is a route as a query sees it when it starts, plus signals for its
// end of life.
type Current struct {
	Route
	lost       chan struct{}
	superseded chan struct{}
	next       *Route // set once superseded
	mu         *sync.Mutex
}

// Lost is closed when this route's server was replaced because it was found
// dead (Route.PrevDead): queries running there cannot finish. A switch for
// any other reason (drain, probe timeouts, manual failover) never closes it.
func (c *Current) Lost() <-chan struct{} { return c.lost }

// Superseded is closed when any newer route replaced this one.
func (c *Current) Superseded() <-chan struct{} { return c.superseded }

// Next is the route that replaced this one, once Superseded is closed.
func (c *Current) Next() *Route {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// SwitchFunc is told about every accepted change (old is nil for the first).
type SwitchFunc func(old, new *Route)

// Table is the set of current routes, safe for concurrent use.
type Table struct {
	mu       sync.Mutex
	routes   map[string]*Current
	onSwitch []SwitchFunc
	changed  chan struct{}
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{routes: map[string]*Current{}, changed: make(chan struct{})}
}

// OnSwitch registers f to run (synchronously, outside the table's lock) after
// every accepted update. The query engine uses it to reset its Thrift
// clients for the old server.
func (t *Table) OnSwitch(f SwitchFunc) {
	t.mu.Lock()
	t.onSwitch = append(t.onSwitch, f)
	t.mu.Unlock()
}

// Update installs r if its epoch is newer than the connector's current one
// and reports whether it did.
func (t *Table) Update(r Route) bool {
	t.mu.Lock()
	old := t.routes[r.Connector]
	if old != nil && r.Epoch <= old.Epoch {
		t.mu.Unlock()
		return false
	}
	mu := &sync.Mutex{}
	t.routes[r.Connector] = &Current{Route: r, lost: make(chan struct{}), superseded: make(chan struct{}), mu: mu}
	var oldRoute *Route
	if old != nil {
		rr := r
		old.mu.Lock()
		old.next = &rr
		old.mu.Unlock()
		sameServer := old.Endpoint != nil && r.Endpoint != nil && *old.Endpoint == *r.Endpoint
		if r.PrevDead && !sameServer {
			close(old.lost)
		}
		close(old.superseded)
		o := old.Route
		oldRoute = &o
	}
	close(t.changed)
	t.changed = make(chan struct{})
	subs := append([]SwitchFunc(nil), t.onSwitch...)
	t.mu.Unlock()
	for _, f := range subs {
		f(oldRoute, &r)
	}
	return true
}

// Get returns the connector's current route, or an error wrapping
// ErrUnknownConnector or ErrNoRoute (which carries the published reason).
func (t *Table) Get(connector string) (*Current, error) {
	t.mu.Lock()
	c := t.routes[connector]
	t.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("connector %q: %w", connector, ErrUnknownConnector)
	}
	if c.Endpoint == nil {
		return c, fmt.Errorf("connector %q (epoch %d): %w: %s", connector, c.Epoch, ErrNoRoute, c.Reason)
	}
	return c, nil
}

// Snapshot returns every connector's route, sorted by connector.
func (t *Table) Snapshot() []Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Route, 0, len(t.routes))
	for _, c := range t.routes {
		out = append(out, c.Route)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Connector < out[j].Connector })
	return out
}

// Changed returns a channel closed at the next accepted update.
func (t *Table) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}
