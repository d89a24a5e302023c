package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
)

// chooser runs one connector's selector for as long as its owner lets it
// (a standalone process for its life, an etcd leader for one term), and
// hands every choice to publish: straight into the routing table when
// standalone, into the leader's fenced etcd transaction otherwise.
// current is the route publish made last; a restarted selector starts from
// its server, and failure reports and failovers are judged against it.
type chooser struct {
	name    string
	newSel  func() Selector
	publish func(registry.Choice)
	current func() *routing.Route
	backoff time.Duration
	log     *slog.Logger

	ready     chan struct{} // closed once the first selector is set
	readyOnce sync.Once

	mu  sync.Mutex
	sel Selector
}

func newChooser(cc ConnectorConfig, publish func(registry.Choice), current func() *routing.Route, backoff time.Duration, log *slog.Logger) *chooser {
	return &chooser{name: cc.Name, newSel: cc.NewSelector, publish: publish, current: current,
		backoff: backoff, log: log, ready: make(chan struct{})}
}

// run runs selectors until ctx ends, restarting one that stops, each from
// the current route's server so that it is kept unless it is unhealthy.
func (c *chooser) run(ctx context.Context) {
	for ctx.Err() == nil {
		sel := c.newSel()
		var initial *hs2.Endpoint
		if r := c.current(); r != nil && r.Endpoint != nil {
			ep := *r.Endpoint
			initial = &ep
		}
		c.mu.Lock()
		c.sel = sel
		c.mu.Unlock()
		c.readyOnce.Do(func() { close(c.ready) })
		err := sel.Run(ctx, initial, c.publish)
		if ctx.Err() != nil {
			return
		}
		c.log.Error("cluster: selector stopped; restarting", "connector", c.name, "err", err)
		sleep(ctx, c.backoff)
	}
}

// selector is the running selector; nil before run set one.
func (c *chooser) selector() Selector {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sel
}

// candidates is the selector's view of the registered servers.
func (c *chooser) candidates() []registry.CandidateHealth {
	if sel := c.selector(); sel != nil {
		return sel.Snapshot()
	}
	return nil
}

// report hands a failure report to the selector, which confirms it with
// its own probe; it returns false, doing nothing, when the report is stale
// (an older epoch or another server than the current route's).
func (c *chooser) report(epoch uint64, server string) bool {
	sel := c.selector()
	if sel == nil || !reportApplies(c.current(), epoch, server) {
		return false
	}
	sel.Report(server)
	return true
}

// failover asks the selector to move off the current server and waits,
// until ctx ends or else timeout, for table to route past the current
// epoch. A non-zero req.ExpectedEpoch must be the current epoch.
func (c *chooser) failover(ctx context.Context, req FailoverRequest, timeout time.Duration, table *routing.Table) (routing.Route, error) {
	sel := c.selector()
	if sel == nil {
		return routing.Route{}, fmt.Errorf("connector %q: still starting; retry", c.name)
	}
	var cur uint64
	if r := c.current(); r != nil {
		cur = r.Epoch
	}
	if req.ExpectedEpoch != 0 && req.ExpectedEpoch != cur {
		return routing.Route{}, &EpochMismatchError{Connector: c.name, Expected: req.ExpectedEpoch, Current: cur}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := sel.Failover(ctx, req.Reason, registry.FailoverOptions{AbortRunning: req.AbortRunning}); err != nil {
		return routing.Route{}, fmt.Errorf("connector %q: failover: %w", c.name, err)
	}
	return waitRoute(ctx, table, c.name, cur)
}
