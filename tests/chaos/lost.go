package chaos

import (
	"time"

	"google.golang.org/grpc/codes"
)

// settle is how long after a fault's end its effects may still end
// streams (a failure report, a stall bound, a re-run's retry bound).
const settle = 15 * time.Second

// covered reports whether a fault window matching match spans t.
func (r *runner) covered(t time.Time, match func(window) bool) (window, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.windows {
		if match(w) && !t.Before(w.from) && !t.After(w.to.Add(settle)) {
			return w, true
		}
	}
	return window{}, false
}

// checkLost checks the invariants about running queries (issue 11):
//   - a query that reached a server ends ABORTED or UNAVAILABLE only while
//     that server could not finish it (crashed, hung, cut off) or its
//     replica was killed: never because the server was slow, paused,
//     saturated, draining or failed over by hand;
//   - a read that had sent nothing is re-run, not failed, after a crash
//     while another HS2 was healthy;
//   - no row is delivered twice.
func (r *runner) checkLost(outs []outcome) {
	bad := 0
	fail := func(inv, format string, args ...any) {
		if bad++; bad <= 20 {
			r.violate(inv, format, args...)
		}
	}
	for _, o := range outs {
		if o.twice != nil {
			fail("row-twice", "%s stream on %s: %v", o.kind, o.replica, o.twice)
		}
		if (o.code != codes.Aborted && o.code != codes.Unavailable) || o.server == "" {
			continue
		}
		if _, ok := r.covered(o.ended, func(w window) bool { return w.replica == o.replica }); ok {
			continue // its replica went away, and the stream with it
		}
		w, ok := r.covered(o.ended, func(w window) bool { return w.server == o.server && lethal(w.kind) })
		if !ok {
			fail("alive-server", "%s stream on %s ended %v after %v although %s was alive and answering: %v",
				o.kind, o.replica, o.code, o.took, o.server, o.err)
			continue
		}
		if w.kind == HS2Crash && o.rows == 0 && !o.schema && o.code == codes.Aborted {
			fail("read-not-rerun", "%s stream on %s had sent nothing when %s crashed and ended %v instead of running again on a healthy HS2: %v",
				o.kind, o.replica, o.server, o.code, o.err)
		}
	}
	if bad > 20 {
		r.violate("more", "%d more lost-query violations not listed", bad-20)
	}
}
