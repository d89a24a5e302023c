package service_test

import (
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/service"
)

// The stale-view signal reaches the API (issue 12.5).
func TestTopologyProtoViewStaleness(t *testing.T) {
	at := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		in    cluster.Topology
		stale bool
		at    bool
	}{
		{"standalone", cluster.Topology{Coordination: "standalone"}, false, false},
		{"current", cluster.Topology{Coordination: "etcd", ViewConfirmedAt: at}, false, true},
		{"stale", cluster.Topology{Coordination: "etcd", ViewConfirmedAt: at, ViewStale: true, Degraded: true}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := service.TopologyProto(tc.in)
			if p.GetViewStale() != tc.stale {
				t.Errorf("view_stale = %v, want %v", p.GetViewStale(), tc.stale)
			}
			if got := p.GetViewConfirmedAt(); (got != nil) != tc.at || (got != nil && !got.AsTime().Equal(at)) {
				t.Errorf("view_confirmed_at = %v, want set %v (%v)", got, tc.at, at)
			}
		})
	}
}
