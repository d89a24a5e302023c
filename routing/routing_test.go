package routing

import (
	"errors"
	"testing"

	"github.com/hiveqd/hiveqd/hs2"
)

func ep(host string) *hs2.Endpoint { return &hs2.Endpoint{Host: host, Port: 10000} }

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestUpdateOrdering(t *testing.T) {
	tests := []struct {
		name     string
		updates  []Route
		accepted []bool
		want     uint64
	}{
		{"first", []Route{{Connector: "hive", Epoch: 1, Endpoint: ep("a")}}, []bool{true}, 1},
		{"newer", []Route{{Connector: "hive", Epoch: 1, Endpoint: ep("a")}, {Connector: "hive", Epoch: 2, Endpoint: ep("b")}}, []bool{true, true}, 2},
		{"stale dropped", []Route{{Connector: "hive", Epoch: 3, Endpoint: ep("a")}, {Connector: "hive", Epoch: 2, Endpoint: ep("b")}}, []bool{true, false}, 3},
		{"same epoch dropped", []Route{{Connector: "hive", Epoch: 3, Endpoint: ep("a")}, {Connector: "hive", Epoch: 3, Endpoint: ep("b")}}, []bool{true, false}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable()
			for i, u := range tc.updates {
				if got := tb.Update(u); got != tc.accepted[i] {
					t.Fatalf("update %d accepted=%v, want %v", i, got, tc.accepted[i])
				}
			}
			c, err := tb.Get("hive")
			if err != nil || c.Epoch != tc.want {
				t.Fatalf("Get = %+v, %v; want epoch %d", c, err, tc.want)
			}
		})
	}
}

func TestLostVersusDrain(t *testing.T) {
	tests := []struct {
		name     string
		next     Route
		wantLost bool
	}{
		{"a switch alone keeps running queries", Route{Connector: "hive", Epoch: 2, Endpoint: ep("b")}, false},
		{"a dead server loses them", Route{Connector: "hive", Epoch: 2, Endpoint: ep("b"), PrevDead: true}, true},
		{"drain lets them finish", Route{Connector: "hive", Epoch: 2, Endpoint: ep("b"), Drain: true}, false},
		{"same server new epoch keeps them", Route{Connector: "hive", Epoch: 2, Endpoint: ep("a"), PrevDead: true}, false},
		{"no server left keeps them", Route{Connector: "hive", Epoch: 2, Reason: "none registered"}, false},
		{"no server left, dead, loses them", Route{Connector: "hive", Epoch: 2, Reason: "refused", PrevDead: true}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable()
			tb.Update(Route{Connector: "hive", Epoch: 1, Endpoint: ep("a")})
			cur, _ := tb.Get("hive")
			var switched [2]*Route
			tb.OnSwitch(func(o, n *Route) { switched = [2]*Route{o, n} })
			tb.Update(tc.next)
			if !closed(cur.Superseded()) {
				t.Fatal("not superseded")
			}
			if got := closed(cur.Lost()); got != tc.wantLost {
				t.Fatalf("lost = %v, want %v", got, tc.wantLost)
			}
			if cur.Next() == nil || cur.Next().Epoch != 2 {
				t.Fatalf("next = %+v", cur.Next())
			}
			if switched[0] == nil || switched[0].Epoch != 1 || switched[1].Epoch != 2 {
				t.Fatalf("OnSwitch got %+v", switched)
			}
		})
	}
}

func TestGetErrors(t *testing.T) {
	tb := NewTable()
	if _, err := tb.Get("nope"); !errors.Is(err, ErrUnknownConnector) {
		t.Fatalf("unknown: %v", err)
	}
	ch := tb.Changed()
	tb.Update(Route{Connector: "hive", Epoch: 1, Reason: "no znodes under /hiveserver2"})
	if !closed(ch) {
		t.Fatal("Changed not closed")
	}
	c, err := tb.Get("hive")
	if !errors.Is(err, ErrNoRoute) || c == nil || c.Reason == "" {
		t.Fatalf("no route: %v %+v", err, c)
	}
}
