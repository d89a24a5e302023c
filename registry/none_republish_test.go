package registry

import (
	"testing"
	"time"
)

// Regression, found by the chaos suite (tests/chaos): when the only registered HS2
// fails, the core publishes "no server" twice within one probe interval —
// first with the reason "X failed 2 health checks in a row; all 1
// registered HiveServer2 failed ...", then, on the next step, with the same
// reason minus that prefix (core.go:358-365 compares the reason text to
// skip republishing). Every publication is a new epoch in etcd, so one HS2
// incident costs "none" twice: watchers see a failover that did not
// happen. The same happens when only the error text of the dead server
// changes (e.g. "connection refused" becomes "i/o timeout").
//

func TestBugNoneRepublishedWhenOnlyTheReasonChanges(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)
	for range 2 {
		h.advance(DefaultProbeInterval)
		h.answer(ep(1), errRefused, time.Millisecond)
	}
	h.wantChoice(nil, false, "failed 2 health checks")
	n := len(h.pubs)
	// The server stays dead and nothing else changes.
	for range 5 {
		h.advance(DefaultProbeInterval)
		for _, p := range append(h.probes[:0:0], h.probes...) {
			h.answer(p, errRefused, time.Millisecond)
		}
	}
	if len(h.pubs) != n {
		t.Errorf("'no server' published %d more times while nothing changed: %+v", len(h.pubs)-n, h.pubs[n-1:])
	}
}
