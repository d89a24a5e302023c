package cluster

import (
	"sync/atomic"
	"time"
)

// viewClock records when this replica's mirrored view of etcd (routes,
// leader, replicas) was last confirmed current: a full read, a watch
// response, or a successful etcd request while the watch is established
// (etcd watches with WithRequireLeader end when their member loses its
// leader, so a live watch plus a reachable etcd means nothing was missed).
type viewClock struct {
	at        atomic.Int64 // unix nanoseconds; 0: never
	following atomic.Bool
}

func (v *viewClock) confirm(now time.Time) { v.at.Store(now.UnixNano()) }

func (v *viewClock) setFollowing(ok bool) { v.following.Store(ok) }

func (v *viewClock) confirmIfFollowing(now time.Time) {
	if v.following.Load() {
		v.confirm(now)
	}
}

// ViewConfirmedAt is when this replica's view of the cluster was last
// confirmed current by etcd; zero before the first read. The metric
// hiveqd_view_age_seconds is the time since.
func (n *Node) ViewConfirmedAt() time.Time {
	if ns := n.view.at.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
