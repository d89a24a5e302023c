package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// rerunReads is how many reads run at once in the re-run and pause
// measurements, and readDelay how long HS2 takes over each.
const (
	rerunReads = 20
	readDelay  = 8 * time.Second
)

// runningReads starts rerunReads reads spread over the clients and returns
// once HS2 accepted all of them (each reported RUNNING; none has sent a
// schema or row); their results arrive on the channel.
func runningReads(ctx context.Context, clients []*harness.Client) (<-chan harness.Result, error) {
	var running sync.WaitGroup
	running.Add(rerunReads)
	out := make(chan harness.Result, rerunReads)
	for i := range rerunReads {
		c := clients[i%len(clients)]
		go func() {
			var once sync.Once
			defer once.Do(running.Done)
			out <- c.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM default.employees",
				Config: map[string]string{"hs2sim.exec_delay_ms": fmt.Sprint(readDelay.Milliseconds())}}, nil,
				func(ev *hiveqv1.ExecuteResponse) {
					if st := ev.GetStatus(); st != nil && st.GetState() == hiveqv1.QueryState_QUERY_STATE_RUNNING {
						once.Do(running.Done)
					}
				})
		}()
	}
	done := make(chan struct{})
	go func() { running.Wait(); close(done) }()
	select {
	case <-done:
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// rerunKill SIGKILLs the serving HS2 under rerunReads reads that have sent
// nothing: the share that complete (by re-running on the other HS2), and
// how much later than the re-run's own work each finished.
func (b *bench) rerunKill(ctx context.Context, f *harness.Fleet, clients []*harness.Client) error {
	route, _, err := agreed(ctx, clients, len(clients))
	if err != nil {
		return err
	}
	victim := f.SimByAddr(route.Server)
	if victim == nil {
		return fmt.Errorf("routed to %s, not one of ours", route.Server)
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	results, err := runningReads(qctx, clients)
	if err != nil {
		return err
	}
	killed := time.Now()
	if err := victim.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	ok := 0
	var added []float64
	for range rerunReads {
		r := <-results
		if r.Err == nil && r.Last.GetReruns() >= 1 {
			ok++
			added = append(added, ms(r.Finished.Sub(killed)-readDelay))
		}
	}
	<-victim.Done()
	b.add("rerun_kill_completed", fmt.Sprintf("HS2 SIGKILL under %d reads that sent nothing: completed by re-run", rerunReads), "count", float64(ok))
	if len(added) > 0 {
		slices.Sort(added)
		b.add("rerun_added_median", "re-run: finish − kill − the read's own 8 s, median", "ms", added[len(added)/2])
		b.add("rerun_added_p95", "re-run: finish − kill − the read's own 8 s, p95", "ms", added[min(len(added)-1, len(added)*95/100)])
	}
	b.logf("rerun kill %s: %d/%d completed", victim.Addr, ok, rerunReads)
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	return victim.Restart(rctx)
}

// gcPause stops the serving HS2 answering for 5 s under rerunReads running
// reads: how many are lost (none should be).
func (b *bench) gcPause(ctx context.Context, f *harness.Fleet, clients []*harness.Client) error {
	route, _, err := agreed(ctx, clients, len(clients))
	if err != nil {
		return err
	}
	victim := f.SimByAddr(route.Server)
	if victim == nil {
		return fmt.Errorf("routed to %s, not one of ours", route.Server)
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	results, err := runningReads(qctx, clients)
	if err != nil {
		return err
	}
	if err := victim.Fault(ctx, "pause", "for", "5s"); err != nil {
		return err
	}
	lost := 0
	for range rerunReads {
		if r := <-results; r.Err != nil {
			lost++
			b.logf("gc pause: read lost: %v", r.Err)
		}
	}
	b.add("gc_pause_lost", fmt.Sprintf("5 s GC pause of the serving HS2 under %d reads: reads lost", rerunReads), "count", float64(lost))
	return nil
}
