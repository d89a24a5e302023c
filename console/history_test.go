package console

import (
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/routing"
)

func TestHistoryBoundsAndOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	h := NewHistory(3, time.Hour, func() time.Time { return now })
	ep := func(p int) *hs2.Endpoint { return &hs2.Endpoint{Host: "h", Port: p} }
	var prev *routing.Route
	for i := 1; i <= 5; i++ {
		r := &routing.Route{Connector: "c", Epoch: uint64(i), Endpoint: ep(i), Reason: "r"}
		h.Record(prev, r)
		prev = r
		now = now.Add(time.Minute)
	}
	got := h.Changes()
	if len(got) != 3 || got[0].Epoch != 5 || got[2].Epoch != 3 {
		t.Fatalf("changes = %+v, want epochs 5,4,3", got)
	}
	if got[0].From != "h:4" || got[0].To != "h:5" {
		t.Fatalf("newest = %+v", got[0])
	}
	now = now.Add(time.Hour - 90*time.Second)
	if got := h.Changes(); len(got) != 1 || got[0].Epoch != 5 {
		t.Fatalf("after an hour: %+v, want only epoch 5", got)
	}
	h.Record(prev, &routing.Route{Connector: "c", Epoch: 6, Reason: "no HS2"})
	if got := h.Changes(); got[0].To != "" || got[0].From != "h:5" {
		t.Fatalf("no server: %+v", got[0])
	}
}
