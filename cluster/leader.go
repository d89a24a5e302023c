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
		c := &connLeader{
			n: n, cc: cc, lt: lt,
			key:  n.keys.connector(cc.Name),
			wake: make(chan struct{}, 1),
		}
		c.ch = newChooser(cc, c.onChoice, c.current, n.cfg.Backoff, n.log)
		t.conns[cc.Name] = c
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
	// ch runs the selector once the route is loaded; its ready channel
	// closes then: only from that point can a failure report be judged
	// and passed on, so reports are not consumed before.
	ch *chooser

	mu        sync.Mutex
	loaded    bool
	published *routing.Route   // as in etcd; nil when absent
	modRev    int64            // the key's ModRevision as last seen (0: absent)
	last      *registry.Choice // the choice last published this term
	reported  uint64           // highest epoch named by a failure report
	// verify: the mirror saw the key absent or below the floor; sync reads
	// it again before deciding anything, since the mirror may lag behind
	// this leader's own writes.
	verify bool
	// behind: etcd's route is absent or below the floor, and this is the
	// route the term keeps serving until it is published again above the
	// floor (the newest route this replica holds, or etcd's). The chooser
	// judges reports and failovers, and restarts selectors, from it.
	behind   *routing.Route
	want     *registry.Choice // latest choice not yet published
	wantSeq  uint64
	cands    []registry.CandidateHealth
	candsDue bool
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
		c.ch.run(ctx)
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
			if c.ch.selector() != nil {
				cands := c.ch.candidates()
				c.mu.Lock()
				c.cands, c.candsDue = cands, true
				c.mu.Unlock()
			}
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
			floor := c.floor()
			c.mu.Lock()
			c.setPublishedLocked(resp.Kvs)
			c.loaded = true
			c.republishIfBehindLocked(floor)
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

// current is the route as published in etcd (nil when absent), or while
// that is behind the floor, the route being published again above it.
func (c *connLeader) current() *routing.Route {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.behind != nil {
		return c.behind
	}
	return c.published
}

// republishIfBehindLocked is called with the key just read. If etcd's
// route is absent or below floor (etcd restored from an older backup, the
// key deleted), the term must publish above the floor even though its
// selector may never choose anew: a selector keeps the server it adopts.
// What it publishes is the term's latest choice, or else the newest route
// known here, the one this replica routes by (replicas drop etcd's older
// route, so that is what they all still serve), or else etcd's own. With
// none of them (nothing ever chosen), the selector's first choice goes
// above the floor by itself.
func (c *connLeader) republishIfBehindLocked(floor uint64) {
	if c.published != nil && c.published.Epoch >= floor {
		c.behind = nil
		return
	}
	if c.want == nil && c.last == nil {
		base := c.published
		if cur, _ := c.n.table.Get(c.cc.Name); cur != nil && (base == nil || cur.Epoch > base.Epoch) {
			r := cur.Route
			base = &r
		}
		if base == nil {
			return
		}
		ch := registry.Choice{Reason: base.Reason}
		if base.Endpoint != nil {
			ep := *base.Endpoint
			ch.Endpoint = &ep
		}
		c.want, c.behind = &ch, base
	} else if c.want == nil {
		c.want = c.last
	}
	c.wantSeq++
	c.n.log.Warn("cluster: published route lost or behind the replicas' epoch; republishing above it", "connector", c.cc.Name,
		"published_epoch", epochOf(c.published), "floor", floor, "server", endpointString(c.want.Endpoint))
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
	if err := c.verifyPublished(ctx); err != nil {
		return err
	}
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
		modRev := c.modRev
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
		if changed {
			r := route
			c.published, c.modRev, c.last, c.behind = &r, rev, want, nil
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

// recheck is called by the mirror when replicas' registrations changed:
// one may now hold an epoch above the published route (it re-registered
// after etcd was restored), which the route must be published above.
func (c *connLeader) recheck() {
	c.mu.Lock()
	r, loaded := c.published, c.loaded
	c.mu.Unlock()
	if loaded {
		c.observe(r)
	}
}

// observe is called by the mirror with the connector key's state as it
// saw it (nil: absent). A key that vanished (deleted, or lost to an etcd
// restore) or went back below the floor is read again by sync, which
// republishes the last choice above the floor if etcd confirms the loss.
// The mirror's view alone decides nothing: it may predate this leader's
// latest write.
func (c *connLeader) observe(r *routing.Route) {
	if r != nil && r.Epoch >= c.floor() {
		return
	}
	c.mu.Lock()
	c.verify = true
	c.mu.Unlock()
	c.signal()
}

// verifyPublished re-reads the key when observe asked for it. If it is
// absent or below the floor, the last choice of this term becomes the
// choice to publish again (at a higher epoch: sync treats a route below
// the floor as absent), fenced on the key as read.
func (c *connLeader) verifyPublished(ctx context.Context) error {
	c.mu.Lock()
	due := c.verify
	c.verify = false
	c.mu.Unlock()
	if !due {
		return nil
	}
	gctx, cancel := context.WithTimeout(ctx, c.n.cfg.RequestTimeout)
	resp, err := c.n.etcd().Get(gctx, c.key)
	cancel()
	floor := c.floor()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.verify = true
		return fmt.Errorf("read %s: %w", c.key, err)
	}
	c.setPublishedLocked(resp.Kvs)
	c.republishIfBehindLocked(floor)
	return nil
}

func epochOf(r *routing.Route) uint64 {
	if r == nil {
		return 0
	}
	return r.Epoch
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
	c.mu.Unlock()
	if !c.ch.report(d.Epoch, d.Server) {
		c.n.log.Debug("cluster: ignoring stale failure report", "connector", c.cc.Name, "from", from,
			"epoch", d.Epoch, "server", d.Server)
		return
	}
	c.n.log.Info("cluster: failure report", "connector", c.cc.Name, "from", from, "epoch", d.Epoch,
		"server", d.Server, "refused", d.Refused, "error", d.Error)
}

// watchReports feeds failure reports to the connectors' selectors. It
// starts once every connector is ready, so that no report is marked seen
// before it can be acted on.
func (n *Node) watchReports(ctx context.Context, t *term) {
	for _, c := range t.conns {
		select {
		case <-c.ch.ready:
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
	if _, ok := n.conns[req.Connector]; !ok {
		return routing.Route{}, fmt.Errorf("connector %q: %w", req.Connector, routing.ErrUnknownConnector)
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
	return t.conns[req.Connector].ch.failover(ctx, req, n.cfg.FailoverTimeout, n.table)
}

func endpointString(e *hs2.Endpoint) string {
	if e == nil {
		return "none"
	}
	return e.String()
}
