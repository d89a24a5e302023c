package registry

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

// errConnRefused is what dialling a closed port returns.
var errConnRefused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

var errProbeTimeout = fmt.Errorf("no answer within 500ms: %w", context.DeadlineExceeded)

func (h *harness) wantDead(dead bool) {
	h.t.Helper()
	if c := h.last(); c.PrevDead != dead {
		h.t.Fatalf("prev_dead = %v, want %v (%s)", c.PrevDead, dead, c.Reason)
	}
}

// failCurrent fails the current server's probes until it is held down.
func (h *harness) failCurrent(e hs2.Endpoint, err error, d time.Duration) {
	h.t.Helper()
	for range DefaultFailThreshold {
		h.advance(DefaultProbeInterval)
		h.answer(e, err, d)
	}
}

func TestCoreRefusedIsDeadTimeoutDrains(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		drain bool
		dead  bool
	}{
		{"refused", errConnRefused, false, true},
		{"timeout", errProbeTimeout, true, false},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, SelectorConfig{}, nil)
			h.update(Status{}, cand(1, 1), cand(2, 2))
			h.answer(ep(1), nil, time.Millisecond)
			h.answer(ep(2), nil, time.Millisecond)
			h.wantChoice(ptr(ep(1)), false)
			h.failCurrent(ep(1), tc.err, time.Millisecond)
			if len(h.probes) > 0 {
				h.answer(ep(2), nil, time.Millisecond)
			}
			h.wantChoice(ptr(ep(2)), tc.drain)
			h.wantDead(tc.dead)
		})
	}
}

func TestCoreLoneRefusedPublishesNoneDead(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), nil, time.Millisecond)
	h.failCurrent(ep(1), errConnRefused, time.Millisecond)
	h.wantChoice(nil, false, "refused every health check")
	h.wantDead(true)
}

func TestCoreDeregisteredLastServerDrains(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), nil, time.Millisecond)
	h.update(Status{})
	h.wantChoice(nil, true, "hs2-1:10000 is no longer registered (draining)")
	h.wantDead(false)
}

// A lone server whose probes time out stays while traffic to it is still
// answered (saturated); once nothing is answered for the window it is
// unresponsive: none, drained, not dead. An answer brings it back at once.
func TestCoreSaturatedVersusHung(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	var lastAnswer time.Time
	h.c.lastAnswer = func(hs2.Endpoint) time.Time { return lastAnswer }
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)

	// Saturated: probes time out, calls complete all along.
	for range 10 {
		lastAnswer = h.now
		h.advance(DefaultProbeInterval)
		if len(h.probes) > 0 {
			h.answer(ep(1), errProbeTimeout, DefaultProbeTimeout)
		}
	}
	h.wantPubs(1)
	if !h.c.hs[ep(1)].down(h.now) {
		t.Fatal("the saturated server's probes did not fail")
	}

	// Hung: calls stop completing too.
	hungAt := h.now
	for h.last().Endpoint != nil && h.now.Sub(hungAt) < 10*time.Second {
		wake := h.step()
		if len(h.probes) > 0 {
			h.answer(ep(1), errProbeTimeout, DefaultProbeTimeout)
			continue
		}
		if wake.IsZero() {
			t.Fatal("no wake-up while deciding")
		}
		h.now = wake
		h.step()
	}
	h.wantChoice(nil, true, "unresponsive")
	h.wantDead(false)
	if took := h.now.Sub(hungAt); took > DefaultAnswerWindow+DefaultProbeTimeout+DefaultProbeInterval {
		t.Fatalf("none after %v", took)
	}

	// It answers again: probed during its cooldown, chosen at once.
	for len(h.probes) == 0 {
		wake := h.step()
		if wake.IsZero() {
			t.Fatal("the held-down server is not probed again")
		}
		h.now = wake
		h.step()
	}
	back := h.now
	h.answer(ep(1), nil, time.Millisecond)
	h.wantChoice(ptr(ep(1)), false)
	if took := h.now.Sub(back); took > DefaultProbeInterval {
		t.Fatalf("back after %v", took)
	}
}

func TestCoreLoneTimeoutWithoutTrafficIsNone(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.c.lastAnswer = func(hs2.Endpoint) time.Time { return time.Time{} }
	h.update(Status{}, cand(1, 1))
	h.answer(ep(1), nil, time.Millisecond)
	h.failCurrent(ep(1), errProbeTimeout, DefaultProbeTimeout)
	h.wantChoice(nil, true, "unresponsive")
}

func TestCoreManualFailoverAbort(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, nil)
	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	h.answer(ep(2), nil, time.Millisecond)
	req := &failoverReq{ctx: context.Background(), reason: "kill it", abort: true, reply: make(chan error, 1)}
	h.c.requestFailover(req)
	h.step()
	if err := <-req.reply; err != nil {
		t.Fatal(err)
	}
	h.wantChoice(ptr(ep(2)), false, "running queries aborted")
	h.wantDead(true)
}

// 12.1: a failover before discovery answered is refused, not queued; one
// whose caller gave up is withdrawn.
func TestCoreFailoverBeforeSyncAndWithdrawn(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, ptr(ep(1)))
	req := &failoverReq{ctx: context.Background(), reason: "x", reply: make(chan error, 1)}
	h.c.requestFailover(req)
	if err := <-req.reply; err != ErrNotSynced {
		t.Fatalf("err = %v", err)
	}

	h.update(Status{}, cand(1, 1), cand(2, 2))
	h.answer(ep(1), nil, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	req = &failoverReq{ctx: ctx, reason: "x", reply: make(chan error, 1)}
	h.c.requestFailover(req)
	h.step() // ep(2) is being verified
	cancel()
	h.step()
	if err := <-req.reply; err == nil {
		t.Fatal("withdrawn failover succeeded")
	}
	h.answer(ep(2), nil, time.Millisecond)
	h.wantPubs(0) // the adopted server stays; nothing was published
}

// 12.2: an adopted server is probed before discovery answers; dead, it
// gives way to "none" at once.
func TestCoreAdoptedProbedBeforeSync(t *testing.T) {
	h := newHarness(t, SelectorConfig{}, ptr(ep(1)))
	h.step()
	h.wantProbing(ep(1))
	h.answer(ep(1), errConnRefused, time.Millisecond)
	h.advance(DefaultProbeInterval)
	h.answer(ep(1), errConnRefused, time.Millisecond)
	h.wantPubs(0) // discovery gets a moment to answer first
	wake := h.step()
	if wake.IsZero() || wake.Sub(t0) > time.Second {
		t.Fatalf("wake %v", wake)
	}
	h.now = wake
	h.step()
	h.wantChoice(nil, false, "adopted hs2-1:10000 failed", "before discovery answered")
	h.wantDead(true)
	// Discovery answers later: the restarted server is chosen.
	h.update(Status{}, cand(1, 5))
	if len(h.probes) > 0 {
		h.answer(ep(1), nil, time.Millisecond)
	}
}

// The real prober's error for a closed port is recognised as refused.
func TestProbeClosedPortIsRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	p := &HS2Prober{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = p.Probe(ctx, hs2.Endpoint{Host: "127.0.0.1", Port: addr.Port, Transport: hs2.TransportBinary, Auth: hs2.AuthNone})
	if !isRefused(err) {
		t.Fatalf("probe of a closed port: %v (not recognised as refused)", err)
	}
}
