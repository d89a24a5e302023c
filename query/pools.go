package query

import (
	"context"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/routing"
)

// poolSet holds one session pool per connector and endpoint. Pools of a
// server the connector no longer routes to are closed: idle sessions at
// once, lent ones as their queries return them.
type poolSet struct {
	closeTimeout time.Duration

	mu     sync.Mutex
	pools  map[poolKey]*hs2.Pool
	closed bool
	wg     sync.WaitGroup // pool closings in flight
}

type poolKey struct {
	connector string
	ep        hs2.Endpoint
}

func newPoolSet(closeTimeout time.Duration) *poolSet {
	return &poolSet{closeTimeout: closeTimeout, pools: map[poolKey]*hs2.Pool{}}
}

// get returns the pool for cur's server. It fails with errRouteChanged when
// cur was superseded: its pool may already have been closed, and a pool
// created now would never be.
func (ps *poolSet) get(connector string, cur *routing.Current, cfg hs2.PoolConfig) (*hs2.Pool, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil, errShutdown
	}
	select {
	case <-cur.Superseded():
		// The switch that superseded cur ran (or is about to run) onSwitch
		// under ps.mu; that is why this check is under it too.
		return nil, errRouteChanged
	default:
	}
	k := poolKey{connector, *cur.Endpoint}
	p := ps.pools[k]
	if p == nil {
		p = hs2.NewPool(*cur.Endpoint, cfg)
		ps.pools[k] = p
	}
	return p, nil
}

// onSwitch is the routing table's hook: a connector moved away from a
// server, so its sessions there are reset. Every replica follows the same
// table, so all of them reset their clients for the old server together.
func (ps *poolSet) onSwitch(old, new *routing.Route) {
	if old == nil || old.Endpoint == nil {
		return
	}
	if new != nil && new.Endpoint != nil && *new.Endpoint == *old.Endpoint {
		return
	}
	ps.reset(poolKey{old.Connector, *old.Endpoint}, nil)
}

// reset closes the pool under k (only if it is still want, unless want is
// nil) so that the next query dials afresh.
func (ps *poolSet) reset(k poolKey, want *hs2.Pool) {
	ps.mu.Lock()
	p := ps.pools[k]
	if p == nil || want != nil && p != want {
		ps.mu.Unlock()
		return
	}
	delete(ps.pools, k)
	ps.wg.Add(1)
	ps.mu.Unlock()
	// Closing idle sessions talks to the old server, which may hang; the
	// routing table's update must not wait for that.
	go func() {
		defer ps.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), ps.closeTimeout)
		defer cancel()
		p.CloseAll(ctx)
	}()
}

// close closes every pool and waits for closings in flight, until ctx ends.
func (ps *poolSet) close(ctx context.Context) {
	ps.mu.Lock()
	ps.closed = true
	all := make([]*hs2.Pool, 0, len(ps.pools))
	for _, p := range ps.pools {
		all = append(all, p)
	}
	clear(ps.pools)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.CloseAll(ctx)
		}()
	}
	wg.Wait()
	ps.wg.Wait()
}

// stats sums the pools' statistics (for tests and metrics).
func (ps *poolSet) stats() hs2.PoolStats {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var s hs2.PoolStats
	for _, p := range ps.pools {
		ps := p.Stats()
		s.Open += ps.Open
		s.Idle += ps.Idle
		s.InUse += ps.InUse
	}
	return s
}
