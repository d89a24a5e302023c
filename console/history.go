package console

import (
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/routing"
)

// Change is one accepted route change.
type Change struct {
	At        time.Time
	Connector string
	Epoch     uint64
	From, To  string // host:port; "" for none
	Reason    string
	ChosenBy  string
	Drain     bool
	PrevDead  bool
}

// History keeps the latest route changes this replica applied, bounded by
// count and age, in memory. Record is a routing.SwitchFunc.
type History struct {
	max    int
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex
	changes []Change // oldest first
}

// NewHistory keeps at most max changes no older than maxAge (0: any age).
func NewHistory(max int, maxAge time.Duration, now func() time.Time) *History {
	if now == nil {
		now = time.Now
	}
	if max <= 0 {
		max = 256
	}
	return &History{max: max, maxAge: maxAge, now: now}
}

// Record is the routing.Table.OnSwitch hook.
func (h *History) Record(old, cur *routing.Route) {
	if cur == nil {
		return
	}
	c := Change{At: h.now(), Connector: cur.Connector, Epoch: cur.Epoch, To: addr(cur), Reason: cur.Reason,
		ChosenBy: cur.ChosenBy, Drain: cur.Drain, PrevDead: cur.PrevDead}
	if old != nil {
		c.From = addr(old)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, c)
	if n := len(h.changes) - h.max; n > 0 {
		h.changes = append(h.changes[:0:0], h.changes[n:]...)
	}
}

// Changes returns the kept changes, newest first.
func (h *History) Changes() []Change {
	h.mu.Lock()
	defer h.mu.Unlock()
	cutoff := time.Time{}
	if h.maxAge > 0 {
		cutoff = h.now().Add(-h.maxAge)
	}
	out := make([]Change, 0, len(h.changes))
	for i := len(h.changes) - 1; i >= 0; i-- {
		if h.changes[i].At.Before(cutoff) {
			break
		}
		out = append(out, h.changes[i])
	}
	return out
}

func addr(r *routing.Route) string {
	if r.Endpoint == nil {
		return ""
	}
	return r.Endpoint.Addr()
}
