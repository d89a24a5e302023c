package cluster

import "time"

// ViewConfirmedAt is when etcd last confirmed this replica's view of the
// cluster (routes, leader, replicas) current: a full read, a watch
// response, or an answered progress request on the mirror's watch; zero
// before the first read. The metric hiveqd_view_age_seconds is the time
// since. A follower cut off from etcd, or whose watch silently stalled,
// stops being confirmed, so its age grows.
func (n *Node) ViewConfirmedAt() time.Time {
	return n.mirrorSync.Status().Confirmed
}

// viewStale reports whether the view has gone unconfirmed for longer than
// three progress intervals (a progress request is answered at once by a
// reachable etcd), and how old it is.
func (n *Node) viewStale(now time.Time) (bool, time.Duration) {
	at := n.ViewConfirmedAt()
	if at.IsZero() {
		return true, 0
	}
	age := now.Sub(at)
	return age > 3*n.cfg.ProgressInterval, age
}
