package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/hs2"
)

// Engine is what the state metrics read from the query engine
// (*query.Engine).
type Engine interface {
	PoolStats() hs2.PoolStats
	Running() int
}

// viewConfirmer is a coordinator that mirrors a store (*cluster.Node).
type viewConfirmer interface{ ViewConfirmedAt() time.Time }

// Sources are read at each scrape; nil fields are skipped.
type Sources struct {
	Engine      Engine
	Coordinator cluster.Coordinator
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

var (
	descSessionsOpen   = desc("hs2_pool_sessions_open", "HS2 sessions open in the query engine's pools (idle + in use).")
	descSessionsIdle   = desc("hs2_pool_sessions_idle", "Idle HS2 sessions kept for reuse.")
	descSessionsInUse  = desc("hs2_pool_sessions_in_use", "HS2 sessions lent to running queries.")
	descRunning        = desc("queries_running", "Queries running on this replica.")
	descLeader         = desc("leader", "1 while this replica is the leader (always 1 in standalone mode).")
	descReplicas       = desc("cluster_replicas", "Replicas this replica sees in the cluster, itself included.")
	descCoordHealthy   = desc("coordination_healthy", "1 while this replica reaches its coordination store (etcd); 0 while it serves the last routes without failover.")
	descEpoch          = desc("route_epoch", "Epoch of the connector's current route.", "connector")
	descRouteAvailable = desc("route_available", "1 while the connector routes to a HiveServer2, 0 while none is available.", "connector")
	descRouteInfo      = desc("route_info", "The HiveServer2 (host:port) the connector routes to; value 1.", "connector", "server")
	descViewAge        = desc("view_age_seconds", "Seconds since this replica's view of the cluster (routes, leader) was last confirmed current by etcd; absent in standalone mode and before the first read.")
	descCandidates     = desc("discovery_candidates", "Discovered HiveServer2 candidates by health, as the chooser last saw them.", "connector", "healthy")
)

// stateCollector reads the replica's state when scraped: no goroutine
// polls it in between.
type stateCollector struct {
	mu  sync.Mutex
	src Sources
}

func (c *stateCollector) set(src Sources) {
	c.mu.Lock()
	c.src = src
	c.mu.Unlock()
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessionsOpen, descSessionsIdle, descSessionsInUse, descRunning,
		descLeader, descReplicas, descCoordHealthy, descEpoch, descRouteAvailable, descRouteInfo, descCandidates, descViewAge} {
		ch <- d
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if e := src.Engine; e != nil {
		ps := e.PoolStats()
		ch <- gauge(descSessionsOpen, float64(ps.Open))
		ch <- gauge(descSessionsIdle, float64(ps.Idle))
		ch <- gauge(descSessionsInUse, float64(ps.InUse))
		ch <- gauge(descRunning, float64(e.Running()))
	}
	co := src.Coordinator
	if co == nil {
		return
	}
	ok, _ := co.Health() // the reason is free text: logs and Topology carry it
	ch <- gauge(descCoordHealthy, b2f(ok))
	if vc, ok := co.(viewConfirmer); ok {
		if at := vc.ViewConfirmedAt(); !at.IsZero() {
			ch <- gauge(descViewAge, time.Since(at).Seconds())
		}
	}
	t := co.Topology()
	ch <- gauge(descLeader, b2f(t.Self.Leader))
	ch <- gauge(descReplicas, float64(len(t.Replicas)))
	for _, cs := range t.Connectors {
		name := cs.Connector
		ch <- gauge(descEpoch, float64(cs.Epoch), name)
		ch <- gauge(descRouteAvailable, b2f(cs.Endpoint != nil), name)
		if cs.Endpoint != nil {
			ch <- gauge(descRouteInfo, 1, name, cs.Endpoint.Addr())
		}
		healthy := 0
		for _, cand := range cs.Candidates {
			if cand.Healthy {
				healthy++
			}
		}
		ch <- gauge(descCandidates, float64(healthy), name, boolLabel(true))
		ch <- gauge(descCandidates, float64(len(cs.Candidates)-healthy), name, boolLabel(false))
	}
}
