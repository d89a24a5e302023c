package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/registry"
)

// hungProber: servers answer unless hung, when every probe times out (a
// GC pause, as the chaos soak's hs2-gc-pause makes).
type hungProber struct {
	mu     sync.Mutex
	hung   map[string]bool
	probes map[string]int
}

func (p *hungProber) Probe(ctx context.Context, ep hs2.Endpoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes[ep.Addr()]++
	if p.hung[ep.Addr()] {
		return fmt.Errorf("hs2 %s: no answer: %w", ep.Addr(), context.DeadlineExceeded)
	}
	return nil
}

func (p *hungProber) count(ep hs2.Endpoint) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.probes[ep.Addr()]
}

func (p *hungProber) set(ep hs2.Endpoint, hung bool) {
	p.mu.Lock()
	p.hung[ep.Addr()] = hung
	p.mu.Unlock()
}

// noAnswers is traffic evidence that no call was answered: a server whose
// probes time out is unresponsive, not saturated.
type noAnswers struct{}

func (noAnswers) LastAnswer(string, string) time.Time { return time.Time{} }

// Two GC pauses in a row, the second while the first server is still held
// down by its cooldown (it resumed long ago): the second pause moves the
// route straight back to the first server, one epoch, never "none" and
// back (the soak's failovers-per-incident violations on hs2-gc-pause and
// hs2-crash, seed 20261204).
func TestPauseWithinCooldownOneFailover(t *testing.T) {
	e := testenv.StartEtcd(t)
	p := &hungProber{hung: map[string]bool{}, probes: map[string]int{}}
	sel := func() cluster.Selector {
		return registry.NewSelector(registry.SelectorConfig{
			Connector:     "hive",
			Discovery:     registry.NewStatic([]hs2.Endpoint{s1, s2}),
			Prober:        p,
			ProbeInterval: 100 * time.Millisecond,
			ProbeTimeout:  50 * time.Millisecond,
			Cooldown:      time.Minute,
			Traffic:       noAnswers{},
			Logger:        logger(),
		})
	}
	r := startReplica(t, "r1", e.Endpoints(), []cluster.ConnectorConfig{{Name: "hive", NewSelector: sel}})
	waitLeader(t, 10*time.Second, r)
	waitRoute(t, 10*time.Second, "hive", s1, 1, r)

	p.set(s1, true)
	waitRoute(t, 10*time.Second, "hive", s2, 2, r)
	p.set(s1, false) // resumed, but held down for a minute
	// Some time on s2: s1's failure becomes old news.
	n := p.count(s2)
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := p.count(s2) - n; got < 5 {
			return fmt.Errorf("s2 probed %d times since the switch", got)
		}
		return nil
	})

	p.set(s2, true)
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := r.route("hive")
		if err != nil {
			return err
		}
		if got.Endpoint == nil || *got.Endpoint != s1 {
			return fmt.Errorf("routes to %v at epoch %d", got.Endpoint, got.Epoch)
		}
		return nil
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sw := range r.switches {
		if sw.Endpoint == nil {
			t.Errorf("published none at epoch %d: %s", sw.Epoch, sw.Reason)
		}
	}
	if got, _ := r.route("hive"); got.Epoch != 3 {
		t.Errorf("back on %v at epoch %d, want 3 (one failover for the second pause)", s1, got.Epoch)
	}
}
