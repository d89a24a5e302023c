package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/hiveqd/hiveqd/leaderelect"
)

// reporter holds failure reports until they are written to etcd.
type reporter struct {
	wake chan struct{}

	mu      sync.Mutex
	pending map[string]reportDoc // by connector: only the latest matters
	sent    map[string]reportDoc // by connector: the last one written
}

func newReporter() reporter {
	return reporter{wake: make(chan struct{}, 1), pending: map[string]reportDoc{}, sent: map[string]reportDoc{}}
}

// signal wakes the replica loop.
func (r *reporter) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// ReportFailure records that this replica got a transport error from
// server while routing connector at epoch, for the leader to confirm. It
// never blocks: reports for an epoch this replica has already moved past are
// dropped, and a repeat of the last report within ReportInterval is folded
// into it.
func (n *Node) ReportFailure(connector string, epoch uint64, server string, err error) {
	if _, ok := n.conns[connector]; !ok {
		return
	}
	if cur, _ := n.table.Get(connector); cur != nil && cur.Epoch > epoch {
		return
	}
	d := reportDoc{Epoch: epoch, Server: server, Time: n.cfg.Now().UTC()}
	if err != nil {
		d.Error, d.Refused = err.Error(), Refused(err)
	}
	r := &n.rep
	r.mu.Lock()
	if last, ok := r.sent[connector]; ok && last.Epoch == epoch && last.Server == server && last.Refused == d.Refused && d.Time.Sub(last.Time) < n.cfg.ReportInterval {
		r.mu.Unlock()
		return
	}
	if p, ok := r.pending[connector]; ok && p.Epoch > epoch {
		r.mu.Unlock()
		return
	}
	r.pending[connector] = d
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// replicaLoop holds this replica's lease: it registers the replica under
// it and writes failure reports with it, so both vanish with the replica.
// A lost lease (etcd down longer than the TTL) is replaced when etcd
// returns.
func (n *Node) replicaLoop(ctx context.Context) {
	for ctx.Err() == nil {
		cli := n.etcd()
		sess, err := leaderelect.NewSession(ctx, cli, n.cfg.LeaseTTL, n.cfg.RequestTimeout)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Debug("cluster: replica lease", "err", err)
			}
			sleep(ctx, n.cfg.Backoff)
			continue
		}
		n.withLease(ctx, cli, sess)
		sess.Orphan()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.RequestTimeout)
		if _, err := cli.Revoke(rctx, sess.Lease()); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			n.log.Debug("cluster: revoke replica lease", "err", err)
		}
		cancel()
	}
}

func (n *Node) withLease(ctx context.Context, cli *clientv3.Client, sess *concurrency.Session) {
	registered := ""
	var retry <-chan time.Time
	var trafficTick <-chan time.Time
	if n.cfg.Traffic != nil {
		t := time.NewTicker(n.cfg.TrafficInterval)
		defer t.Stop()
		trafficTick = t.C
	}
	for {
		// The entry carries the epochs this replica holds, so it is
		// rewritten whenever they change, and when etcd lost it.
		if n.reregister.Swap(false) {
			registered = ""
		}
		self := n.selfDoc()
		if registered != self {
			pctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
			_, err := cli.Put(pctx, n.keys.replica(n.cfg.ReplicaID), self, clientv3.WithLease(sess.Lease()))
			cancel()
			if err == nil {
				registered = self
			}
		}
		if !n.flushReports(ctx, cli, sess.Lease()) || registered != self {
			retry = time.After(n.cfg.Backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-sess.Done():
			return
		case <-n.rep.wake:
		case <-retry:
		case <-trafficTick:
			n.publishTraffic(ctx, cli, sess.Lease())
		}
		retry = nil
	}
}

// selfDoc is this replica's replicas/<id> entry.
func (n *Node) selfDoc() string {
	r := Replica{ID: n.cfg.ReplicaID, Address: n.cfg.Address, Started: n.started}
	for _, rt := range n.table.Snapshot() {
		if r.Epochs == nil {
			r.Epochs = map[string]uint64{}
		}
		r.Epochs[rt.Connector] = rt.Epoch
	}
	v, _ := json.Marshal(r)
	return string(v)
}

// flushReports writes pending reports; false if some must be retried.
func (n *Node) flushReports(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID) bool {
	r := &n.rep
	r.mu.Lock()
	batch := make(map[string]reportDoc, len(r.pending))
	for k, v := range r.pending {
		batch[k] = v
	}
	r.mu.Unlock()
	ok := true
	for conn, d := range batch {
		v, _ := json.Marshal(d)
		pctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		_, err := cli.Put(pctx, n.keys.report(conn, n.cfg.ReplicaID), string(v), clientv3.WithLease(lease))
		cancel()
		if err != nil {
			ok = false
			continue
		}
		r.mu.Lock()
		if r.pending[conn] == d {
			delete(r.pending, conn)
		}
		r.sent[conn] = d
		r.mu.Unlock()
	}
	return ok
}
