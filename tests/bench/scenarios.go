package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

type scenario struct {
	name string
	run  func(context.Context, *bench) ([]metric, error)
}

var scenarios = []scenario{
	{"paced", paced},
	{"unpaced", unpaced},
	{"arrow", arrowFront},
	{"latency", latency},
	{"prefetch", prefetch},
	{"memory", memory},
	{"concurrency", concurrency},
	{"failover", failover},
}

func scenarioNames() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

// sizes are the run counts and result sizes of the scenarios.
type sizes struct {
	runs         int   // pairs of runs for the throughput scenarios
	longRuns     int   // runs of memory and concurrency
	pacedRows    int64 // 300k rows/s: 5 s per run
	unpacedRows  int64
	gohiveRows   int64
	prefetchRows int64
	latRounds    int
	latQueries   int // per client per round
	memRows      int64
	memReadRate  int64 // the slow reader's rows/s
	streams      int
	streamRows   int64
	failoverRuns int
}

func (b *bench) sizes() sizes {
	s := sizes{
		runs: 7, longRuns: 2,
		pacedRows: 1_500_000, unpacedRows: 3_000_000, gohiveRows: 2_000_000, prefetchRows: 2_000_000,
		latRounds: 7, latQueries: 300,
		memRows: 10_000_000, memReadRate: 500_000,
		streams: 500, streamRows: 10_000,
		failoverRuns: 5,
	}
	if b.opts.quick {
		s = sizes{
			runs: 3, longRuns: 1,
			pacedRows: 600_000, unpacedRows: 1_000_000, gohiveRows: 600_000, prefetchRows: 1_000_000,
			latRounds: 3, latQueries: 150,
			memRows: 3_000_000, memReadRate: 1_000_000,
			streams: 500, streamRows: 4_000,
			failoverRuns: 2,
		}
	}
	if b.opts.runs > 0 {
		s.runs = b.opts.runs
		s.latRounds = b.opts.runs
		s.longRuns = min(s.longRuns, b.opts.runs)
	}
	if b.opts.failoverRuns > 0 {
		s.failoverRuns = b.opts.failoverRuns
	}
	return s
}

func synth(rows int64) string { return fmt.Sprintf("SELECT * FROM synth.rows_%d", rows) }

// order interleaves clients: run i takes them forwards when i is even and
// backwards when odd (A B, B A, A B ...), so drift hits all alike.
func order[T any](i int, xs ...T) []T {
	out := make([]T, len(xs))
	for k := range xs {
		if i%2 == 0 {
			out[k] = xs[k]
		} else {
			out[k] = xs[len(xs)-1-k]
		}
	}
	return out
}

// sample is one streamed result.
type sample struct {
	rows   int64
	secs   float64
	rate   float64 // rows per second as the client saw them
	client float64 // CPU seconds of the client process
	hiveqd float64 // CPU seconds of hiveqd (idle for direct clients)
	sim    float64 // CPU seconds of the simulator
}

// perM is CPU seconds per million rows.
func perM(cpu float64, rows int64) float64 { return cpu / float64(rows) * 1e6 }

// stream runs stmt through a client and measures it.
func (b *bench) stream(ctx context.Context, mode, stmt string, fetch int, want int64) (sample, error) {
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	w, err := b.worker(mode)
	if err != nil {
		return sample{}, err
	}
	addr := b.sim.Addr
	switch mode {
	case modeGRPC, modeGRPCOld:
		addr = b.hq.Addr
	case modeADBC:
		addr = b.hq.FlightSQLAddr
	}
	m := startCPU(b.hq.Pid(), b.sim.Pid())
	resp, err := w.do(workerRequest{Op: "stream", Mode: mode, Addr: addr, Stmt: stmt, FetchSize: fetch})
	cpu := m.stop()
	if err != nil {
		return sample{}, err
	}
	if want > 0 && resp.Rows != want {
		return sample{}, fmt.Errorf("%s: %d rows, want %d", mode, resp.Rows, want)
	}
	s := sample{rows: resp.Rows, secs: resp.Seconds, rate: float64(resp.Rows) / resp.Seconds, client: resp.CPU, hiveqd: cpu[0], sim: cpu[1]}
	if b.opts.verbose {
		fmt.Fprintf(os.Stderr, "  %-7s fetch %5d: %9.0f rows/s  cpu client %.2fs hiveqd %.2fs sim %.2fs\n", mode, fetch, s.rate, s.client, s.hiveqd, s.sim)
	}
	return s, nil
}

// setup starts (or reuses) the simulator and the shared replica and sets
// the simulator's pacing.
func (b *bench) setup(ctx context.Context, rate int64, delay time.Duration) error {
	sim, err := b.simulator(ctx)
	if err != nil {
		return err
	}
	if _, err := b.replica(ctx); err != nil {
		return err
	}
	return sim.Pace(ctx, rate, delay)
}

// warm runs a small result through each client (sessions, connections,
// pools) before anything is measured.
func (b *bench) warm(ctx context.Context, modes ...string) error {
	for _, m := range modes {
		if _, err := b.stream(ctx, m, synth(20_000), 10_000, 20_000); err != nil {
			return err
		}
	}
	return nil
}

// Target 1: the simulator paces rows at 300k/s; through hiveqd they must
// arrive at ≥ 95% of the rate a direct client sees.
func paced(ctx context.Context, b *bench) ([]metric, error) {
	z := b.sizes()
	if err := b.setup(ctx, 300_000, 0); err != nil {
		return nil, err
	}
	defer b.sim.Pace(context.WithoutCancel(ctx), 0, 0)
	var s series
	d := s.add("direct HS2 client", "rows/s")
	h := s.add("hiveqd + gRPC client", "rows/s")
	r := s.target("hiveqd ÷ direct", "ratio", ">=", 0.95)
	hc := s.add("hiveqd CPU per 1M rows", "s")
	if err := b.warm(ctx, modeDirect, modeGRPC); err != nil {
		return nil, err
	}
	stmt := synth(z.pacedRows)
	for i := range z.runs {
		got := map[string]sample{}
		for _, mode := range order(i, modeDirect, modeGRPC) {
			smp, err := b.stream(ctx, mode, stmt, 10_000, z.pacedRows)
			if err != nil {
				return s.out(), err
			}
			got[mode] = smp
		}
		d.push(got[modeDirect].rate)
		h.push(got[modeGRPC].rate)
		r.push(got[modeGRPC].rate / got[modeDirect].rate)
		hc.push(perM(got[modeGRPC].hiveqd, got[modeGRPC].rows))
	}
	r.Note = fmt.Sprintf("simulator paced at 300000 rows/s, fetch size 10000, %d rows of 5 typed columns with NULLs per run", z.pacedRows)
	return s.out(), nil
}

// Targets 2 and 3 (issue 17's): unpaced throughput and CPU per row,
// against the direct client and gohive; and the gRPC client's CPU per row
// with the compact batch layout against the original one (both clients run
// side by side through the same replica).
func unpaced(ctx context.Context, b *bench) ([]metric, error) {
	z := b.sizes()
	if err := b.setup(ctx, 0, 0); err != nil {
		return nil, err
	}
	if err := b.warm(ctx, modeDirect, modeGRPC, modeGRPCOld, modeGohive, modeThrift); err != nil {
		return nil, err
	}
	var s series
	for _, fetch := range []int{10_000, 1_000} {
		sfx := fmt.Sprintf(", fetch %d", fetch)
		d := s.add("direct HS2 client"+sfx, "rows/s")
		h := s.add("hiveqd + gRPC client"+sfx, "rows/s")
		r := s.add("hiveqd ÷ direct"+sfx, "ratio")
		var g, rg, ho, hoc, gco, rgc, tc, rtc *metric
		cpuGoal := 1.6
		if fetch == 10_000 {
			r.Op, r.Goal = ">=", 0.85
			g = s.add("gohive (direct, row by row)"+sfx, "rows/s")
			rg = s.target("hiveqd + gRPC ÷ gohive"+sfx, "ratio", ">", 1)
			ho = s.add("hiveqd + gRPC client, values layout"+sfx, "rows/s")
			cpuGoal = 1.0
		}
		dc := s.add("CPU per 1M rows: direct client"+sfx, "s")
		hc := s.add("CPU per 1M rows: hiveqd"+sfx, "s")
		gc := s.add("CPU per 1M rows: gRPC client"+sfx, "s")
		rc := s.target("CPU per row: hiveqd ÷ direct client"+sfx, "ratio", "<=", cpuGoal)
		if fetch == 10_000 {
			hoc = s.add("CPU per 1M rows: hiveqd, values layout"+sfx, "s")
			gco = s.add("CPU per 1M rows: gRPC client, values layout"+sfx, "s")
			rgc = s.target("gRPC client CPU per row, compact ÷ values layout"+sfx, "ratio", "<=", 0.6)
			rgc.Note = "the same generated Go client decoding every message, asking for batch_layout COMPACT or VALUES"
			tc = s.add("CPU per 1M rows: direct Thrift client, generated code"+sfx, "s")
			rtc = s.add("CPU per row: hiveqd ÷ generated-code Thrift client"+sfx, "ratio")
			rtc.Note = "the direct client above shares hiveqd's hs2 decoder; this one is Apache Thrift's generated TCLIService code (tests/bench/thrift.go)"
		}
		sc := s.add("CPU per 1M rows: simulator"+sfx, "s")
		var cap *metric
		if fetch == 10_000 {
			cap = s.target("simulator capacity ÷ hiveqd rows/s"+sfx, "ratio", ">=", 3)
			cap.Note = "simulator capacity is rows per CPU-second of hs2sim while it served the direct client (1e6 ÷ its CPU s per 1M rows)"
			r.Note = fmt.Sprintf("%d rows per run; simulator, hiveqd and client share the 2 cores", z.unpacedRows)
		}
		stmt := synth(z.unpacedRows)
		modes := []string{modeDirect, modeGRPC}
		if g != nil {
			modes = append(modes, modeGohive, modeGRPCOld, modeThrift)
		}
		for i := range z.runs {
			got := map[string]sample{}
			for _, mode := range order(i, modes...) {
				st, want := stmt, z.unpacedRows
				if mode == modeGohive {
					st, want = synth(z.gohiveRows), z.gohiveRows
				}
				smp, err := b.stream(ctx, mode, st, fetch, want)
				if err != nil {
					return s.out(), err
				}
				got[mode] = smp
			}
			dd, hh := got[modeDirect], got[modeGRPC]
			d.push(dd.rate)
			h.push(hh.rate)
			r.push(hh.rate / dd.rate)
			dc.push(perM(dd.client, dd.rows))
			hc.push(perM(hh.hiveqd, hh.rows))
			gc.push(perM(hh.client, hh.rows))
			rc.push(perM(hh.hiveqd, hh.rows) / perM(dd.client, dd.rows))
			sc.push(perM(dd.sim, dd.rows))
			if g != nil {
				gg, oo := got[modeGohive], got[modeGRPCOld]
				g.push(gg.rate)
				rg.push(hh.rate / gg.rate)
				ho.push(oo.rate)
				hoc.push(perM(oo.hiveqd, oo.rows))
				gco.push(perM(oo.client, oo.rows))
				rgc.push(perM(hh.client, hh.rows) / perM(oo.client, oo.rows))
				tt := got[modeThrift]
				tc.push(perM(tt.client, tt.rows))
				rtc.push(perM(hh.hiveqd, hh.rows) / perM(tt.client, tt.rows))
			}
			if cap != nil {
				cap.push(1e6 / perM(dd.sim, dd.rows) / hh.rate)
			}
		}
	}
	return s.out(), nil
}

// Target 4: small-query latency, and pooled sessions against a client
// that opens a session per query.
func latency(ctx context.Context, b *bench) ([]metric, error) {
	z := b.sizes()
	if err := b.setup(ctx, 0, 0); err != nil {
		return nil, err
	}
	const stmt = "SELECT 1"
	addr := map[string]string{modeDirect: b.sim.Addr, modeDirectNew: b.sim.Addr, modeGRPC: b.hq.Addr}
	var hiveqdCPU, clientCPU float64 // of the last run
	lat := func(mode string, n int) ([]float64, error) {
		w, err := b.worker(mode)
		if err != nil {
			return nil, err
		}
		m := startCPU(b.hq.Pid())
		resp, err := w.do(workerRequest{Op: "latency", Mode: mode, Addr: addr[mode], Stmt: stmt, FetchSize: 10_000, N: n})
		hiveqdCPU, clientCPU = m.stop()[0], resp.CPU
		return resp.Latencies, err
	}
	// The modes share the direct worker process but not its sessions:
	// direct-new opens its own each time.
	for _, m := range []string{modeDirect, modeGRPC, modeDirectNew} {
		if _, err := lat(m, 50); err != nil {
			return nil, err
		}
	}
	var s series
	dp50 := s.add("p50 direct HS2 client (session reused)", "ms")
	hp50 := s.add("p50 hiveqd + gRPC client", "ms")
	add50 := s.target("added p50", "ms", "<=", 0.3) // issue 17
	dp99 := s.add("p99 direct HS2 client", "ms")
	hp99 := s.add("p99 hiveqd + gRPC client", "ms")
	r99 := s.target("p99 hiveqd ÷ p99 direct", "ratio", "<=", 3)
	nmean := s.add("mean direct client, session per query", "ms")
	hmean := s.add("mean hiveqd + gRPC client (pooled)", "ms")
	rq := s.target("queries/s hiveqd ÷ direct with session per query", "ratio", ">", 1)
	dq := s.add("direct client CPU per query (session reused)", "ms")
	hq := s.target("hiveqd CPU per query", "ms", "<=", 0.4) // issue 17
	gq := s.add("gRPC client CPU per query", "ms")
	for i := range z.latRounds {
		got := map[string][]float64{}
		for _, m := range order(i, modeDirect, modeGRPC, modeDirectNew) {
			v, err := lat(m, z.latQueries)
			if err != nil {
				return s.out(), err
			}
			got[m] = v
			switch m {
			case modeGRPC:
				hq.push(hiveqdCPU / float64(len(v)) * 1e3)
				gq.push(clientCPU / float64(len(v)) * 1e3)
			case modeDirect:
				dq.push(clientCPU / float64(len(v)) * 1e3)
			}
		}
		d, h, n := got[modeDirect], got[modeGRPC], got[modeDirectNew]
		dp50.push(percentile(d, 50) * 1e3)
		hp50.push(percentile(h, 50) * 1e3)
		add50.push((percentile(h, 50) - percentile(d, 50)) * 1e3)
		dp99.push(percentile(d, 99) * 1e3)
		hp99.push(percentile(h, 99) * 1e3)
		r99.push(percentile(h, 99) / percentile(d, 99))
		nmean.push(mean(n) * 1e3)
		hmean.push(mean(h) * 1e3)
		rq.push(mean(n) / mean(h))
	}
	add50.Note = fmt.Sprintf("`SELECT 1`, %d sequential queries per client per round, clients interleaved; a query is Execute to the end of its result (direct: ExecuteStatement, status, metadata, fetches, CloseOperation)", z.latQueries)
	return s.out(), nil
}

// Target 5: with 1 ms per FetchResults, prefetching keeps small fetches
// nearly as fast as large ones.
func prefetch(ctx context.Context, b *bench) ([]metric, error) {
	z := b.sizes()
	if err := b.setup(ctx, 0, time.Millisecond); err != nil {
		return nil, err
	}
	defer b.sim.Pace(context.WithoutCancel(ctx), 0, 0)
	if err := b.warm(ctx, modeDirect, modeGRPC); err != nil {
		return nil, err
	}
	var s series
	h1 := s.add("hiveqd + gRPC client, fetch 1000", "rows/s")
	h10 := s.add("hiveqd + gRPC client, fetch 10000", "rows/s")
	hr := s.target("hiveqd: fetch 1000 ÷ fetch 10000", "ratio", ">=", 0.8)
	// The simulator sleeps inside each FetchResults of an operation, one
	// after another: no client gets more than 1000 rows per ms at fetch
	// size 1000, which caps the target ratio below 0.8 whenever fetch
	// size 10000 runs faster than 1.25M rows/s.
	bound := s.add("upper bound of that ratio: 1M rows/s (1000 rows per 1 ms) ÷ hiveqd fetch 10000", "ratio")
	d1 := s.add("direct HS2 client, fetch 1000", "rows/s")
	d10 := s.add("direct HS2 client, fetch 10000", "rows/s")
	dr := s.add("direct: fetch 1000 ÷ fetch 10000", "ratio")
	hd := s.add("fetch 1000: hiveqd ÷ direct", "ratio")
	type run struct {
		mode  string
		fetch int
	}
	stmt := synth(z.prefetchRows)
	for i := range z.runs {
		got := map[run]sample{}
		for _, r := range order(i, run{modeGRPC, 1000}, run{modeGRPC, 10_000}, run{modeDirect, 1000}, run{modeDirect, 10_000}) {
			smp, err := b.stream(ctx, r.mode, stmt, r.fetch, z.prefetchRows)
			if err != nil {
				return s.out(), err
			}
			got[r] = smp
		}
		a, c := got[run{modeGRPC, 1000}].rate, got[run{modeGRPC, 10_000}].rate
		h1.push(a)
		h10.push(c)
		hr.push(a / c)
		a, c = got[run{modeDirect, 1000}].rate, got[run{modeDirect, 10_000}].rate
		d1.push(a)
		d10.push(c)
		dr.push(a / c)
		hd.push(got[run{modeGRPC, 1000}].rate / a)
		bound.push(1e6 / got[run{modeGRPC, 10_000}].rate)
	}
	hr.Note = fmt.Sprintf("simulator delays every FetchResults by 1 ms; %d rows per run", z.prefetchRows)
	return s.out(), nil
}

// Target 6: hiveqd's RSS while a slow reader drains a large result.
func memory(ctx context.Context, b *bench) ([]metric, error) {
	z := b.sizes()
	if err := b.setup(ctx, 0, 0); err != nil {
		return nil, err
	}
	var s series
	idle := s.add("hiveqd RSS idle", "MiB")
	peak := s.add("hiveqd RSS peak while streaming", "MiB")
	grow := s.target("hiveqd RSS peak − idle", "MiB", "<=", 64)
	rate := s.add("slow reader", "rows/s")
	w, err := b.worker("grpc-slow")
	if err != nil {
		return nil, err
	}
	for i := range z.longRuns {
		// A fresh replica each run: idle is its RSS after one small query.
		h, err := b.startHiveqd(ctx, fmt.Sprintf("hiveqd-mem%d", i))
		if err != nil {
			return s.out(), err
		}
		if _, err := w.do(workerRequest{Op: "stream", Mode: modeGRPC, Addr: h.Addr, Stmt: "SELECT 1"}); err != nil {
			b.stopExtra(h)
			return s.out(), err
		}
		rss0, err := procRSS(h.Pid())
		if err != nil {
			b.stopExtra(h)
			return s.out(), err
		}
		var mu sync.Mutex
		top := rss0
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				if v, err := procRSS(h.Pid()); err == nil {
					mu.Lock()
					top = max(top, v)
					mu.Unlock()
				}
			}
		}()
		resp, err := w.do(workerRequest{Op: "stream", Mode: modeGRPC, Addr: h.Addr, Stmt: synth(z.memRows), FetchSize: 10_000, ReadRowsPerSecond: z.memReadRate})
		close(stop)
		wg.Wait()
		b.stopExtra(h)
		if err != nil {
			return s.out(), err
		}
		if resp.Rows != z.memRows {
			return s.out(), fmt.Errorf("%d rows, want %d", resp.Rows, z.memRows)
		}
		const mib = 1 << 20
		idle.push(float64(rss0) / mib)
		peak.push(float64(top) / mib)
		grow.push(float64(top-rss0) / mib)
		rate.push(float64(resp.Rows) / resp.Seconds)
	}
	grow.Note = fmt.Sprintf("%d rows (fetch size 10000) to a gRPC client reading at most %d rows/s; RSS sampled every 10 ms; a fresh replica per run, idle measured after one SELECT 1", z.memRows, z.memReadRate)
	return s.out(), nil
}

// concurrencyLimits raise the per-replica limits that would refuse or
// queue 500 streams of one (anonymous) user.
const concurrencyLimits = `limits:
  max_concurrent_queries: 1000
  max_queries_per_user: 1000
connectors:
  - name: hive
    pool:
      max_sessions: 1000
      max_idle_per_key: 1000
`

// concurrencyProbe also gives the health probe more time: with the default
// (500 ms timeout, 2 failures) the simulator, flooded by 500 sessions on
// the same 2 cores, misses probes and the replica drops its only HS2.
const concurrencyProbe = `    probe:
      timeout: 3s
      failures: 3
`

// Target 7: 500 concurrent streams on one replica.
func concurrency(ctx context.Context, b *bench) ([]metric, error) {
	z := b.sizes()
	if err := b.setup(ctx, 0, 0); err != nil {
		return nil, err
	}
	w, err := b.worker("grpc-conc")
	if err != nil {
		return nil, err
	}
	var s series
	errs := s.target("streams failed", "count", "<=", 0)
	agg := s.add("aggregate", "rows/s")
	p50 := s.add("time to first row p50", "ms")
	p99 := s.add("time to first row p99", "ms")
	hc := s.add("hiveqd CPU per 1M rows", "s")
	peak := s.add("hiveqd RSS after the streams", "MiB")
	defaults := s.add("streams failed, default probe settings (cold pool)", "count")

	// One round with only the limits raised, to report what the default
	// probe settings do under this load.
	limits := filepath.Join(b.dir, "concurrency-limits.yaml")
	relaxed := filepath.Join(b.dir, "concurrency.yaml")
	if err := os.WriteFile(limits, []byte(concurrencyLimits), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(relaxed, []byte(concurrencyLimits+concurrencyProbe), 0o644); err != nil {
		return nil, err
	}
	req := workerRequest{Op: "concurrent", Mode: modeGRPC, Stmt: synth(z.streamRows), FetchSize: 10_000, N: z.streams, Conns: 8}
	h, err := b.startHiveqd(ctx, "hiveqd-conc-defaults", "--config", limits)
	if err != nil {
		return nil, err
	}
	req.Addr = h.Addr
	resp, err := w.do(req)
	b.stopExtra(h)
	if err != nil {
		return s.out(), err
	}
	defaults.push(float64(resp.Errors))
	if resp.Errors > 0 {
		defaults.Note = "first error: " + resp.FirstErr
	}

	h, err = b.startHiveqd(ctx, "hiveqd-conc", "--config", relaxed)
	if err != nil {
		return s.out(), err
	}
	defer b.stopExtra(h)
	req.Addr = h.Addr
	cold := true
	for i := 0; i <= z.longRuns; i++ {
		m := startCPU(h.Pid())
		resp, err := w.do(req)
		cpu := m.stop()
		if err != nil {
			return s.out(), err
		}
		if cold {
			// The first round opens the pool's sessions; it is reported in
			// the note only.
			cold = false
			errs.Note = fmt.Sprintf("%d streams of %d rows each over 8 gRPC connections from one client process (goroutines), pool warmed by one unrecorded round (that round: %d failed, p99 time to first row %.0f ms); settings changed: max_concurrent_queries, max_queries_per_user, pool max_sessions and max_idle_per_key 1000, probe timeout 3s and failures 3",
				z.streams, z.streamRows, resp.Errors, percentile(resp.TTFR, 99)*1e3)
			if resp.Errors > 0 {
				errs.Note += "; first error: " + resp.FirstErr
			}
			continue
		}
		errs.push(float64(resp.Errors))
		if resp.Errors > 0 && errs.Note != "" {
			errs.Note += "; error: " + resp.FirstErr
		}
		agg.push(float64(resp.Rows) / resp.Seconds)
		p50.push(percentile(resp.TTFR, 50) * 1e3)
		p99.push(percentile(resp.TTFR, 99) * 1e3)
		hc.push(perM(cpu[0], resp.Rows))
		if v, err := procRSS(h.Pid()); err == nil {
			peak.push(float64(v) / (1 << 20))
		}
	}
	return s.out(), nil
}
