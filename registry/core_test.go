package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

// harness drives a core with explicit times.
type harness struct {
	t      *testing.T
	c      *core
	now    time.Time
	pubs   []Choice
	probes []hs2.Endpoint // started and not yet answered
}

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, cfg SelectorConfig, initial *hs2.Endpoint) *harness {
	t.Helper()
	cfg = NewSelector(cfg).cfg // defaults
	h := &harness{t: t, c: newCore(cfg, initial, t0), now: t0}
	h.c.intn = func(n int) int { return n - 1 } // deterministic "random": the last
	return h
}

func ep(n int) hs2.Endpoint {
	return hs2.Endpoint{Host: fmt.Sprintf("hs2-%d", n), Port: 10000, Transport: hs2.TransportBinary, Auth: hs2.AuthNone}
}

func cand(n int, seq int64) Candidate {
	return Candidate{Endpoint: ep(n), Node: fmt.Sprintf("/hiveserver2/serverUri=hs2-%d:10000;version=3.1.3;sequence=%010d", n, seq), Seq: seq, Active: true}
}

func passive(c Candidate) Candidate { c.Active = false; return c }

func (h *harness) update(st Status, cs ...Candidate) {
	if st.Source == "" {
		st.Source = "/hiveserver2"
	}
	h.c.setCandidates(cs, st, h.now)
	h.step()
}

// step runs the core once and records what it started and published.
func (h *harness) step() time.Time {
	probes, pub, wake := h.c.step(h.now)
	for _, p := range probes {
		h.c.probeStarted(p, h.now)
		h.probes = append(h.probes, p)
	}
	if pub != nil {
		h.pubs = append(h.pubs, *pub)
	}
	return wake
}

// answer completes the in-flight probe of ep with err, after d.
func (h *harness) answer(e hs2.Endpoint, err error, d time.Duration) {
	h.t.Helper()
	i := slices.Index(h.probes, e)
	if i < 0 {
		h.t.Fatalf("no probe of %s in flight (in flight: %v)", e, h.probes)
	}
	h.probes = slices.Delete(h.probes, i, i+1)
	h.now = h.now.Add(d)
	h.c.probeDone(e, err, h.now)
	h.step()
}

// tick advances the clock to the core's next wake-up (or by d) and steps.
func (h *harness) advance(d time.Duration) {
	h.now = h.now.Add(d)
	h.step()
}

func (h *harness) wantProbing(eps ...hs2.Endpoint) {
	h.t.Helper()
	got := append([]hs2.Endpoint(nil), h.probes...)
	want := append([]hs2.Endpoint(nil), eps...)
	key := func(a, b hs2.Endpoint) int { return strings.Compare(a.Host, b.Host) }
	slices.SortFunc(got, key)
	slices.SortFunc(want, key)
	if !slices.Equal(got, want) {
		h.t.Fatalf("probes in flight %v, want %v", got, want)
	}
}

func (h *harness) wantPubs(n int) {
	h.t.Helper()
	if len(h.pubs) != n {
		h.t.Fatalf("%d publications, want %d: %+v", len(h.pubs), n, h.pubs)
	}
}

func (h *harness) last() Choice {
	h.t.Helper()
	if len(h.pubs) == 0 {
		h.t.Fatal("nothing published")
	}
	return h.pubs[len(h.pubs)-1]
}

func (h *harness) wantChoice(e *hs2.Endpoint, drain bool, reason ...string) {
	h.t.Helper()
	c := h.last()
	switch {
	case e == nil && c.Endpoint != nil, e != nil && (c.Endpoint == nil || *c.Endpoint != *e):
		h.t.Fatalf("published %v (%s), want %v", c.Endpoint, c.Reason, e)
	case c.Drain != drain:
		h.t.Fatalf("drain = %v, want %v (%s)", c.Drain, drain, c.Reason)
	}
	for _, r := range reason {
		if !strings.Contains(c.Reason, r) {
			h.t.Fatalf("reason %q lacks %q", c.Reason, r)
		}
	}
}

var errRefused = errors.New("dial tcp: connection refused")

func ptr(e hs2.Endpoint) *hs2.Endpoint { return &e }

func TestCoreChoosesOldestVerified(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(2, 5), cand(1, 3), cand(3, 9))
	h.wantProbing(ep(1), ep(2), ep(3)) // verified in parallel
	h.wantPubs(0)
	// The second-oldest answers first: still wait for the oldest.
	h.answer(ep(2), nil, 5*time.Millisecond)
	h.wantPubs(0)
	h.answer(ep(1), nil, 5*time.Millisecond)
	h.wantChoice(ptr(ep(1)), false, "oldest registration, sequence 3")
	h.answer(ep(3), nil, time.Millisecond)
	h.wantPubs(1)
}

func TestCoreSkipsDeadCandidate(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantPubs(0)
	h.answer(ep(2), nil, time.Millisecond)
	h.wantChoice(ptr(ep(2)), false)
	snap := h.c.snapshot(h.now)
	if snap[0].Healthy || snap[0].LastError == "" || !snap[0].DownUntil.After(h.now) || !snap[1].Healthy {
		t.Fatalf("snapshot %+v", snap)
	}
}

func TestCoreStickyAndFailover(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)

	// Probed every interval while healthy; nothing else happens.
	for range 5 {
		h.advance(DefaultProbeInterval)
		h.wantProbing(ep(1))
		h.answer(ep(1), nil, 2*time.Millisecond)
	}
	h.wantPubs(1)

	// A newer registration never moves traffic.
	h.update(Status{}, cand(1, 1), cand(2, 2), cand(3, 0))
	h.wantPubs(1)

	// One failure: suspect, not failed; the next candidate is verified now.
	h.advance(DefaultProbeInterval)
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantPubs(0 + 1)
	h.wantProbing(ep(3)) // oldest other one (sequence 0)
	h.answer(ep(3), nil, time.Millisecond)
	// Second failure: switch at once to the verified one.
	h.advance(DefaultProbeInterval)
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantChoice(ptr(ep(3)), false, "hs2-1:10000 failed 2 health checks", "connection refused", "chose hs2-3:10000")
	h.wantPubs(2)

	// ep(1) recovers but is held down; after the cooldown traffic stays put.
	h.advance(DefaultCooldown + time.Second)
	h.wantPubs(2)
}

func TestCoreRecoveryResetsSuspicion(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), nil, time.Millisecond)
	for range 10 { // fail, ok, fail, ok...: never two in a row
		h.advance(DefaultProbeInterval)
		h.answer(ep(1), errRefused, time.Millisecond)
		h.advance(DefaultProbeInterval)
		h.answer(ep(1), nil, time.Millisecond)
	}
	h.wantPubs(1)
}

func TestCoreNeverSwitchesToDead(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)
	h.advance(time.Second) // ep(2)'s verification goes stale
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantProbing(ep(2))
	h.answer(ep(2), errors.New("i/o timeout"), 500*time.Millisecond)
	h.advance(0)
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantChoice(nil, false, "all 2 registered HiveServer2 failed health checks", "hs2-1:10000: dial tcp: connection refused", "hs2-2:10000: i/o timeout")
	h.wantPubs(2)

	// Cooldown ends: both re-verified; the first to answer in order wins.
	wake := h.step()
	if wake.IsZero() || wake.Sub(h.now) > DefaultCooldown {
		t.Fatalf("wake %v after now %v", wake, h.now)
	}
	h.now = wake
	h.step()
	h.wantProbing(ep(2)) // ep(1) failed later, so it is still held down
	h.answer(ep(2), nil, 0)
	h.wantChoice(ptr(ep(2)), false, "chose hs2-2:10000")
}

func TestCoreDrainOnDeregistration(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.advance(5 * time.Second)
	h.answer(ep(1), nil, time.Millisecond)
	h.update(Status{}, cand(2, 2))
	h.wantPubs(1)
	h.wantProbing(ep(2)) // stale: verified again before switching
	h.answer(ep(2), nil, time.Millisecond)
	h.wantChoice(ptr(ep(2)), true, "hs2-1:10000 is no longer registered (draining)")

	h.update(Status{Skipped: 2, Problems: []string{"/hiveserver2/x: malformed name", "/hiveserver2/y: malformed data"}})
	h.wantChoice(nil, true, "no HiveServer2 registered under /hiveserver2 (2 registration(s) skipped", "malformed name")
	h.wantPubs(3)

	// A server registers again: chosen without anything else happening.
	h.update(Status{}, cand(4, 7))
	h.answer(ep(4), nil, time.Millisecond)
	h.wantChoice(ptr(ep(4)), false, "chose hs2-4:10000")
}

func TestCoreNoneReasons(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{Source: "/hiveserver2", Skipped: 1, Problems: []string{"p"}})
	h.wantChoice(nil, false, "no HiveServer2 registered under /hiveserver2 (1 registration(s) skipped")
	// Same reason again: not republished.
	h.update(Status{Source: "/hiveserver2", Skipped: 1, Problems: []string{"p"}})
	h.wantPubs(1)

	// Discovery that never answers.
	h = newHarness(t, SelectorConfig{}, nil)
	h.c.status = Status{Err: "disconnected from ZooKeeper 127.0.0.1:1"}
	if wake := h.step(); !wake.Equal(t0.Add(discoveryGrace)) {
		t.Fatalf("wake %v", wake)
	}
	h.wantPubs(0)
	h.advance(discoveryGrace)
	h.wantChoice(nil, false, "discovery has not answered: disconnected from ZooKeeper")
}

func TestCoreAdoptsInitial(t *testing.T) {
	// Registered: kept without a publication, probed at once.
	h := newHarness(t, SelectorConfig{}, ptr(ep(2)))
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.wantProbing(ep(2))
	h.answer(ep(2), nil, time.Millisecond)
	h.wantPubs(0)
	// ...and failed over like any current server.
	h.advance(DefaultProbeInterval)
	h.answer(ep(2), errRefused, time.Millisecond)
	h.wantProbing(ep(1))
	h.answer(ep(1), nil, time.Millisecond)
	h.advance(DefaultProbeInterval)
	h.answer(ep(2), errRefused, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)

	// Not registered: replaced, draining.
	h = newHarness(t, SelectorConfig{}, ptr(ep(9)))
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), true, "hs2-9:10000 is no longer registered")
}

func TestCoreActivePassive(t *testing.T) {
	st := Status{Source: "/hs2ActivePassiveHA-unsecure/instances"}
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(st, passive(cand(1, 1)), passive(cand(2, 2)))
	h.wantProbing()
	h.wantChoice(nil, false, "no active HiveServer2 under /hs2ActivePassiveHA-unsecure/instances: 2 passive instance(s)")

	h.update(st, passive(cand(1, 1)), cand(2, 2))
	h.wantProbing(ep(2))
	h.answer(ep(2), nil, time.Millisecond)
	h.wantChoice(ptr(ep(2)), false)

	// Leadership moves: the old leader closes its sessions, so no drain.
	h.update(st, cand(1, 1), passive(cand(2, 2)))
	h.answer(ep(1), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false, "hs2-2:10000 is no longer the active HiveServer2 (passive)")
}

func TestCoreManualFailover(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)

	req := &failoverReq{reason: "maintenance", reply: make(chan error, 1)}
	h.c.requestFailover(req)
	h.step()
	h.wantChoice(ptr(ep(2)), true, "manual failover from hs2-1:10000: maintenance")
	if err := <-req.reply; err != nil {
		t.Fatal(err)
	}
	if hh := h.c.hs[ep(1)]; !hh.down(h.now) {
		t.Fatal("old server not held down")
	}

	// No other server: refused, nothing moves.
	h.update(Status{}, cand(2, 2))
	req = &failoverReq{reason: "again", reply: make(chan error, 1)}
	h.c.requestFailover(req)
	h.step()
	if err := <-req.reply; err == nil || !strings.Contains(err.Error(), "no other healthy HiveServer2") {
		t.Fatalf("err = %v", err)
	}
	h.wantPubs(2)

	h = newHarness(t, SelectorConfig{}, nil)
	req = &failoverReq{reply: make(chan error, 1)}
	h.c.requestFailover(req)
	if err := <-req.reply; err == nil {
		t.Fatal("failover without a server accepted")
	}
}

func TestCoreReportProbesNow(t *testing.T) {
	h := newHarness(t, SelectorConfig{ProbeInterval: time.Second}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.advance(300 * time.Millisecond)
	h.wantProbing() // next probe not due yet
	for range 50 {
		h.c.report("hs2-1:10000", h.now)
		h.c.report("hs2-2:10000", h.now) // not current: ignored
	}
	h.step()
	h.wantProbing(ep(1))
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantProbing() // suspect, but the alternative's verification is fresh
	h.c.report("hs2-1:10000", h.now)
	h.advance(maxReportGap) // probes stay a little apart
	h.wantProbing(ep(1))
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantChoice(ptr(ep(2)), false)
	h.wantPubs(2)
}

func TestCoreRandomPolicy(t *testing.T) {
	h := newHarness(t, SelectorConfig{Policy: PolicyRandom}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2), cand(3, 3))
	h.answer(ep(2), nil, time.Millisecond) // random does not wait for the oldest
	h.wantChoice(ptr(ep(2)), false, "random policy")
}

func TestCoreRestartedServerClearsCooldown(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), nil, time.Millisecond)
	h.advance(DefaultProbeInterval)
	h.answer(ep(1), errRefused, time.Millisecond)
	h.advance(DefaultProbeInterval)
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantChoice(nil, false, "all 1 registered HiveServer2 failed")
	// Restarted on the same address: a second znode while the crashed one's
	// session has not expired. One candidate, cooldown cleared.
	h.update(Status{}, cand(1, 1), cand(1, 2))
	if n := len(h.c.snapshot(h.now)); n != 1 {
		t.Fatalf("%d candidates for one endpoint", n)
	}
	h.wantProbing(ep(1))
	h.answer(ep(1), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)
}

// A refused health check of the current server is confirmed within
// maxReportGap, not a whole interval later; a timed-out one waits for the
// interval (a slow server is not hurried out).
func TestCoreRefusedConfirmedSoon(t *testing.T) {
	h := newHarness(t, SelectorConfig{ProbeInterval: time.Second}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)
	h.advance(time.Second)
	h.answer(ep(1), errConnRefused, time.Millisecond)
	h.advance(maxReportGap)
	h.wantProbing(ep(1))
	h.answer(ep(1), errConnRefused, time.Millisecond)
	h.wantChoice(ptr(ep(2)), false, "refused every health check")
	if !h.last().PrevDead {
		t.Fatalf("a refused server was not declared dead: %+v", h.last())
	}

	h = newHarness(t, SelectorConfig{ProbeInterval: time.Second}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.advance(time.Second)
	h.answer(ep(1), context.DeadlineExceeded, 500*time.Millisecond)
	h.advance(maxReportGap)
	h.wantProbing()
	h.wantPubs(1)
}

// A cooldown is a preference, not a ban. When the routed server drains and
// the only other one is held down although it answered its latest health
// check (here: the old server of a manual failover), that one is verified
// and routed again, instead of "none" and a second switch moments later
// (the chaos soak saw none→server 21 ms apart: two epoch bumps for one
// drain).
func TestCoreDrainPrefersRecoveredOverNone(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	req := &failoverReq{reason: "maintenance", reply: make(chan error, 1)}
	h.c.requestFailover(req)
	h.step()
	h.wantChoice(ptr(ep(2)), true, "manual failover")
	h.wantPubs(2)

	// ep(2) drains within ep(1)'s cooldown; ep(1)'s answer is stale.
	h.advance(3 * time.Second)
	if !h.c.hs[ep(1)].down(h.now) {
		t.Fatal("test premise: ep(1) should still be held down")
	}
	if n := len(h.probes); n > 0 {
		h.answer(ep(2), nil, time.Millisecond)
	}
	h.update(Status{}, cand(1, 1))
	h.wantPubs(2) // nothing published while ep(1) is checked
	h.wantProbing(ep(1))
	h.answer(ep(1), nil, time.Millisecond)
	h.wantPubs(3)
	h.wantChoice(ptr(ep(1)), true, "hs2-2:10000 is no longer registered (draining)", "chose hs2-1:10000")

	// Had it failed that check, "none" (still a drain) would follow.
	h = newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	req = &failoverReq{reason: "maintenance", reply: make(chan error, 1)}
	h.c.requestFailover(req)
	h.step()
	h.advance(3 * time.Second)
	if n := len(h.probes); n > 0 {
		h.answer(ep(2), nil, time.Millisecond)
	}
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), errRefused, time.Millisecond)
	h.wantPubs(3)
	h.wantChoice(nil, true, "no longer registered (draining)")
}

// A held-down server routed to because it answered its latest health
// check stays routed: its hold-down ends with the choice. (It used to be
// "down" at the very next step, and "none" followed the choice within
// milliseconds: tests/replicas saw it after a crash right after an
// aborting manual failover.)
func TestCoreRecoveredChoiceStays(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	req := &failoverReq{reason: "kill", abort: true, reply: make(chan error, 1)}
	h.c.requestFailover(req)
	h.step()
	h.wantChoice(ptr(ep(2)), false, "manual failover")
	// ep(2) crashes within ep(1)'s cooldown.
	h.advance(DefaultProbeInterval)
	h.answer(ep(2), errConnRefused, time.Millisecond)
	for len(h.probes) == 0 {
		h.advance(maxReportGap)
	}
	for len(h.probes) > 0 {
		var err error
		if p := h.probes[0]; p == ep(2) {
			err = errConnRefused
		}
		h.answer(h.probes[0], err, time.Millisecond)
	}
	h.wantChoice(ptr(ep(1)), false, "answered its latest health check")
	pubs := len(h.pubs)
	h.advance(time.Millisecond)
	h.advance(DefaultProbeInterval)
	if len(h.probes) > 0 {
		h.answer(ep(1), nil, time.Millisecond)
	}
	if len(h.pubs) != pubs {
		t.Fatalf("published %+v after choosing %s", h.pubs[pubs:], ep(1))
	}
}

// heldDownConfig is the chaos soak's: probes every 2s, 1s to answer, 30s
// cooldown.
var heldDownConfig = SelectorConfig{ProbeInterval: 2 * time.Second, ProbeTimeout: time.Second, Cooldown: 30 * time.Second}

// A server held down by an earlier incident whose probes only timed out
// (a GC pause) is rechecked before the routed server gives way to "none":
// if it answers, the switch goes to it directly, one failover instead of
// "none" and back a moment later (the chaos soak's extra epoch bumps).
func TestCoreHeldDownRecheckedBeforeNone(t *testing.T) {
	timeout := fmt.Errorf("no answer within 1s: %w", context.DeadlineExceeded)
	h := newHarness(t, heldDownConfig, nil)
	h.c.lastAnswer = func(hs2.Endpoint) time.Time { return time.Time{} } // no traffic answered
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)

	// ep(1) pauses: two timed-out checks move traffic to ep(2), and ep(1)
	// is held down for the cooldown.
	h.advance(heldDownConfig.ProbeInterval)
	h.answer(ep(1), timeout, time.Second)
	h.answerAll(nil)
	h.advance(heldDownConfig.ProbeInterval)
	h.answer(ep(1), timeout, time.Second)
	h.answerAll(nil) // ep(2) verified again before the switch
	h.wantChoice(ptr(ep(2)), true, "hs2-1:10000 timed out 2 health checks")
	h.wantPubs(2)

	// ep(1) resumed unseen; well within its cooldown ep(2) pauses too.
	h.advance(heldDownConfig.ProbeInterval)
	for range 3 {
		h.wantProbing(ep(2))
		h.answer(ep(2), nil, time.Millisecond)
		h.advance(heldDownConfig.ProbeInterval)
	}
	h.wantProbing(ep(2))
	h.answer(ep(2), timeout, time.Second)
	h.advance(heldDownConfig.ProbeInterval)
	h.answer(ep(2), timeout, time.Second)
	// Not "none": ep(1) is checked first, and taken as soon as it answers.
	h.wantPubs(2)
	h.wantProbing(ep(1))
	h.answer(ep(1), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), true, "hs2-2:10000 timed out 2 health checks", "chose hs2-1:10000")
	h.wantPubs(3)
}

// When the held-down server still does not answer, "none" follows its
// recheck.
func TestCoreHeldDownRecheckFailsThenNone(t *testing.T) {
	timeout := fmt.Errorf("no answer within 1s: %w", context.DeadlineExceeded)
	h := newHarness(t, heldDownConfig, nil)
	h.c.lastAnswer = func(hs2.Endpoint) time.Time { return time.Time{} } // no traffic answered
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	h.advance(heldDownConfig.ProbeInterval)
	h.answer(ep(1), timeout, time.Second)
	h.answerAll(nil)
	h.advance(heldDownConfig.ProbeInterval)
	h.answer(ep(1), timeout, time.Second)
	h.answerAll(nil)
	h.wantChoice(ptr(ep(2)), true)
	h.advance(heldDownConfig.ProbeInterval)
	h.answer(ep(2), timeout, time.Second)
	h.advance(heldDownConfig.ProbeInterval)
	h.answer(ep(2), timeout, time.Second)
	h.wantPubs(2)
	h.wantProbing(ep(1))
	h.answer(ep(1), timeout, time.Second)
	h.wantChoice(nil, true, "hs2-2:10000 timed out 2 health checks", "all 2 registered HiveServer2 failed health checks")
	h.wantPubs(3)
}

// answerAll completes every probe in flight with err.
func (h *harness) answerAll(err error) {
	h.t.Helper()
	for len(h.probes) > 0 {
		h.answer(h.probes[0], err, time.Millisecond)
	}
}
