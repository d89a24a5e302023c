package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hiveqd/hiveqd/etcdsync"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/leaderelect"
	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
)

// errDeposed ends a term whose fenced write found another leader.
var errDeposed = errors.New("deposed: the election key is no longer ours")

// errConflict is a fenced write that lost to a newer publication.
var errConflict = errors.New("published route changed concurrently")

// term is this replica's work while it leads.
type term struct {
	lt    leaderelect.Term
	conns map[string]*connLeader
}

// lead is one leadership term: choose and publish every connector, and act
// on failure reports, until ctx ends or a write finds us deposed. It
// returns only when all of it (selectors included) has stopped.
func (n *Node) lead(ctx context.Context, lt leaderelect.Term) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := &term{lt: lt, conns: map[string]*connLeader{}}
	for _, cc := range n.cfg.Connectors {
		t.conns[cc.Name] = &connLeader{
			n: n, cc: cc, lt: lt,
			key:   n.keys.connector(cc.Name),
			wake:  make(chan struct{}, 1),
			ready: make(chan struct{}),
		}
	}
	n.mu.Lock()
	n.term = t
	n.changed.notify()
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.term = nil
		n.changed.notify()
		n.mu.Unlock()
	}()

	var wg sync.WaitGroup
	for _, c := range t.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(ctx); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.watchReports(ctx, t)
	}()
	wg.Wait()
	if err := context.Cause(ctx); errors.Is(err, errDeposed) {
		return err
	}
	return nil
}

// connLeader chooses and publishes one connector during one term.
type connLeader struct {
	n   *Node
	cc  ConnectorConfig
	lt  leaderelect.Term
	key string

	wake chan struct{}
	// ready is closed once the route is loaded and a selector is set: only
	// then can a failure report be judged and passed on, so reports are
	// not consumed before.
	ready     chan struct{}
	readyOnce sync.Once

	mu        sync.Mutex
	loaded    bool
	published *routing.Route // as in etcd; nil when absent
	modRev    int64          // the key's ModRevision as last seen (0: absent)
	sel       Selector
	last      *registry.Choice // the choice last published this term
	reported  uint64           // highest epoch named by a failure report
	lostGen   uint64           // counts observe's resets of published
	want      *registry.Choice // latest choice not yet published
	wantSeq   uint64
	cands     []registry.CandidateHealth
	candsDue  bool
}

func (c *connLeader) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *connLeader) run(ctx context.Context) error {
	if !c.load(ctx) {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	selDone := make(chan struct{})
	defer func() { <-selDone }()
	defer cancel()
	go func() {
		defer close(selDone)
		c.runSelector(ctx)
	}()

	tick := time.NewTicker(c.n.cfg.CandidatesInterval)
	defer tick.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-retry:
		case <-tick.C:
			c.mu.Lock()
			if c.sel != nil {
				c.cands, c.candsDue = c.sel.Snapshot(), true
			}
			c.mu.Unlock()
		}
		retry = nil
		if err := c.sync(ctx); err != nil {
			if errors.Is(err, errDeposed) {
				c.n.log.Warn("cluster: deposed while publishing", "connector", c.cc.Name)
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			c.n.log.Warn("cluster: publish failed; retrying", "connector", c.cc.Name, "err", err)
			retry = time.After(c.n.cfg.Backoff)
		}
	}
}

// load reads the published route; false when ctx ended first.
func (c *connLeader) load(ctx context.Context) bool {
	for {
		gctx, cancel := context.WithTimeout(ctx, c.n.cfg.RequestTimeout)
		resp, err := c.n.etcd().Get(gctx, c.key)
		cancel()
		if err == nil {
			c.mu.Lock()
			c.setPublishedLocked(resp.Kvs)
			c.loaded = true
			c.mu.Unlock()
			return true
		}
		if !sleep(ctx, c.n.cfg.Backoff) {
			return false
		}
	}
}

func (c *connLeader) setPublishedLocked(kvs []*mvccpb.KeyValue) {
	c.published, c.modRev = nil, 0
	if len(kvs) == 0 {
		return
	}
	c.modRev = kvs[0].ModRevision
	if r, ok := c.n.parseRoute(c.cc.Name, kvs[0].Value); ok {
		c.published = &r
	}
}

// runSelector runs selectors until ctx ends, starting each from the
// published server so that a new leader keeps it unless it is unhealthy.
func (c *connLeader) runSelector(ctx context.Context) {
	for ctx.Err() == nil {
		sel := c.cc.NewSelector()
		c.mu.Lock()
		c.sel = sel
		var initial *hs2.Endpoint
		if c.published != nil && c.published.Endpoint != nil {
			ep := *c.published.Endpoint
			initial = &ep
		}
		c.mu.Unlock()
		c.readyOnce.Do(func() { close(c.ready) })
		err := sel.Run(ctx, initial, c.onChoice)
		if ctx.Err() != nil {
			return
		}
		c.n.log.Error("cluster: selector stopped; restarting", "connector", c.cc.Name, "err", err)
		sleep(ctx, c.n.cfg.Backoff)
	}
}

// onChoice is the selector's publish: it records the latest choice and
// returns at once, so etcd trouble never blocks the selector.
func (c *connLeader) onChoice(ch registry.Choice) {
	c.mu.Lock()
	c.want = &ch
	c.wantSeq++
	c.cands, c.candsDue = ch.Candidates, true
	c.mu.Unlock()
	c.signal()
}

// sync publishes the latest choice and candidate health.
func (c *connLeader) sync(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		floor := c.floor()
		c.mu.Lock()
		want, seq := c.want, c.wantSeq
		var route routing.Route
		changed := false
		if want != nil {
			prev := c.published
			if prev != nil && prev.Epoch < floor {
				// Behind what replicas hold (etcd lost data): publish
				// afresh above the floor.
				prev = nil
			}
			route, changed = nextRoute(prev, *want, c.cc.Name, c.n.cfg.ReplicaID, floor, c.n.cfg.Now())
			if !changed {
				// Already published (adopted from the previous term):
				// it is what to republish if the key is lost.
				c.last = want
			}
		}
		cands, candsDue := c.cands, c.candsDue
		modRev, lostGen := c.modRev, c.lostGen
		c.mu.Unlock()

		if !changed && !candsDue {
			c.clearWant(seq)
			return nil
		}
		var ops []clientv3.Op
		var cmps = []clientv3.Cmp{c.lt.Fence()}
		if changed {
			v, err := json.Marshal(route)
			if err != nil {
				return err
			}
			// "Epoch = previous": the key must still be the revision we
			// computed the next epoch from.
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(c.key), "=", modRev))
			ops = append(ops, clientv3.OpPut(c.key, string(v)))
		}
		if candsDue {
			v, err := json.Marshal(candidatesDoc{Leader: c.n.cfg.ReplicaID, Updated: c.n.cfg.Now().UTC(), Candidates: cands})
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(c.n.keys.candidates(c.cc.Name), string(v)))
		}
		rev, err := c.write(ctx, cmps, ops)
		if errors.Is(err, errConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		if changed && c.lostGen != lostGen {
			// The key was lost again after this write: keep observe's
			// view; the wake it sent republishes.
			c.last = want
		} else if changed {
			r := route
			c.published, c.modRev, c.last = &r, rev, want
			if c.wantSeq == seq {
				c.want = nil
			}
		} else if c.wantSeq == seq {
			c.want = nil
		}
		c.candsDue = false
		c.mu.Unlock()
		if changed {
			c.n.log.Info("cluster: published", "connector", c.cc.Name, "epoch", route.Epoch,
				"server", endpointString(route.Endpoint), "reason", route.Reason, "drain", route.Drain)
		}
		return nil
	}
}

// floor is the epoch no publication may go below: the highest one this
// replica holds, any replica has registered as holding, or any failure
// report names. It keeps epochs rising even when etcd lost the route.
func (c *connLeader) floor() uint64 {
	var floor uint64
	if cur, _ := c.n.table.Get(c.cc.Name); cur != nil {
		floor = cur.Epoch
	}
	c.n.mu.Lock()
	for _, r := range c.n.replicas {
		floor = max(floor, r.Epochs[c.cc.Name])
	}
	c.n.mu.Unlock()
	c.mu.Lock()
	floor = max(floor, c.reported)
	c.mu.Unlock()
	return floor
}

// observed is a connector key as the mirror saw it; route is nil when the
// key is absent (or unreadable).
type observed struct {
	route  *routing.Route
	modRev int64 // the key's ModRevision; 0 when absent
	rev    int64 // the revision the observation was made at
}

// observe is called by the mirror with the connector key's latest state.
// A key that vanished (deleted, or lost to an etcd restore) or went back
// below the floor is republished at once with the last choice, at a higher
// epoch; the fenced compare then expects the key as observed.
func (c *connLeader) observe(o *observed) {
	if o == nil {
		o = &observed{}
	}
	if o.route != nil && o.route.Epoch >= c.floor() {
		return
	}
	c.mu.Lock()
	if !c.loaded || (c.last == nil && c.want == nil) || o.rev < c.modRev {
		c.mu.Unlock()
		return
	}
	c.n.log.Warn("cluster: published route lost or behind; republishing", "connector", c.cc.Name)
	c.published, c.modRev = nil, o.modRev
	c.lostGen++
	if c.want == nil {
		c.want = c.last
	}
	c.wantSeq++ // a sync in flight must not clear it
	c.mu.Unlock()
	c.signal()
}

func (c *connLeader) clearWant(seq uint64) {
	c.mu.Lock()
	if c.wantSeq == seq {
		c.want = nil
	}
	c.mu.Unlock()
}

// write commits ops if this term still leads and cmps hold. It returns the
// new revision, errDeposed if the election key is no longer ours, or
// errConflict (after reloading the route) if the route moved underneath.
func (c *connLeader) write(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (int64, error) {
	tctx, cancel := context.WithTimeout(ctx, c.n.cfg.RequestTimeout)
	defer cancel()
	resp, err := c.n.etcd().Txn(tctx).If(cmps...).Then(ops...).
		Else(clientv3.OpGet(c.lt.Key), clientv3.OpGet(c.key)).Commit()
	if err != nil {
		return 0, err
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	lk := resp.Responses[0].GetResponseRange().Kvs
	if len(lk) == 0 || lk[0].CreateRevision != c.lt.Rev {
		return 0, errDeposed
	}
	c.mu.Lock()
	c.setPublishedLocked(resp.Responses[1].GetResponseRange().Kvs)
	c.mu.Unlock()
	return 0, errConflict
}

// report passes a failure report to the selector if it concerns the
// published route.
func (c *connLeader) report(d reportDoc, from string) {
	c.mu.Lock()
	c.reported = max(c.reported, d.Epoch)
	pub, sel := c.published, c.sel
	c.mu.Unlock()
	if sel == nil || !reportApplies(pub, d.Epoch, d.Server) {
		c.n.log.Debug("cluster: ignoring stale failure report", "connector", c.cc.Name, "from", from,
			"epoch", d.Epoch, "server", d.Server)
		return
	}
	c.n.log.Info("cluster: failure report", "connector", c.cc.Name, "from", from, "epoch", d.Epoch,
		"server", d.Server, "refused", d.Refused, "error", d.Error)
	sel.Report(d.Server)
}

// watchReports feeds failure reports to the connectors' selectors. It
// starts once every connector is ready, so that no report is marked seen
// before it can be acted on.
func (n *Node) watchReports(ctx context.Context, t *term) {
	for _, c := range t.conns {
		select {
		case <-c.ready:
		case <-ctx.Done():
			return
		}
	}
	seen := map[string]int64{} // key -> ModRevision handled
	handle := func(key string, value []byte, modRev int64) {
		if seen[key] == modRev {
			return
		}
		seen[key] = modRev
		rest := strings.TrimPrefix(key, n.keys.reports())
		conn, from, ok := strings.Cut(rest, "/")
		c := t.conns[conn]
		if !ok || c == nil {
			return
		}
		var d reportDoc
		if err := json.Unmarshal(value, &d); err != nil {
			return
		}
		c.report(d, from)
	}
	s, err := n.newSyncer(n.keys.reports())
	if err != nil {
		n.log.Error("cluster: report watch", "err", err)
		return
	}
	err = s.Run(ctx, func(u etcdsync.Update) error {
		if u.Snapshot {
			present := make(map[string]bool, len(u.Kvs))
			for _, kv := range u.Kvs {
				present[string(kv.Key)] = true
				handle(string(kv.Key), kv.Value, kv.ModRevision)
			}
			for k := range seen {
				if !present[k] {
					delete(seen, k)
				}
			}
			return nil
		}
		for _, ev := range u.Events {
			if ev.Type == clientv3.EventTypePut {
				handle(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
			} else {
				delete(seen, string(ev.Kv.Key))
			}
		}
		return nil
	})
	if err != nil {
		n.log.Error("cluster: report watch stopped", "err", err)
	}
}

// Failover asks the leader's selector to move connector off its server and
// waits for the new route. On a follower it returns a *NotLeaderError.
func (n *Node) Failover(ctx context.Context, req FailoverRequest) (routing.Route, error) {
	connector, expectedEpoch, reason := req.Connector, req.ExpectedEpoch, req.Reason
	if _, ok := n.conns[connector]; !ok {
		return routing.Route{}, fmt.Errorf("connector %q: %w", connector, routing.ErrUnknownConnector)
	}
	n.mu.Lock()
	t := n.term
	l, ok := n.leaderLocked()
	n.mu.Unlock()
	if t == nil {
		e := &NotLeaderError{}
		if ok && l.ID != n.cfg.ReplicaID {
			e.LeaderID, e.LeaderAddr = l.ID, l.Addr
		}
		return routing.Route{}, e
	}
	c := t.conns[connector]
	c.mu.Lock()
	loaded, pub, sel := c.loaded, c.published, c.sel
	c.mu.Unlock()
	if !loaded || sel == nil {
		return routing.Route{}, fmt.Errorf("connector %q: leader is still starting; retry", connector)
	}
	var cur uint64
	if pub != nil {
		cur = pub.Epoch
	}
	if expectedEpoch != 0 && expectedEpoch != cur {
		return routing.Route{}, &EpochMismatchError{Connector: connector, Expected: expectedEpoch, Current: cur}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.FailoverTimeout)
		defer cancel()
	}
	if err := sel.Failover(ctx, reason, registry.FailoverOptions{AbortRunning: req.AbortRunning}); err != nil {
		return routing.Route{}, fmt.Errorf("connector %q: failover: %w", connector, err)
	}
	return waitRoute(ctx, n.table, connector, cur)
}

func endpointString(e *hs2.Endpoint) string {
	if e == nil {
		return "none"
	}
	return e.String()
}
