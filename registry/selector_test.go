package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/testenv"
)

// fakeProber answers from a table: an error per address, nil when absent.
type fakeProber struct {
	mu     sync.Mutex
	errs   map[string]error
	counts map[string]int
	hang   map[string]bool
}

func newFakeProber() *fakeProber {
	return &fakeProber{errs: map[string]error{}, counts: map[string]int{}, hang: map[string]bool{}}
}

func (f *fakeProber) Probe(ctx context.Context, ep hs2.Endpoint) error {
	f.mu.Lock()
	f.counts[ep.Addr()]++
	err, hang := f.errs[ep.Addr()], f.hang[ep.Addr()]
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *fakeProber) set(addr string, err error) {
	f.mu.Lock()
	f.errs[addr] = err
	f.mu.Unlock()
}

func (f *fakeProber) count(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[addr]
}

// fakeDiscovery publishes whatever the test pushes.
type fakeDiscovery struct {
	ch  chan []Candidate
	err error
}

func (f *fakeDiscovery) Run(ctx context.Context, update func([]Candidate)) error {
	if f.err != nil {
		return f.err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-f.ch:
			update(l)
		}
	}
}

func (f *fakeDiscovery) Status() Status { return Status{Source: "/test"} }

// selectorRun runs a Selector and records its publications.
type selectorRun struct {
	s      *Selector
	mu     sync.Mutex
	pubs   []Choice
	times  []time.Time
	busy   atomic.Bool
	cancel context.CancelFunc
	done   chan error
}

func runSelector(t *testing.T, cfg SelectorConfig, initial *hs2.Endpoint) *selectorRun {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &selectorRun{s: NewSelector(cfg), cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- r.s.Run(ctx, initial, func(c Choice) {
			if !r.busy.CompareAndSwap(false, true) {
				t.Error("publish called concurrently")
			}
			time.Sleep(5 * time.Millisecond) // publish may block briefly (an etcd write)
			r.mu.Lock()
			r.pubs = append(r.pubs, c)
			r.times = append(r.times, time.Now())
			r.mu.Unlock()
			r.busy.Store(false)
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *selectorRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	case <-time.After(15 * time.Second):
		t.Fatal("selector did not stop")
	}
}

func (r *selectorRun) publications() []Choice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Choice(nil), r.pubs...)
}

// waitChoice waits until the latest publication satisfies cond and returns
// it with the time it was published.
func (r *selectorRun) waitChoice(t *testing.T, timeout time.Duration, cond func(Choice) error) (Choice, time.Time) {
	t.Helper()
	var c Choice
	var at time.Time
	testenv.Eventually(t, timeout, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.pubs) == 0 {
			return errors.New("nothing published")
		}
		c, at = r.pubs[len(r.pubs)-1], r.times[len(r.times)-1]
		return cond(c)
	})
	return c, at
}

// chose is a condition: the choice is addr ("" for none), with drain, and
// its reason contains every fragment.
func chose(addr string, drain bool, fragments ...string) func(Choice) error {
	return func(c Choice) error {
		got := ""
		if c.Endpoint != nil {
			got = c.Endpoint.Addr()
		}
		if got != addr || c.Drain != drain {
			return fmt.Errorf("choice %q drain=%v (%s), want %q drain=%v", got, c.Drain, c.Reason, addr, drain)
		}
		for _, f := range fragments {
			if !strings.Contains(c.Reason, f) {
				return fmt.Errorf("reason %q lacks %q", c.Reason, f)
			}
		}
		return nil
	}
}

func staticEPs(n int) []hs2.Endpoint {
	var out []hs2.Endpoint
	for i := 1; i <= n; i++ {
		out = append(out, ep(i))
	}
	return out
}

func TestSelectorRunStaticFailover(t *testing.T) {
	p := newFakeProber()
	r := runSelector(t, SelectorConfig{Connector: "c", Discovery: NewStatic(staticEPs(2)), Prober: p,
		ProbeInterval: 20 * time.Millisecond, Cooldown: time.Hour}, nil)
	r.waitChoice(t, 5*time.Second, chose("hs2-1:10000", false, "oldest registration, sequence 0"))

	p.set("hs2-1:10000", errRefused)
	_, at := r.waitChoice(t, 5*time.Second, chose("hs2-2:10000", false, "hs2-1:10000 failed 2 health checks"))
	snap := r.s.Snapshot()
	if len(snap) != 2 || snap[0].Healthy || !snap[1].Healthy || snap[0].DownUntil.Before(at) {
		t.Fatalf("snapshot %+v", snap)
	}
	p.set("hs2-2:10000", errRefused)
	r.waitChoice(t, 5*time.Second, chose("", false, "all 2 registered HiveServer2 failed health checks"))
	if n := len(r.publications()); n != 3 {
		t.Fatalf("%d publications: %+v", n, r.publications())
	}
}

func TestSelectorRunReportsCoalesce(t *testing.T) {
	p := newFakeProber()
	// A long interval: only reports make probes happen quickly.
	r := runSelector(t, SelectorConfig{Discovery: NewStatic(staticEPs(2)), Prober: p, ProbeInterval: time.Hour, Cooldown: time.Hour}, nil)
	r.waitChoice(t, 5*time.Second, chose("hs2-1:10000", false))

	// Healthy server, many reports: probes, but no failover.
	before := p.count("hs2-1:10000")
	for range 100 {
		r.s.Report("hs2-1:10000")
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if p.count("hs2-1:10000") == before {
			return errors.New("report did not probe")
		}
		return nil
	})
	if n := len(r.publications()); n != 1 {
		t.Fatalf("healthy server failed over: %+v", r.publications())
	}

	// Dead server: reports confirm it quickly; exactly one failover.
	p.set("hs2-1:10000", errRefused)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					r.s.Report("hs2-1:10000")
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	r.waitChoice(t, 5*time.Second, chose("hs2-2:10000", false))
	close(stop)
	wg.Wait()
	if n := len(r.publications()); n != 2 {
		t.Fatalf("%d publications: %+v", n, r.publications())
	}
}

func TestSelectorRunManualFailover(t *testing.T) {
	if err := NewSelector(SelectorConfig{}).Failover(context.Background(), "x", FailoverOptions{}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Failover before Run: %v", err)
	}
	p := newFakeProber()
	r := runSelector(t, SelectorConfig{Discovery: NewStatic(staticEPs(2)), Prober: p, ProbeInterval: 20 * time.Millisecond}, nil)
	r.waitChoice(t, 5*time.Second, chose("hs2-1:10000", false))
	if err := r.s.Failover(context.Background(), "patching hs2-1", FailoverOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitChoice(t, time.Second, chose("hs2-2:10000", true, "manual failover from hs2-1:10000: patching hs2-1"))
	p.set("hs2-1:10000", errRefused)
	if err := r.s.Failover(context.Background(), "again", FailoverOptions{}); err == nil || !strings.Contains(err.Error(), "no other healthy") {
		t.Fatalf("failover to a held-down server: %v", err)
	}
}

func TestSelectorRunAdoptsInitialWithoutPublishing(t *testing.T) {
	p := newFakeProber()
	initial := ep(2)
	r := runSelector(t, SelectorConfig{Discovery: NewStatic(staticEPs(3)), Prober: p, ProbeInterval: 10 * time.Millisecond}, &initial)
	testenv.Eventually(t, 5*time.Second, func() error {
		if p.count("hs2-2:10000") < 5 {
			return errors.New("initial server not probed")
		}
		return nil
	})
	if pubs := r.publications(); len(pubs) != 0 {
		t.Fatalf("leadership change moved traffic: %+v", pubs)
	}
}

func TestSelectorRunHungServerTimesOut(t *testing.T) {
	p := newFakeProber()
	d := &fakeDiscovery{ch: make(chan []Candidate, 1)}
	r := runSelector(t, SelectorConfig{Discovery: d, Prober: p, ProbeInterval: 20 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond}, nil)
	d.ch <- []Candidate{cand(1, 1), cand(2, 2)}
	r.waitChoice(t, 5*time.Second, chose("hs2-1:10000", false))
	p.mu.Lock()
	p.hang["hs2-1:10000"] = true
	p.mu.Unlock()
	// A switch on timeouts drains: the hung server is not known dead.
	r.waitChoice(t, 5*time.Second, chose("hs2-2:10000", true, "no answer within 50ms"))

	// Deregistering the current server drains it; the new one is dead.
	p.set("hs2-3:10000", errRefused)
	d.ch <- []Candidate{cand(1, 1), cand(3, 3)}
	r.waitChoice(t, 5*time.Second, chose("", true, "hs2-2:10000 is no longer registered (draining)", "all 2 registered HiveServer2 failed"))
}

func TestSelectorRunErrors(t *testing.T) {
	ctx := context.Background()
	s := NewSelector(SelectorConfig{Discovery: &fakeDiscovery{err: errors.New("bad config")}, Prober: newFakeProber(), Logger: testLogger()})
	if err := s.Run(ctx, nil, func(Choice) {}); err == nil || err.Error() != "bad config" {
		t.Fatalf("Run = %v", err)
	}
	if err := NewSelector(SelectorConfig{Policy: "roundrobin", Discovery: NewStatic(nil), Prober: newFakeProber()}).Run(ctx, nil, func(Choice) {}); err == nil {
		t.Fatal("unknown policy accepted")
	}
	if err := NewSelector(SelectorConfig{}).Run(ctx, nil, func(Choice) {}); err == nil {
		t.Fatal("missing discovery accepted")
	}
}
