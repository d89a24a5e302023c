package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// liveWork is one cluster (three replicas, two HS2s), or one standalone
// replica with two HS2s, shared by the subtests of TestLiveWork: each
// faults whichever HS2 serves at the time, runs its query on a follower
// (the standalone replica), and leaves both HS2s healthy.
type liveWork struct {
	*env
	leader   string
	follower *harness.Client
}

// serving waits until every replica agrees on a route to an HS2, the
// serving one passes its health checks and the other is registered and out
// of its cooldown (so that a fault can move new queries to it; the leader
// verifies it then); it returns the route, the serving simulator and the
// other one.
func (w *liveWork) serving(t *testing.T) (harness.Route, *harness.Sim, *harness.Sim) {
	t.Helper()
	r, leader := w.agreed(30*time.Second, w.clients, func(r harness.Route, _ string) error {
		if r.Server == "" {
			return fmt.Errorf("no server routed")
		}
		return nil
	})
	if leader != w.leader {
		t.Fatalf("leader moved from %s to %s", w.leader, leader)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		top, err := w.follower.Topology(ctx)
		if err != nil {
			return err
		}
		cs := harness.ConnectorState(top, connector)
		ready := 0
		for _, c := range cs.GetCandidates() {
			addr := harness.ServerAddr(c.GetServer())
			if c.GetDownUntil().AsTime().After(time.Now()) || addr == r.Server && !c.GetHealthy() {
				continue
			}
			ready++
		}
		if ready != len(w.sims) {
			return fmt.Errorf("%d of %d HS2s ready: %v", ready, len(w.sims), cs.GetCandidates())
		}
		return nil
	})
	cur := w.fleet.SimByAddr(r.Server)
	if cur == nil {
		t.Fatalf("routed to unknown %s", r.Server)
	}
	other := w.sims[0]
	if other == cur {
		other = w.sims[1]
	}
	return r, cur, other
}

// restore heals every simulator (faults off; a crashed one listens again).
func (w *liveWork) restore(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range w.sims {
		if err := s.Fault(ctx, "heal"); err != nil {
			t.Fatal(err)
		}
	}
}

// read starts req on the follower and returns its result channel once
// HS2 has it: once the statement runs on sim (HS2 accepted it, nothing was
// sent) or, with batch, once the first batch arrived.
func (w *liveWork) read(t *testing.T, ctx context.Context, sim *harness.Sim, req *hiveqv1.ExecuteRequest, batch bool) <-chan harness.Result {
	t.Helper()
	first := make(chan struct{})
	done := make(chan harness.Result, 1)
	go func() {
		var once sync.Once
		done <- w.follower.Execute(ctx, req, func(*hiveqv1.RowBatch) error {
			once.Do(func() { close(first) })
			return nil
		}, nil)
	}()
	if batch {
		select {
		case <-first:
		case r := <-done:
			t.Fatalf("query ended before its first batch: %v (last %v)", r.Err, r.Last)
		case <-ctx.Done():
			t.Fatal("no batch in time")
		}
		return done
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		st, err := sim.Stats(ctx)
		if err != nil {
			return err
		}
		if st.OpenOperations == 0 {
			return fmt.Errorf("no operation runs on %s", sim.Addr)
		}
		return nil
	})
	return done
}

// running is a read that HS2 accepts at once and answers after d: six rows.
func running(d time.Duration) *hiveqv1.ExecuteRequest {
	return &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM default.employees",
		Config: map[string]string{"hs2sim.exec_delay_ms": strconv.FormatInt(d.Milliseconds(), 10)}}
}

// streaming reads n rows paced at 4000 rows a second.
func streaming(n int) *hiveqv1.ExecuteRequest {
	return &hiveqv1.ExecuteRequest{Statement: fmt.Sprintf("SELECT * FROM synth.rows_%d", n), FetchSize: 500,
		Config: map[string]string{"hs2sim.rows_per_second": "4000"}}
}

// finishedOn fails unless r finished on server with want rows and no re-run.
func finishedOn(t *testing.T, r harness.Result, server string, want int64) {
	t.Helper()
	if r.Err != nil || r.Last.GetState() != hiveqv1.QueryState_QUERY_STATE_FINISHED {
		t.Fatalf("the query on %s did not finish: %v (last %v)", server, r.Err, r.Last)
	}
	if r.Last.GetServer() != server || r.Last.GetReruns() != 0 || r.Rows != want {
		t.Fatalf("finished on %s with %d re-runs and %d rows, want %s, 0, %d", r.Last.GetServer(), r.Last.GetReruns(), r.Rows, server, want)
	}
}

// movedOff waits until every replica routes away from srv past epoch and
// checks that the switch was planned (drain), not a death: what running
// queries there are told they may finish.
func (w *liveWork) movedOff(t *testing.T, srv string, epoch uint64) harness.Route {
	t.Helper()
	r, _ := w.agreed(30*time.Second, w.clients, func(r harness.Route, _ string) error {
		if r.Server == srv || r.Server == "" || r.Epoch <= epoch {
			return fmt.Errorf("route %+v, want another server past epoch %d", r, epoch)
		}
		return nil
	})
	if cs := connState(t, w.follower); !cs.GetDrain() || cs.GetPrevDead() {
		t.Errorf("switch off %s: drain %v prev_dead %v, want a drain", srv, cs.GetDrain(), cs.GetPrevDead())
	}
	return r
}

// TestLiveWork (issue 11): in one three-replica cluster with two HS2s
// (queries sent to a follower replica), and in one standalone replica, a
// running query survives every event that leaves its server alive (slow,
// GC-paused, deregistered, named by stale failure reports), a read whose
// session is still opening when its route moves runs on the other HS2,
// and a stream cut by a crash mid-result ends ABORTED naming the rows it
// delivered.
func TestLiveWork(t *testing.T) {
	t.Run("cluster", func(t *testing.T) { testLiveWork(t, false) })
	t.Run("standalone", func(t *testing.T) { testLiveWork(t, true) })
}

func testLiveWork(t *testing.T, standalone bool) {
	e := start(t, setup{sims: 2, standalone: standalone}, func(c *harness.ReplicaConfig) {
		c.Cooldown = time.Second
		c.LogLevel = "debug" // the leader logs the stale reports it ignores
	})
	_, leader := e.agreed(20*time.Second, e.clients, nil)
	w := &liveWork{env: e, leader: leader, follower: e.clients[0]}
	if !standalone {
		w.follower = e.others(leader)[0]
		t.Logf("leader %s; queries go to the follower %s", leader, w.follower.Addr)
	}

	// Every call 1.2s late (probe timeout 1s): the leader routes new
	// queries away, the running one finishes on the slow server.
	t.Run("slow", func(t *testing.T) {
		defer w.restore(t)
		r0, cur, _ := w.serving(t)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		done := w.read(t, ctx, cur, running(3*time.Second), false)
		if err := cur.Fault(ctx, "slow", "delay", "1200ms"); err != nil {
			t.Fatal(err)
		}
		w.movedOff(t, cur.Addr, r0.Epoch)
		finishedOn(t, <-done, cur.Addr, 6)
	})

	// A 6 s stop-the-world pause (GC): probes time out, the route moves,
	// the running query resumes and finishes there.
	t.Run("gc-pause", func(t *testing.T) {
		defer w.restore(t)
		r0, cur, _ := w.serving(t)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		done := w.read(t, ctx, cur, running(3*time.Second), false)
		if err := cur.Fault(ctx, "pause", "for", "6s"); err != nil {
			t.Fatal(err)
		}
		w.movedOff(t, cur.Addr, r0.Epoch)
		finishedOn(t, <-done, cur.Addr, 6)
	})

	// HS2's graceful stop while another HS2 is healthy: its znode goes,
	// it keeps serving; the stream running there delivers every row.
	t.Run("deregistered", func(t *testing.T) {
		r0, cur, _ := w.serving(t)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		defer func() {
			if err := cur.Fault(ctx, "register"); err != nil {
				t.Error(err)
			}
		}()
		done := w.read(t, ctx, cur, streaming(12000), true)
		if err := cur.Fault(ctx, "deregister"); err != nil {
			t.Fatal(err)
		}
		w.movedOff(t, cur.Addr, r0.Epoch)
		finishedOn(t, <-done, cur.Addr, 12000)
	})

	// Failure reports naming the serving HS2 under an older epoch (a slow
	// replica's, arriving late), and one naming the replaced HS2 under the
	// current epoch: the leader ignores both, nothing moves, the running
	// stream finishes.
	t.Run("stale-reports", func(t *testing.T) {
		if standalone {
			t.Skip("failure reports go through etcd only between replicas")
		}
		r0, cur, other := w.serving(t)
		if r0.Epoch < 2 {
			t.Fatalf("epoch %d: the earlier subtests should have moved the route", r0.Epoch)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		done := w.read(t, ctx, cur, streaming(12000), true)
		cli, err := clientv3.New(clientv3.Config{Endpoints: e.etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		reports := map[string]map[string]any{
			"stale-epoch":  {"epoch": r0.Epoch - 1, "server": cur.Addr, "error": "connection refused", "refused": true, "time": time.Now()},
			"stale-server": {"epoch": r0.Epoch, "server": other.Addr, "error": "connection refused", "refused": true, "time": time.Now()},
		}
		for from, doc := range reports {
			b, _ := json.Marshal(doc)
			key := "/hiveqd/" + e.fleet.Config.Cluster + "/reports/" + connector + "/" + from
			if _, err := cli.Put(ctx, key, string(b)); err != nil {
				t.Fatal(err)
			}
			defer cli.Delete(context.WithoutCancel(ctx), key)
		}
		for from := range reports {
			re := regexp.MustCompile(`ignoring stale failure report.*from=` + from)
			if _, err := e.fleet.Replica(w.leader).WaitLine(ctx, re); err != nil {
				t.Fatalf("the leader did not log ignoring the %s report: %v", from, err)
			}
		}
		finishedOn(t, <-done, cur.Addr, 12000)
		if r := w.routeOf(t); r != r0 {
			t.Fatalf("route moved from %+v to %+v on stale reports", r0, r)
		}
	})

	// A read's session is still opening on the serving HS2 when its route
	// moves on: HS2 never saw the statement, so the read runs on the other
	// HS2 and the client sees no error, whether the old server was
	// declared dead (a manual failover that aborts running queries; its
	// crash) or only routed away from (a default, draining manual
	// failover; a hang, which the leader's probes time out on). Nothing
	// waits for the connect or call timeout on the old server.
	for _, tc := range []struct {
		name  string
		fault string // holds the session opening
		move  func(t *testing.T, ctx context.Context, cur *harness.Sim)
	}{
		{"abort-failover", "holdopen", w.failover(true)},
		{"crash", "holdopen", func(t *testing.T, ctx context.Context, cur *harness.Sim) {
			if err := cur.Fault(ctx, "crash"); err != nil {
				t.Fatal(err)
			}
		}},
		{"drain-failover", "holdopen", w.failover(false)},
		{"hang", "hang", func(*testing.T, context.Context, *harness.Sim) {}},
	} {
		t.Run("route-moves-while-session-opening/"+tc.name, func(t *testing.T) {
			defer w.restore(t)
			r0, cur, other := w.serving(t)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			if err := cur.Fault(ctx, tc.fault); err != nil {
				t.Fatal(err)
			}
			// A session configuration of its own: no pooled session fits.
			req := &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM default.employees", Config: map[string]string{"test.case": t.Name()}}
			done := make(chan harness.Result, 1)
			go func() { done <- w.follower.Execute(ctx, req, nil, nil) }()
			if tc.fault == "holdopen" {
				testenv.Eventually(t, 20*time.Second, func() error {
					st, err := cur.Stats(ctx)
					if err != nil {
						return err
					}
					if st.HeldOpens == 0 {
						return fmt.Errorf("no OpenSession held on %s", cur.Addr)
					}
					return nil
				})
			}
			tc.move(t, ctx, cur)
			moved := w.movedAway(t, cur.Addr, r0.Epoch)
			r := <-done
			if r.Err != nil || r.First.GetServer() != cur.Addr || r.Last.GetServer() != other.Addr || r.Last.GetEpoch() <= r0.Epoch || r.Rows != 6 {
				t.Fatalf("read whose session was opening: %v; first status %v, last %v, %d rows", r.Err, r.First, r.Last, r.Rows)
			}
			// The old server's connect timeout is 5s, its call timeout 30s.
			if d := r.Finished.Sub(moved); d > 4*time.Second {
				t.Fatalf("the read finished %v after the route moved: it waited for the old server", d)
			}
		})
	}

	// The serving HS2 crashes mid-result: the stream had sent rows, so it
	// is not re-run; it ends ABORTED naming the lost and the new server and
	// the rows the client got.
	t.Run("crash-mid-stream", func(t *testing.T) {
		defer w.restore(t)
		r0, cur, other := w.serving(t)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		done := w.read(t, ctx, cur, streaming(80000), true)
		if err := cur.Fault(ctx, "crash"); err != nil {
			t.Fatal(err)
		}
		r := <-done
		code, info := harness.ErrorInfo(r.Err)
		if code != codes.Aborted || info.GetReason() != "HS2_LOST" {
			t.Fatalf("stream ended with %v (reason %q), want ABORTED HS2_LOST", r.Err, info.GetReason())
		}
		md := info.GetMetadata()
		want := map[string]string{
			"server": cur.Addr, "epoch": strconv.FormatUint(r0.Epoch, 10),
			"new_server": other.Addr, "new_epoch": strconv.FormatUint(r0.Epoch+1, 10),
			"rows_delivered": strconv.FormatInt(r.Rows, 10),
		}
		for k, v := range want {
			if md[k] != v {
				t.Errorf("ErrorInfo %s = %q, want %q (metadata %v)", k, md[k], v, md)
			}
		}
		if r.Rows == 0 || r.Last.GetReruns() != 0 {
			t.Errorf("%d rows delivered, %d re-runs", r.Rows, r.Last.GetReruns())
		}
	})
}

// failover asks the follower for a manual failover (abort: of running
// queries too) and checks that it moved the route to the other HS2.
func (w *liveWork) failover(abort bool) func(t *testing.T, ctx context.Context, cur *harness.Sim) {
	return func(t *testing.T, ctx context.Context, cur *harness.Sim) {
		t.Helper()
		admin := hiveqv1.NewClusterServiceClient(w.follower.Conn)
		resp, err := admin.Failover(ctx, &hiveqv1.FailoverRequest{Connector: connector, Reason: "test", AbortRunning: abort})
		if err != nil {
			t.Fatal(err)
		}
		if cs := resp.GetConnector(); harness.ServerAddr(cs.GetServer()) == cur.Addr || cs.GetPrevDead() != abort || cs.GetDrain() == abort {
			t.Fatalf("manual failover (abort_running %v): %v", abort, cs)
		}
	}
}

// movedAway waits until the follower routes away from srv past epoch and
// returns when it saw that.
func (w *liveWork) movedAway(t *testing.T, srv string, epoch uint64) time.Time {
	t.Helper()
	var at time.Time
	testenv.Eventually(t, 30*time.Second, func() error {
		if r := w.routeOf(t); r.Server == srv || r.Epoch <= epoch {
			return fmt.Errorf("route %+v", r)
		}
		at = time.Now()
		return nil
	})
	return at
}

// routeOf is the route the follower sees now.
func (w *liveWork) routeOf(t *testing.T) harness.Route {
	t.Helper()
	cs := connState(t, w.follower)
	return harness.Route{Server: harness.ServerAddr(cs.GetServer()), Epoch: cs.GetEpoch()}
}
