package replicas

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// One client, one query at a time: the chosen HS2 crashes (its port
// refuses, its znode stays) and the next query is served by the other HS2
// without the client seeing an error; all replicas move with one epoch bump.
func TestSingleClientFailover(t *testing.T) {
	e := start(t, setup{sims: 2})
	route0, _ := e.agreed(10*time.Second, e.clients, nil)
	c := e.clients[1] // a follower: its route comes through etcd
	mustQuery(t, c, "SELECT * FROM default.employees")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.sims[0].Fault(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	// The first query after the crash: the engine retries on the new route.
	r := query(t, c, 15*time.Second, "SELECT * FROM default.employees")
	if r.Err != nil {
		t.Fatalf("first query after the crash: %v (after %v)", r.Err, r.Finished.Sub(r.Started))
	}
	if r.Last.GetServer() != e.sims[1].Addr || r.Last.GetEpoch() != route0.Epoch+1 {
		t.Errorf("served by %s at epoch %d, want %s at %d", r.Last.GetServer(), r.Last.GetEpoch(), e.sims[1].Addr, route0.Epoch+1)
	}
	t.Logf("first query after the crash took %v", r.Finished.Sub(r.Started))
	e.agreed(10*time.Second, e.clients, func(r harness.Route, _ string) error {
		if r.Server != e.sims[1].Addr || r.Epoch != route0.Epoch+1 {
			return fmt.Errorf("route %+v, want %s at epoch %d", r, e.sims[1].Addr, route0.Epoch+1)
		}
		return nil
	})
	for i, c := range e.clients {
		r := mustQuery(t, c, "SELECT * FROM default.employees")
		if r.Server() != e.sims[1].Addr {
			t.Errorf("%s served from %s after the failover", e.ids[i], r.Server())
		}
	}
}

// Every HS2 down: queries on every replica fail at once with UNAVAILABLE
// and NO_HS2_AVAILABLE naming the connector; an HS2 that registers later is
// picked up without restarting anything.
func TestNoHS2AvailableThenNewRegistration(t *testing.T) {
	e := start(t, setup{sims: 2})
	route0, _ := e.agreed(10*time.Second, e.clients, nil)
	pids := make([]int, len(e.fleet.Replicas))
	for i, h := range e.fleet.Replicas {
		pids[i] = h.Pid()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range e.sims {
		if err := s.Fault(ctx, "crash"); err != nil {
			t.Fatal(err)
		}
	}
	none, _ := e.agreed(15*time.Second, e.clients, func(r harness.Route, _ string) error {
		if r.Server != "" {
			return fmt.Errorf("still routed to %s", r.Server)
		}
		return nil
	})
	if none.Epoch <= route0.Epoch {
		t.Errorf("'no server' published at epoch %d, not after %d", none.Epoch, route0.Epoch)
	}
	for i, c := range e.clients {
		r := query(t, c, 10*time.Second, "SELECT 1")
		took := r.Finished.Sub(r.Started)
		code, info := harness.ErrorInfo(r.Err)
		if code != codes.Unavailable || info.GetReason() != "NO_HS2_AVAILABLE" {
			t.Errorf("%s: %v (reason %q), want UNAVAILABLE NO_HS2_AVAILABLE", e.ids[i], r.Err, info.GetReason())
			continue
		}
		if info.GetMetadata()["connector"] != connector || !strings.Contains(r.Err.Error(), strconv.Quote(connector)) {
			t.Errorf("%s: error does not name connector %q: %v %v", e.ids[i], connector, r.Err, info.GetMetadata())
		}
		if took > time.Second {
			t.Errorf("%s took %v to fail; with no HS2 it must fail fast", e.ids[i], took)
		}
	}

	sim, err := e.fleet.StartSim(ctx, "sim-new")
	if err != nil {
		t.Fatal(err)
	}
	e.agreed(15*time.Second, e.clients, func(r harness.Route, _ string) error {
		if r.Server != sim.Addr {
			return fmt.Errorf("route %+v, want the new HS2 %s", r, sim.Addr)
		}
		return nil
	})
	for i, c := range e.clients {
		r := mustQuery(t, c, "SELECT 1")
		if r.Server() != sim.Addr {
			t.Errorf("%s served from %s, want %s", e.ids[i], r.Server(), sim.Addr)
		}
	}
	if err := e.fleet.Alive(); err != nil {
		t.Fatal(err)
	}
	for i, h := range e.fleet.Replicas {
		if h.Pid() != pids[i] {
			t.Errorf("%s was restarted", h.Name)
		}
	}
}

// outcome is how one stream ended.
type outcome struct {
	replica string
	wave    int
	res     harness.Result
}

// Thirty streams on three replicas read a large table while the HS2 they
// read from crashes. Nothing hangs; each stream either completes with every
// row or ends ABORTED (HS2_LOST) or UNAVAILABLE with details; the replicas
// converge on the other HS2 with exactly one epoch bump, and no replica ever
// sees the epoch go back.
func TestConcurrentStreamsFailover(t *testing.T) {
	const (
		table      = "synth.rows_200000"
		rows       = 200000
		perReplica = 10
		late       = 2 // per replica, started right after the crash
	)
	e := start(t, setup{sims: 2})
	route0, _ := e.agreed(10*time.Second, e.clients, nil)
	oldSrv, newSrv := e.sims[0].Addr, e.sims[1].Addr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Slow the old HS2 down so that every stream is mid-result at the crash.
	if err := e.sims[0].Pace(ctx, 5000, 0); err != nil {
		t.Fatal(err)
	}
	var watchers []*watcher
	for i, c := range e.clients {
		watchers = append(watchers, watch(t, e.ids[i], c))
	}

	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
		started  = make(chan struct{}, len(e.clients)*perReplica)
	)
	streamCtx, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	run := func(i, wave int, signal bool) {
		defer wg.Done()
		once := sync.Once{}
		res := e.clients[i].Execute(streamCtx, &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM " + table, FetchSize: 1000},
			func(b *hiveqv1.RowBatch) error {
				if signal {
					once.Do(func() { started <- struct{}{} })
				}
				return checkSynthIDs(b)
			}, nil)
		if signal {
			once.Do(func() { started <- struct{}{} }) // ended before a batch: counted, judged below
		}
		mu.Lock()
		outcomes = append(outcomes, outcome{replica: e.ids[i], wave: wave, res: res})
		mu.Unlock()
	}
	for i := range e.clients {
		for range perReplica {
			wg.Add(1)
			go run(i, 1, true)
		}
	}
	for range len(e.clients) * perReplica {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("streams did not start")
		}
	}
	if err := e.sims[0].Fault(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	for i := range e.clients {
		for range late {
			wg.Add(1)
			go run(i, 2, false)
		}
	}

	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-allDone:
		t.Logf("all streams ended %v after the crash", time.Since(crashed))
	case <-time.After(90 * time.Second):
		e.dumpStacks()
		stopStreams()
		<-allDone
		t.Fatal("streams still open 90s after the crash: deadlock")
	}

	hist := map[string]int{}
	for _, o := range outcomes {
		r := o.res
		code, info := harness.ErrorInfo(r.Err)
		key := fmt.Sprintf("wave%d:%s", o.wave, code)
		if info != nil {
			key += "/" + info.GetReason()
			if _, ok := info.GetMetadata()["new_server"]; ok {
				key += "+new_server"
			}
		}
		hist[key]++
		switch code {
		case codes.OK:
			if r.Rows != rows || r.Last.GetState() != hiveqv1.QueryState_QUERY_STATE_FINISHED || r.Last.GetRows() != rows {
				t.Errorf("%s: complete stream with %d rows (last status %v, %d rows), want %d", o.replica, r.Rows, r.Last.GetState(), r.Last.GetRows(), rows)
			}
		case codes.Aborted:
			md := info.GetMetadata()
			if info.GetReason() != "HS2_LOST" || md["server"] != oldSrv || md["epoch"] != strconv.FormatUint(route0.Epoch, 10) || md["connector"] != connector {
				t.Errorf("%s: ABORTED with %v %v, want HS2_LOST naming %s at epoch %d", o.replica, info.GetReason(), md, oldSrv, route0.Epoch)
			}
			if ns, ok := md["new_server"]; ok && (ns != newSrv || md["new_epoch"] != strconv.FormatUint(route0.Epoch+1, 10)) {
				t.Errorf("%s: ABORTED names new server %s epoch %s, want %s at %d", o.replica, ns, md["new_epoch"], newSrv, route0.Epoch+1)
			}
			if o.wave == 1 && r.Rows == 0 {
				t.Errorf("%s: aborted stream delivered no rows before the crash", o.replica)
			}
		case codes.Unavailable:
			if info.GetReason() != "NO_HS2_AVAILABLE" || info.GetMetadata()["connector"] != connector {
				t.Errorf("%s: UNAVAILABLE with %v %v, want NO_HS2_AVAILABLE naming the connector", o.replica, info.GetReason(), info.GetMetadata())
			}
		default:
			t.Errorf("%s (wave %d): stream ended with %v", o.replica, o.wave, r.Err)
		}
		if code == codes.OK && r.Server() != oldSrv && r.Server() != newSrv {
			t.Errorf("%s: served from unknown %s", o.replica, r.Server())
		}
	}
	t.Logf("outcomes: %s", counts(hist))

	e.agreed(15*time.Second, e.clients, func(r harness.Route, _ string) error {
		if r.Server != newSrv || r.Epoch != route0.Epoch+1 {
			return fmt.Errorf("route %+v, want %s at epoch %d", r, newSrv, route0.Epoch+1)
		}
		return nil
	})
	for _, w := range watchers {
		w.stop()
		epochs := epochsOf(t, w)
		if len(epochs) == 0 || epochs[0] != route0.Epoch || epochs[len(epochs)-1] != route0.Epoch+1 || len(epochs) != 2 {
			t.Errorf("replica %s saw epochs %v, want [%d %d]: one bump for one crash", w.id, epochs, route0.Epoch, route0.Epoch+1)
		}
	}
	// Every stream released its HS2 operation and session on the new HS2.
	testenv.Eventually(t, 15*time.Second, func() error {
		st, err := e.sims[1].Stats(ctx)
		if err != nil {
			return err
		}
		if st.OpenOperations != 0 {
			return fmt.Errorf("%d operations still open on %s", st.OpenOperations, newSrv)
		}
		return nil
	})
	if err := e.fleet.Alive(); err != nil {
		t.Fatal(err)
	}
}

// Reads that have sent nothing survive a crash of their HS2: on a follower
// replica, all five run again on the new server, each with a second
// SUBMITTED naming it, and the final status counts the re-run.
func TestCrashUnderReadsOnFollowerReruns(t *testing.T) {
	e := start(t, setup{sims: 2})
	route0, leader := e.agreed(20*time.Second, e.clients, nil)
	follower := e.others(leader)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const n = 5
	results := make(chan harness.Result, n)
	for range n {
		go func() {
			results <- follower.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM default.employees",
				Config: map[string]string{"hs2sim.exec_delay_ms": "5000"}}, nil, nil)
		}()
	}
	// HS2 accepted all five; none sends a schema or row before 5s.
	testenv.Eventually(t, 20*time.Second, func() error {
		st, err := e.sims[0].Stats(ctx)
		if err != nil {
			return err
		}
		if st.OpenOperations < n {
			return fmt.Errorf("%d of %d reads running on %s", st.OpenOperations, n, e.sims[0].Addr)
		}
		return nil
	})
	if err := e.sims[0].Fault(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	for range n {
		r := <-results
		if r.Err != nil {
			t.Fatalf("read ended with %v", r.Err)
		}
		if r.Last.GetReruns() != 1 || r.Last.GetServer() != e.sims[1].Addr || r.Last.GetEpoch() <= route0.Epoch || r.Rows != 6 {
			t.Fatalf("last status %v, %d rows", r.Last, r.Rows)
		}
	}
}
