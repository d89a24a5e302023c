// Command failover measures how fast hiveqd moves off a failed HiveServer2
// and how fast its replicas replace a failed leader, with every party a
// real process on this machine:
//
//	go run ./tests/failover                  # 5 runs of each (about 2-3 minutes)
//	go run ./tests/failover -runs 3 -json failover.json
//
// It builds hiveqd and hs2sim without the race detector, starts ZooKeeper,
// etcd, two simulators registered in ZooKeeper and three `hiveqd serve
// --coordination etcd` replicas with hiveqd's default probe settings, and
// then, run after run, measures:
//
//   - hs2_kill_first / hs2_kill_all: the HS2 serving the replicas is killed
//     (SIGKILL of the simulator process: its port refuses at once, its znode
//     stays until its ZooKeeper session expires) while every replica is
//     polled with SELECT 1 in a tight loop; the time until the first / the
//     last replica served a query from the other HS2 (the server field of the
//     query's first status names it), and hs2_kill_spread between the two;
//     hs2_kill_failed_queries counts the polls that failed meanwhile;
//   - leader_kill: the leader replica gets SIGKILL; the time until every
//     other replica's GetTopology names a new leader (bounded by the lease
//     TTL: no one can tell a dead leader from a slow one sooner);
//   - leader_term: the same with SIGTERM (the leader resigns on its way out);
//   - standalone_hs2_kill: one `hiveqd serve --coordination standalone` with
//     its own two simulators: the time from the HS2's SIGKILL to the first
//     query served by the other HS2;
//   - lone_hung_*: three replicas and one simulator that hangs (accepts,
//     never answers): the time until every replica's gRPC health is
//     NOT_SERVING, until a new query ends UNAVAILABLE, and, once it answers
//     again, until every replica is SERVING (lonehung.go).
//
// Killed processes are restarted (same ports) between runs. It prints a
// table of median, min and max per metric and, with -json, writes
//
//	{"runs": N, "lease_ttl_ms": ..., "metrics": [{"name": ..., "unit": "ms"|"count",
//	  "samples": [...], "median": ..., "min": ..., "max": ...}, ...]}
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

const connector = "hive"

type options struct {
	runs     int
	jsonPath string
	leaseTTL time.Duration
	keep     bool
	verbose  bool
	logLevel string
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 5, "runs of each measurement")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results to this JSON file")
	flag.DurationVar(&o.leaseTTL, "lease-ttl", 3*time.Second, "the replicas' etcd lease TTL (whole seconds, at least 2s)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (binaries, configs, process logs)")
	flag.BoolVar(&o.verbose, "v", false, "log each run's numbers")
	flag.StringVar(&o.logLevel, "log-level", "warn", "the replicas' log level (info or debug, with -keep, shows what a slow run spent its time on)")
	flag.Parse()
	if o.runs < 1 {
		fmt.Fprintln(os.Stderr, "failover: -runs must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

// metric is one measured quantity over the runs.
type metric struct {
	Name    string    `json:"name"`
	Title   string    `json:"title"`
	Unit    string    `json:"unit"`
	Samples []float64 `json:"samples"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
}

type report struct {
	Runs       int       `json:"runs"`
	LeaseTTLMs float64   `json:"lease_ttl_ms"`
	Probe      string    `json:"probe"`
	Metrics    []*metric `json:"metrics"`
	Started    time.Time `json:"started"`
	Took       string    `json:"took"`
}

type bench struct {
	o       options
	dir     string
	bins    map[string]string
	log     io.Writer
	metrics []*metric
	byName  map[string]*metric
}

func (b *bench) add(name, title, unit string, v float64) {
	m := b.byName[name]
	if m == nil {
		m = &metric{Name: name, Title: title, Unit: unit}
		b.byName[name] = m
		b.metrics = append(b.metrics, m)
	}
	m.Samples = append(m.Samples, v)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (b *bench) logf(format string, args ...any) {
	if b.o.verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	began := time.Now()
	dir, err := os.MkdirTemp("", "hiveqd-failover-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			fmt.Fprintf(os.Stderr, "failover: work directory (logs) kept: %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	b := &bench{o: o, dir: dir, byName: map[string]*metric{}, log: out}
	fmt.Fprintln(os.Stderr, "failover: building hiveqd and hs2sim (no race detector)")
	if b.bins, err = harness.Build(ctx, filepath.Join(dir, "bin"), false, "hiveqd", "hs2sim"); err != nil {
		return err
	}
	for _, d := range []string{"zk", "etcd", "fleet", "standalone"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	zk, err := testenv.StartZooKeeperServer(ctx, testenv.ZooKeeperOptions{Dir: filepath.Join(dir, "zk")})
	if err != nil {
		return err
	}
	defer zk.Close()
	etcd, err := testenv.StartEtcdServer(ctx, filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer etcd.Close()

	if err := b.replicated(ctx, zk, etcd); err != nil {
		return err
	}
	if err := b.standalone(ctx, zk); err != nil {
		return err
	}
	if err := b.loneHung(ctx, zk, etcd); err != nil {
		return err
	}

	rep := report{Runs: o.runs, LeaseTTLMs: ms(o.leaseTTL), Probe: "hiveqd defaults: interval 200ms, timeout 500ms, 2 failures", Metrics: b.metrics, Started: began.UTC(), Took: time.Since(began).Round(time.Second).String()}
	for _, m := range b.metrics {
		s := slices.Clone(m.Samples)
		slices.Sort(s)
		m.Min, m.Max = s[0], s[len(s)-1]
		if n := len(s); n%2 == 1 {
			m.Median = s[n/2]
		} else {
			m.Median = (s[n/2-1] + s[n/2]) / 2
		}
	}
	fmt.Fprintf(out, "hiveqd failover: %d runs, 3 replicas (etcd, lease TTL %v) + 1 standalone, 2 HS2 simulators each; probe %s; took %s\n\n",
		o.runs, o.leaseTTL, "interval 200ms timeout 500ms failures 2 (defaults)", rep.Took)
	width := len("metric")
	for _, m := range b.metrics {
		width = max(width, utf8.RuneCountInString(m.Title))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", width-utf8.RuneCountInString(s)) }
	fmt.Fprintf(out, "%s  %10s  %10s  %10s\n", pad("metric"), "median", "min", "max")
	for _, m := range b.metrics {
		f := func(v float64) string {
			if m.Unit == "count" {
				return fmt.Sprintf("%.0f", v)
			}
			return fmt.Sprintf("%.0f ms", v)
		}
		fmt.Fprintf(out, "%s  %10s  %10s  %10s\n", pad(m.Title), f(m.Median), f(m.Min), f(m.Max))
	}
	if o.jsonPath != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nwrote %s\n", o.jsonPath)
	}
	return nil
}

// replicated measures the etcd-coordinated replicas.
func (b *bench) replicated(ctx context.Context, zk *testenv.ZooKeeper, etcd *testenv.Etcd) (err error) {
	f, err := harness.NewFleet(b.bins, filepath.Join(b.dir, "fleet"), harness.ReplicaConfig{
		Cluster: "failover", Etcd: etcd.Endpoints(), LeaseTTL: b.o.leaseTTL,
		ZooKeeper: zk.Servers(), Namespace: "hiveserver2", LogLevel: b.o.logLevel,
		ShutdownGrace: 5 * time.Second,
	})
	if err != nil {
		return err
	}
	defer f.Close()
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "process output:\n%s\n", f.Logs(4000))
		}
	}()
	fmt.Fprintln(os.Stderr, "failover: starting 2 simulators and 3 replicas")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, name := range []string{"sim-a", "sim-b"} {
		if _, err := f.StartSim(sctx, name); err != nil {
			return err
		}
	}
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, _, err := f.StartReplica(sctx, id); err != nil {
			return err
		}
	}
	if _, _, err := agreed(sctx, f.Clients, 3); err != nil {
		return err
	}
	for i := range b.o.runs {
		fmt.Fprintf(os.Stderr, "failover: replicated run %d/%d\n", i+1, b.o.runs)
		if err := b.hs2Kill(ctx, f, f.Clients, true); err != nil {
			return fmt.Errorf("run %d: HS2 kill: %w", i+1, err)
		}
		if err := b.leaderStop(ctx, f, syscall.SIGKILL); err != nil {
			return fmt.Errorf("run %d: leader SIGKILL: %w", i+1, err)
		}
		if err := b.leaderStop(ctx, f, syscall.SIGTERM); err != nil {
			return fmt.Errorf("run %d: leader SIGTERM: %w", i+1, err)
		}
		if err := b.gcPause(ctx, f, f.Clients); err != nil {
			return fmt.Errorf("run %d: GC pause: %w", i+1, err)
		}
		if err := b.rerunKill(ctx, f, f.Clients); err != nil {
			return fmt.Errorf("run %d: HS2 SIGKILL under reads: %w", i+1, err)
		}
	}
	return nil
}

// standalone measures one standalone replica with its own simulators.
func (b *bench) standalone(ctx context.Context, zk *testenv.ZooKeeper) (err error) {
	f, err := harness.NewFleet(b.bins, filepath.Join(b.dir, "standalone"), harness.ReplicaConfig{
		Coordination: "standalone", ZooKeeper: zk.Servers(), Namespace: "hiveserver2-standalone", LogLevel: "warn",
		ShutdownGrace: 5 * time.Second,
	})
	if err != nil {
		return err
	}
	defer f.Close()
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "process output:\n%s\n", f.Logs(4000))
		}
	}()
	fmt.Fprintln(os.Stderr, "failover: starting a standalone replica with 2 simulators")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, name := range []string{"sa-sim-a", "sa-sim-b"} {
		if _, err := f.StartSim(sctx, name); err != nil {
			return err
		}
	}
	if _, _, err := f.StartReplica(sctx, "standalone"); err != nil {
		return err
	}
	for i := range b.o.runs {
		fmt.Fprintf(os.Stderr, "failover: standalone run %d/%d\n", i+1, b.o.runs)
		if err := b.hs2Kill(ctx, f, f.Clients, false); err != nil {
			return fmt.Errorf("standalone run %d: %w", i+1, err)
		}
	}
	return nil
}

// agreed waits until the clients agree on a route to a server (and, with
// etcd, on a leader) and every one lists want replicas.
func agreed(ctx context.Context, clients []*harness.Client, want int) (harness.Route, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return harness.WaitAgreed(ctx, clients, connector, func(r harness.Route, _ string) error {
		if r.Server == "" {
			return errors.New("no server routed")
		}
		for _, c := range clients {
			t, err := c.Topology(ctx)
			if err != nil {
				return err
			}
			if n := len(t.GetReplicas()); n != want {
				return fmt.Errorf("%s lists %d replicas, want %d", c.Addr, n, want)
			}
		}
		return nil
	})
}

// standaloneRoute is WaitAgreed for one standalone replica (no leader).
func standaloneRoute(ctx context.Context, c *harness.Client) (harness.Route, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var r harness.Route
	err := testenv.WaitFor(ctx, func() error {
		var err error
		if r, _, err = c.RouteOf(ctx, connector); err != nil {
			return err
		}
		if r.Server == "" {
			return errors.New("no server routed")
		}
		return nil
	})
	return r, err
}

// poller runs SELECT 1 on one replica until a query is served by target.
type poller struct {
	warm     chan struct{} // closed after the first success
	switched time.Time     // when the first query served by target finished
	failed   atomic.Int64  // queries that failed
	err      error
}

func poll(ctx context.Context, c *harness.Client, target string, p *poller) {
	warm := false
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r := c.Execute(qctx, &hiveqv1.ExecuteRequest{Statement: "SELECT 1"}, nil, nil)
		cancel()
		if r.Err != nil {
			if ctx.Err() != nil {
				break
			}
			p.failed.Add(1)
			continue
		}
		if !warm {
			warm = true
			close(p.warm)
		}
		if r.Server() == target {
			p.switched = r.Finished
			return
		}
	}
	p.err = fmt.Errorf("%s: never served by %s: %w", c.Addr, target, ctx.Err())
}

// hs2Kill kills the routed HS2 with SIGKILL while every replica is polled,
// records when each first served from the other HS2, and restarts the
// killed simulator.
func (b *bench) hs2Kill(ctx context.Context, f *harness.Fleet, clients []*harness.Client, etcd bool) error {
	var route harness.Route
	var err error
	if etcd {
		route, _, err = agreed(ctx, clients, len(clients))
	} else {
		route, err = standaloneRoute(ctx, clients[0])
	}
	if err != nil {
		return err
	}
	victim := f.SimByAddr(route.Server)
	if victim == nil {
		return fmt.Errorf("routed to %s, not one of ours", route.Server)
	}
	var target string
	for _, s := range f.Sims {
		if s != victim {
			target = s.Addr
		}
	}
	top, err := clients[0].Topology(ctx)
	if err != nil {
		return err
	}
	var oldNode string
	for _, c := range harness.ConnectorState(top, connector).GetCandidates() {
		if harness.ServerAddr(c.GetServer()) == victim.Addr {
			oldNode = c.GetNode()
		}
	}

	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ps := make([]*poller, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		ps[i] = &poller{warm: make(chan struct{})}
		wg.Add(1)
		go func() { defer wg.Done(); poll(pctx, c, target, ps[i]) }()
	}
	for _, p := range ps {
		select {
		case <-p.warm:
		case <-pctx.Done():
			cancel()
			wg.Wait()
			return fmt.Errorf("pollers did not get a first answer: %w", pctx.Err())
		}
	}
	base := make([]int64, len(ps)) // count the failures after the kill only
	for i, p := range ps {
		base[i] = p.failed.Load()
	}
	killed := time.Now()
	if err := victim.Signal(syscall.SIGKILL); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	wg.Wait()
	<-victim.Done()
	var first, last time.Duration
	failed := 0
	for i, p := range ps {
		if p.err != nil {
			return p.err
		}
		d := p.switched.Sub(killed)
		if i == 0 || d < first {
			first = d
		}
		if d > last {
			last = d
		}
		failed += int(p.failed.Load() - base[i])
	}
	if etcd {
		b.add("hs2_kill_first", "HS2 SIGKILL → first replica served by the new HS2", "ms", ms(first))
		b.add("hs2_kill_all", "HS2 SIGKILL → every replica served by the new HS2", "ms", ms(last))
		b.add("hs2_kill_spread", "spread between first and last replica to switch", "ms", ms(last-first))
		b.add("hs2_kill_failed_queries", "SELECT 1 polls failed meanwhile (3 replicas)", "count", float64(failed))
		b.logf("hs2 kill %s -> %s at %s: first %v all %v failed %d", victim.Addr, target, killed.UTC().Format(time.RFC3339Nano), first, last, failed)
		for i, p := range ps {
			b.logf("  %s switched after %v", clients[i].Addr, p.switched.Sub(killed))
		}
	} else {
		b.add("standalone_hs2_kill", "standalone: HS2 SIGKILL → first query served by another HS2", "ms", ms(first))
		b.add("standalone_failed_queries", "standalone: SELECT 1 polls failed meanwhile", "count", float64(failed))
		b.logf("standalone hs2 kill %s -> %s: %v failed %d", victim.Addr, target, first, failed)
	}

	// Bring the killed HS2 back, as a restarted HS2 registers anew, and
	// wait until its old znode expired and the new registration is
	// eligible, so that every run starts from the same state.
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	if err := victim.Restart(rctx); err != nil {
		return err
	}
	return testenv.WaitFor(rctx, func() error {
		top, err := clients[0].Topology(rctx)
		if err != nil {
			return err
		}
		cs := harness.ConnectorState(top, connector)
		for _, c := range cs.GetCandidates() {
			if harness.ServerAddr(c.GetServer()) != victim.Addr {
				continue
			}
			if c.GetNode() == oldNode {
				return fmt.Errorf("%s: old registration %s not expired yet", victim.Addr, oldNode)
			}
			if du := c.GetDownUntil(); du != nil && du.AsTime().After(time.Now()) {
				return fmt.Errorf("%s held down until %v", victim.Addr, du.AsTime())
			}
			return nil
		}
		return fmt.Errorf("%s not registered again yet", victim.Addr)
	})
}

// leaderStop stops the leader with sig, records when every other replica
// names a new leader (polling GetTopology), and restarts it.
func (b *bench) leaderStop(ctx context.Context, f *harness.Fleet, sig syscall.Signal) error {
	route, leader, err := agreed(ctx, f.Clients, len(f.Clients))
	if err != nil {
		return err
	}
	h := f.Replica(leader)
	var others []*harness.Client
	for _, c := range f.Clients {
		if c.Addr != h.Addr {
			others = append(others, c)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	seen := make([]time.Time, len(others))
	errs := make([]error, len(others))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				qctx, qcancel := context.WithTimeout(pctx, time.Second)
				t, err := c.Topology(qctx)
				qcancel()
				if err == nil && harness.LeaderID(t) != "" && harness.LeaderID(t) != leader {
					seen[i] = time.Now()
					return
				}
				select {
				case <-pctx.Done():
					errs[i] = fmt.Errorf("%s: no new leader after %s: %w", c.Addr, leader, pctx.Err())
					return
				case <-tick.C:
				}
			}
		}()
	}
	stopped := time.Now()
	if err := h.Signal(sig); err != nil {
		cancel()
		close(start)
		wg.Wait()
		return err
	}
	close(start)
	wg.Wait()
	<-h.Done()
	var last time.Duration
	for i := range others {
		if errs[i] != nil {
			return errs[i]
		}
		last = max(last, seen[i].Sub(stopped))
	}
	if sig == syscall.SIGKILL {
		b.add("leader_kill", fmt.Sprintf("leader SIGKILL → new leader (lease TTL %v)", b.o.leaseTTL), "ms", ms(last))
	} else {
		b.add("leader_term", "leader SIGTERM → new leader", "ms", ms(last))
	}
	b.logf("leader %s %v: new leader after %v", leader, sig, last)

	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	if err := h.Restart(rctx); err != nil {
		return err
	}
	r, _, err := agreed(rctx, f.Clients, len(f.Clients))
	if err != nil {
		return err
	}
	if r != route {
		return fmt.Errorf("the leader change moved the route from %+v to %+v", route, r)
	}
	return nil
}
