package metrics

import (
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/cluster"
)

type fakeCoord struct {
	cluster.Coordinator // unused methods panic
	confirmed           time.Time
}

func (fakeCoord) Health() (bool, string)       { return true, "" }
func (fakeCoord) Topology() cluster.Topology   { return cluster.Topology{} }
func (f fakeCoord) ViewConfirmedAt() time.Time { return f.confirmed }

type plainCoord struct{ fakeCoord }

func (plainCoord) ViewConfirmedAt() {} // not a viewConfirmer

// gauges returns the gauge values by metric name (unlabelled gauges).
func gauges(t *testing.T, m *Metrics) map[string]float64 {
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if g := mf.GetMetric()[0].GetGauge(); g != nil {
			out[mf.GetName()] = g.GetValue()
		}
	}
	return out
}

func TestViewAge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		coord cluster.Coordinator
		want  bool
	}{
		{"confirmed a minute ago", fakeCoord{confirmed: time.Now().Add(-time.Minute)}, true},
		{"never confirmed", fakeCoord{}, false},
		{"standalone", plainCoord{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{QueryLimit: 7})
			m.Watch(Sources{Coordinator: tc.coord})
			g := gauges(t, m)
			v, ok := g["hiveqd_view_age_seconds"]
			if ok != tc.want || (ok && (v < 59 || v > 120)) {
				t.Fatalf("view age %v present=%v, want present=%v and about 60", v, ok, tc.want)
			}
			if g["hiveqd_queries_limit"] != 7 {
				t.Errorf("queries_limit %v, want 7", g["hiveqd_queries_limit"])
			}
		})
	}
	if _, ok := gauges(t, New(Config{}))["hiveqd_queries_limit"]; ok {
		t.Error("queries_limit exported without a limit")
	}
}
