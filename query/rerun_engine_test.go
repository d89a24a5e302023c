package query_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/query"
)

// quickPoll starts a simulator whose status long poll is short, so that a
// running query reports RUNNING at once.
func quickPoll(t *testing.T) *hs2sim.Server {
	t.Helper()
	s, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0", LongPoll: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// slowRead is a read that HS2 accepts at once and finishes after d.
func slowRead(d time.Duration) query.Request {
	return query.Request{Statement: "SELECT * FROM default.employees",
		Config: map[string]string{"hs2sim.exec_delay_ms": fmt.Sprint(d.Milliseconds())}}
}

// waitAccepted waits until n operations run on s.
func waitAccepted(t *testing.T, s *hs2sim.Server, n int) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		if st := s.Stats(); st.OpenOperations < n {
			return fmt.Errorf("%d operations", st.OpenOperations)
		}
		return nil
	})
}

// onAccepted returns an event hook that counts wg down at the query's
// first PENDING or RUNNING status: the client knows HS2 accepted it.
func onAccepted(wg *sync.WaitGroup) func(query.Event) error {
	var once sync.Once
	return func(ev query.Event) error {
		if ev.Kind == query.EventStatus && (ev.Status.State == query.StatePending || ev.Status.State == query.StateRunning) {
			once.Do(wg.Done)
		}
		return nil
	}
}

// runAll runs n copies of req at once and returns their results; accepted
// is done once HS2 accepted all of them.
func runAll(e *env, ctx context.Context, n int, req query.Request, accepted *sync.WaitGroup) []*result {
	out := make([]*result, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = e.run(ctx, req, onAccepted(accepted))
		}()
	}
	wg.Wait()
	return out
}

func TestRerunReadsAfterCrash(t *testing.T) {
	a, b := quickPoll(t), sim(t)
	e := newEnv(t, a, func(c *query.Config) { c.RetryWait = 10 * time.Second })
	done := make(chan []*result, 1)
	var accepted sync.WaitGroup
	accepted.Add(5)
	go func() { done <- runAll(e, ctxT(t, 60*time.Second), 5, slowRead(3*time.Second), &accepted) }()
	accepted.Wait()
	a.Crash()
	e.routeTo(b, false, true)
	for i, res := range <-done {
		if res.err != nil {
			t.Fatalf("query %d: %v", i, res.err)
		}
		sts := res.statuses()
		var submitted []query.Status
		for _, st := range sts {
			if st.State == query.StateSubmitted {
				submitted = append(submitted, st)
			}
		}
		last := res.last()
		if len(submitted) != 2 || submitted[1].Server != b.Addr() || submitted[1].Epoch != 2 ||
			last.State != query.StateFinished || last.Reruns != 1 || last.Server != b.Addr() || res.rows() != 6 {
			t.Fatalf("query %d: statuses %+v", i, sts)
		}
	}
	a.Heal()
	checkClean(t, e, b)
}

func TestRerunOptOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*query.Config)
		req  func(*query.Request)
	}{
		{"request", nil, func(r *query.Request) { r.DisableRerun = true }},
		{"connector", func(c *query.Config) { c.Connectors = map[string]query.Connector{conn: {DisableRerun: true}} }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := quickPoll(t), sim(t)
			e := newEnv(t, a, tc.mod)
			req := slowRead(3 * time.Second)
			if tc.req != nil {
				tc.req(&req)
			}
			done := make(chan *result, 1)
			var accepted sync.WaitGroup
			accepted.Add(1)
			go func() { done <- e.run(ctxT(t, 60*time.Second), req, onAccepted(&accepted)) }()
			accepted.Wait()
			a.Crash()
			e.routeTo(b, false, true)
			res := <-done
			qe := wantCode(t, res.err, query.Aborted, query.ReasonHS2Lost)
			if qe.Metadata[query.MetaRowsDelivered] != "0" || res.last().Reruns != 0 {
				t.Fatalf("metadata %v last %+v", qe.Metadata, res.last())
			}
			a.Heal()
			checkClean(t, e, b)
		})
	}
}

// A route lost while the session is still opening: nothing ran, so the
// query runs on the new route.
func TestRerunWhileSessionOpening(t *testing.T) {
	a, b := quickPoll(t), sim(t)
	e := newEnv(t, a, func(c *query.Config) { c.RetryWait = 10 * time.Second })
	a.Hang()
	defer a.Heal()
	done := make(chan *result, 1)
	go func() {
		done <- e.run(ctxT(t, 60*time.Second), query.Request{Statement: "SELECT * FROM default.employees"}, nil)
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if e.engine.Running() != 1 {
			return fmt.Errorf("not running")
		}
		return nil
	})
	e.routeTo(b, false, true)
	res := <-done
	if res.err != nil || res.last().Server != b.Addr() || res.rows() != 6 {
		t.Fatalf("%v %+v", res.err, res.statuses())
	}
}

// runOpeningOn holds a's OpenSession calls and starts a read whose session
// is then opening on a; it returns when the read waits there. a is healed
// when the test ends.
func runOpeningOn(t *testing.T, e *env, a *hs2sim.Server) <-chan *result {
	t.Helper()
	a.HoldOpenSessions()
	t.Cleanup(a.Heal)
	done := make(chan *result, 1)
	go func() {
		done <- e.run(ctxT(t, 20*time.Second), query.Request{Statement: "SELECT * FROM default.employees"}, nil)
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := a.Stats().HeldOpens; n != 1 {
			return fmt.Errorf("%d sessions opening", n)
		}
		return nil
	})
	return done
}

// A route that moves on by a drain (the server is not dead) while the
// session is still opening there (OpenSession held): the query does not
// wait for the old server's call timeout (30s, past the query's 20s
// deadline here) but runs on the new route.
func TestSessionOpeningMovesWithDrain(t *testing.T) {
	a, b := quickPoll(t), sim(t)
	e := newEnv(t, a, nil)
	done := runOpeningOn(t, e, a)
	e.route(b, true)
	res := <-done
	if res.err != nil || res.last().Server != b.Addr() || res.last().Reruns != 0 || res.rows() != 6 {
		t.Fatalf("%v %+v", res.err, res.statuses())
	}
	a.Heal()
	checkClean(t, e, a, b)
}

// The last server drains while a session is still opening there: the
// route goes to "no server", which is nowhere better to go, so the query
// keeps opening its session there and runs (the server is alive); a route
// that names a server after that is followed, as with any drain.
func TestSessionOpeningStaysWhenLastServerDrains(t *testing.T) {
	for _, tc := range []struct {
		name string
		then func(e *env, a, b *hs2sim.Server) // after "no server"
		want func(a, b *hs2sim.Server) string  // the server that ran it
	}{
		{"stays", func(_ *env, a, _ *hs2sim.Server) { a.Heal() }, func(a, _ *hs2sim.Server) string { return a.Addr() }},
		{"follows a later server", func(e *env, _, b *hs2sim.Server) { e.route(b, false) }, func(_, b *hs2sim.Server) string { return b.Addr() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := quickPoll(t), sim(t)
			const retryWait = 200 * time.Millisecond
			e := newEnv(t, a, func(c *query.Config) { c.RetryWait = retryWait })
			done := runOpeningOn(t, e, a)
			e.route(nil, true) // a deregistered, and it was the last
			// Well past RetryWait: a query that gave up on the open and
			// waited for a route naming a server would have failed by now.
			select {
			case res := <-done:
				t.Fatalf("ended while its server was only draining: %v", res.err)
			case <-time.After(5 * retryWait):
			}
			tc.then(e, a, b)
			res := <-done
			if res.err != nil || res.last().Server != tc.want(a, b) || res.last().Reruns != 0 || res.rows() != 6 {
				t.Fatalf("%v %+v", res.err, res.statuses())
			}
			a.Heal()
			checkClean(t, e, a, b)
		})
	}
}

// A server that is only slow, or pauses (GC) for seconds, while a switch
// moves new queries away: the running query finishes there.
func TestSlowAndPausedServerQueriesFinish(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(s *hs2sim.Server)
	}{
		{"slow", func(s *hs2sim.Server) { s.SetSlow(700 * time.Millisecond) }},
		{"pause", func(s *hs2sim.Server) { s.Pause(6 * time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := quickPoll(t), sim(t)
			e := newEnv(t, a, nil)
			done := make(chan []*result, 1)
			var accepted sync.WaitGroup
			accepted.Add(3)
			go func() { done <- runAll(e, ctxT(t, 90*time.Second), 3, slowRead(2*time.Second), &accepted) }()
			accepted.Wait()
			tc.fault(a)
			e.route(b, false) // probes timed out: not dead
			for i, res := range <-done {
				if res.err != nil || res.last().Server != a.Addr() || res.last().Reruns != 0 || res.rows() != 6 {
					t.Fatalf("query %d: %v %+v", i, res.err, res.last())
				}
			}
			a.Heal()
			checkClean(t, e, a, b)
		})
	}
}

// Draining the last server ("no server" published) lets the query finish.
func TestDrainOfLastServerLetsQueryFinish(t *testing.T) {
	a := sim(t)
	e := newEnv(t, a, nil)
	done := make(chan *result, 1)
	go func() { done <- e.run(ctxT(t, 60*time.Second), slowRead(time.Second), nil) }()
	waitAccepted(t, a, 1)
	e.route(nil, true)
	res := <-done
	if res.err != nil || res.rows() != 6 {
		t.Fatalf("%v %+v", res.err, res.statuses())
	}
	checkClean(t, e, a)
}

// On a hung lone server, the stall bound ends the running query.
func TestStallBoundEndsQueryOnHungServer(t *testing.T) {
	a, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0", LongPoll: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e := newEnv(t, a, func(c *query.Config) {
		c.Connectors = map[string]query.Connector{conn: {StallTimeout: time.Second}}
		c.RetryWait = 200 * time.Millisecond
	})
	done := make(chan *result, 1)
	start := time.Now()
	go func() { done <- e.run(ctxT(t, 60*time.Second), slowRead(30*time.Second), nil) }()
	waitAccepted(t, a, 1)
	a.Hang()
	res := <-done
	qe := wantCode(t, res.err, query.Aborted, query.ReasonHS2Lost)
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("ended after %v", el)
	}
	t.Logf("ended after %v: %v", time.Since(start), qe)
	a.Heal()
	checkClean(t, e, a)
}
