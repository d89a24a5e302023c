package cluster

import (
	"context"
	"encoding/json"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hiveqd/hiveqd/traffic"
)

// TrafficExchange is passive HS2 health evidence shared between replicas;
// *traffic.Observer implements it.
type TrafficExchange interface {
	// Local summarises this replica's evidence; changed is false when no
	// call started or ended since the last summary.
	Local() (s traffic.Summary, changed bool)
	// SetRemote installs another replica's summary (nil: forget it).
	SetRemote(replica string, s *traffic.Summary)
}

// applyTraffic takes another replica's summary from a watch event. A
// snapshot's summaries are skipped on purpose: their ages were measured
// when written, possibly long ago, and only a fresh write may count as
// recent evidence.
func (n *Node) applyTraffic(id string, v []byte, del bool) {
	if n.cfg.Traffic == nil || id == n.cfg.ReplicaID {
		return
	}
	if del {
		n.cfg.Traffic.SetRemote(id, nil)
		return
	}
	var s traffic.Summary
	if err := json.Unmarshal(v, &s); err != nil {
		n.log.Debug("cluster: bad traffic summary", "replica", id, "err", err)
		return
	}
	n.cfg.Traffic.SetRemote(id, &s)
}

// publishTraffic writes this replica's summary if anything happened since
// the last one; it reports false if the write failed.
func (n *Node) publishTraffic(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID) bool {
	if n.cfg.Traffic == nil {
		return true
	}
	s, changed := n.cfg.Traffic.Local()
	if !changed {
		return true
	}
	v, err := json.Marshal(s)
	if err != nil {
		return true
	}
	pctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	_, err = cli.Put(pctx, n.keys.traffic(n.cfg.ReplicaID), string(v), clientv3.WithLease(lease))
	return err == nil
}
