package registry

import (
	"context"
	"testing"
	"time"
)

// Found by the chaos suite: when the only registered HS2 failed, "no
// server" was published twice in one probe interval (first with the
// failed-health-checks prefix in its reason, then without), and again
// whenever only the dead server's error text changed. Every publication is
// a new epoch, so watchers saw failovers that did not happen.
func TestNoneNotRepublishedWhenOnlyTheReasonChanges(t *testing.T) {
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

// A saturated HS2 whose probes time out is kept while no other server is
// healthy: no server at all would fail every query, a slow one serves them.
// A refused connection still means the server is gone.
func TestSlowOnlyServerKeptWithoutAlternative(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		wantNone bool
	}{
		{"timeouts keep it", context.DeadlineExceeded, false},
		{"refused drops it", errRefused, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, SelectorConfig{}, nil)
			h.update(Status{}, cand(1, 1))
			h.answer(ep(1), nil, time.Millisecond)
			h.wantChoice(ptr(ep(1)), false)
			n := len(h.pubs)
			for range 2 {
				h.advance(DefaultProbeInterval)
				h.answer(ep(1), tc.err, time.Millisecond)
			}
			if tc.wantNone {
				h.wantChoice(nil, false, "failed 2 health checks")
				return
			}
			if len(h.pubs) != n {
				t.Fatalf("published %+v after probe timeouts with no alternative", h.pubs[n:])
			}
		})
	}
}
