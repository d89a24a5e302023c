package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// Fault kinds.
const (
	HS2Crash      = "hs2-crash"         // the routed HS2's port refuses (znode stays), then it is restarted
	HS2Hang       = "hs2-hang"          // the routed HS2 accepts and never answers, then heals
	HS2Slow       = "hs2-slow"          // every HS2 call of the routed server is delayed
	HS2Drain      = "hs2-drain"         // the routed HS2 deregisters, then registers again
	HS2Drop       = "hs2-drop"          // connections dropped mid-stream after N rows
	HS2Pause      = "hs2-gc-pause"      // every call to the routed HS2 stalls 2-8s, then all are answered
	HS2Saturate   = "hs2-saturate-lone" // the routed HS2 is the only one registered and every call takes longer than a probe may
	HS2DrainLast  = "hs2-drain-last"    // the others deregister, then the routed HS2 too (the last one): "none", drained
	FollowerKill  = "follower-sigkill"  // then restarted
	FollowerTerm  = "follower-sigterm"
	LeaderKill    = "leader-sigkill"
	LeaderTerm    = "leader-sigterm"
	EtcdKill      = "etcd-kill" // etcd SIGKILL, then started again
	ZKKill        = "zk-kill"   // ZooKeeper SIGKILL, then started again
	ZKExpiry      = "zk-session-expiry"
	EtcdRefuse    = "etcd-cut-refuse"    // a replica's etcd connections reset and refused
	EtcdBlackhole = "etcd-cut-blackhole" // a replica's etcd packets vanish
	ZKRefuse      = "zk-cut-refuse"
	// The etcd faults of issue 12 (etcdfaults.go).
	EtcdCompact     = "etcd-compact"      // etcd compacted to its current revision (defragmented half the time), then every replica's etcd link reset: watches resume past it
	EtcdRouteDelete = "etcd-route-delete" // the published route key deleted behind the leader: it must publish it again
	EtcdRestore     = "etcd-restore"      // etcd stopped and restored from a snapshot taken at the start of the run, on the same port
	EtcdCutFollower = "etcd-cut-follower" // one follower's etcd link blackholed while the leader fails over by hand
)

// EtcdKinds are the etcd faults of issue 12.
var EtcdKinds = []string{EtcdCompact, EtcdRouteDelete, EtcdRestore, EtcdCutFollower}

// AllKinds are the faults a run draws from.
var AllKinds = append([]string{HS2Crash, HS2Hang, HS2Slow, HS2Drain, HS2Drop, HS2Pause, HS2Saturate, HS2DrainLast,
	FollowerKill, FollowerTerm, LeaderKill, LeaderTerm, EtcdKill, ZKKill, ZKExpiry, EtcdRefuse, EtcdBlackhole, ZKRefuse},
	EtcdKinds...)

// allowedBumps is how many epoch bumps a fault that is no HS2 incident may
// cause.
func allowedBumps(kind string) int {
	switch kind {
	case ZKKill:
		// Documented: ZooKeeper down longer than the simulators'
		// session timeout expires every registration, which drains
		// the routed HS2: one failover, or "none" and back.
		return 2
	case EtcdRouteDelete, EtcdCutFollower:
		return 1 // the republication; the manual failover
	case EtcdRestore:
		// A manual failover first when nothing moved since the snapshot,
		// the republication above the replicas' epoch, and one more if
		// leadership moves to the election key the snapshot held.
		return 3
	}
	return 0
}

// touchesRouteKey reports whether a fault rewrites etcd's keys behind the
// leader: afterwards the replicas must converge on what etcd holds.
func touchesRouteKey(kind string) bool { return kind == EtcdRouteDelete || kind == EtcdRestore }

// hs2Incident reports whether a fault kind is an HS2 incident (may cause
// one failover).
func hs2Incident(kind string) bool {
	switch kind {
	case HS2Crash, HS2Hang, HS2Slow, HS2Drain, HS2Drop, HS2Pause, HS2Saturate, HS2DrainLast:
		return true
	}
	return false
}

// lethal reports whether a fault kind leaves the server unable to finish
// the queries running on it (its process gone, hung, or its connections
// cut): only then may a query running there end ABORTED or UNAVAILABLE.
// Slow, paused, saturated and draining servers answer: nothing running on
// them may be lost.
func lethal(kind string) bool {
	switch kind {
	case HS2Crash, HS2Hang, HS2Drop:
		return true
	}
	return false
}

// window is a fault's span, on one HS2 server or one replica.
type window struct {
	kind            string
	server, replica string
	from, to        time.Time
}

// Options configure a run.
type Options struct {
	Bins       map[string]string // from BuildBinaries
	Dir        string            // logs and data
	Duration   time.Duration     // how long faults are injected
	Seed       int64
	Kinds      []string      // default AllKinds
	InOrder    bool          // take Kinds in order (cycling) instead of at random
	Faults     int           // stop after this many faults (0: Duration decides)
	Hold       time.Duration // how long a fault lasts, default 4s (scaled per kind)
	PerReplica int           // concurrent streams per replica, default 2
	Logf       func(format string, args ...any)
}

// Violation is a broken invariant.
type Violation struct {
	Invariant string `json:"invariant"`
	Detail    string `json:"detail"`
}

// Report is what a run measured.
type Report struct {
	Seed          int64             `json:"seed"`
	Duration      string            `json:"duration"`
	Faults        map[string]int    `json:"faults"`
	FaultLog      []string          `json:"fault_log"`
	Streams       int               `json:"streams"`
	ByCode        map[string]int    `json:"streams_by_code"`
	ByKind        map[string]int    `json:"streams_by_kind"`
	CompleteRows  int64             `json:"rows_checked"`
	HS2Incidents  int               `json:"hs2_incidents"`
	EpochBumps    int               `json:"epoch_bumps"`
	FirstEpoch    uint64            `json:"first_epoch"`
	LastEpoch     uint64            `json:"last_epoch"`
	LeaderChanges int               `json:"leader_changes"`
	MaxConverge   string            `json:"max_convergence"`
	MaxFDs        int               `json:"max_fds"`
	MaxRSSKiB     int64             `json:"max_rss_kib"`
	MaxGoroutines int               `json:"max_goroutines"`
	EndGoroutines map[string]int    `json:"end_goroutines"`
	EndFDs        map[string]int    `json:"end_fds"`
	SimOpenAtEnd  map[string]string `json:"sim_open_at_end"`
	Leaks         []string          `json:"leaks"`
	Violations    []Violation       `json:"violations"`
}

// Bounds of a race-built replica's resources under this workload.
const (
	maxFDs    = 512
	maxRSSKiB = 1536 << 10
)

// runner is one run's state.
type runner struct {
	opts Options
	e    *env
	rng  *rand.Rand
	rep  *Report
	mu   sync.Mutex
	note string // said about the last fault
	// windows are the faults' spans, for the stream invariants.
	windows []window
	etcd    *etcdState
}

// span records a fault window that ends now.
func (r *runner) span(kind, server, replica string, from time.Time) {
	r.mu.Lock()
	r.windows = append(r.windows, window{kind: kind, server: server, replica: replica, from: from, to: time.Now()})
	r.mu.Unlock()
}

func (r *runner) logf(format string, args ...any) {
	if r.opts.Logf != nil {
		r.opts.Logf(format, args...)
	}
}

func (r *runner) violate(inv, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := Violation{Invariant: inv, Detail: fmt.Sprintf(format, args...)}
	r.rep.Violations = append(r.rep.Violations, v)
	r.logf("VIOLATION %s: %s", v.Invariant, v.Detail)
}

// Run starts the fleet, runs the workload under faults and checks the
// invariants. The error is for setup failures; broken invariants are in
// the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rep := &Report{Seed: opts.Seed, Faults: map[string]int{}, ByCode: map[string]int{}, ByKind: map[string]int{},
		EndGoroutines: map[string]int{}, EndFDs: map[string]int{}, SimOpenAtEnd: map[string]string{}, MaxGoroutines: -1}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	e, err := startEnv(sctx, opts.Bins, opts.Dir, 3, 3)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer e.close()
	r := &runner{opts: opts, e: e, rng: rand.New(rand.NewPCG(uint64(opts.Seed), 0x6368616f73)), rep: rep}
	route0, leader0, err := e.agreed(ctx, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("fleet never agreed: %w\n%s", err, e.fleet.Logs(4000))
	}
	rep.FirstEpoch = route0.Epoch
	r.logf("fleet up: leader %s, route %s epoch %d", leader0, route0.Server, route0.Epoch)
	defer r.closeEtcdState() // also when startEtcdState fails after connecting
	if err := r.startEtcdState(ctx); err != nil {
		return nil, err
	}

	watchers := make([]*watcher, len(e.replicas))
	for i := range e.replicas {
		watchers[i] = startWatcher(e.replicas[i].id, e.fleet.Clients[i])
	}
	wl := &workload{e: e, seed: opts.Seed}
	lctx, stopLoad := context.WithCancel(ctx)
	wg := wl.run(lctx, opts.PerReplica)

	sch := &schedule{r: r, start: start, leader: leader0, lastRoute: route0, prevKind: "start"}
	sch.run(ctx)
	stopLoad()
	wg.Wait()
	rep.LastEpoch = sch.lastRoute.Epoch
	rep.MaxConverge = sch.maxConv.Round(time.Millisecond).String()

	for _, w := range watchers {
		w.stop()
		for _, v := range w.violations {
			r.violate("epoch-monotonic", "%s", v)
		}
	}
	r.checkOutcomes(wl.outcomes)
	r.checkLost(wl.outcomes)
	r.checkLeaks(ctx)
	rep.Duration = time.Since(start).Round(time.Second).String()
	if len(rep.Violations) > 0 {
		r.logf("process logs:\n%s", e.fleet.Logs(3000))
	}
	return rep, nil
}

// withDefaults fills in the options' defaults and checks the kinds.
func withDefaults(opts Options) (Options, error) {
	if opts.Kinds == nil {
		opts.Kinds = AllKinds
	}
	for _, k := range opts.Kinds {
		if !slices.Contains(AllKinds, k) {
			return opts, fmt.Errorf("unknown fault kind %q (known: %s)", k, strings.Join(AllKinds, ","))
		}
	}
	if opts.Hold == 0 {
		opts.Hold = 4 * time.Second
	}
	if opts.PerReplica == 0 {
		opts.PerReplica = 2
	}
	return opts, nil
}

// schedule injects the faults one after another and checks, after each,
// that the fleet converged with no more epoch bumps than the fault allows.
type schedule struct {
	r         *runner
	start     time.Time
	leader    string
	lastRoute harness.Route
	maxConv   time.Duration
	// The previous fault and its bumps: effects that come after it had
	// converged are counted against it.
	prevKind               string
	prevBumps, prevAllowed int
}

func (sch *schedule) run(ctx context.Context) {
	r, opts := sch.r, sch.r.opts
	deadline := time.Now().Add(opts.Duration)
	for n := 0; ctx.Err() == nil; n++ {
		if opts.Faults > 0 && n >= opts.Faults || opts.Faults == 0 && time.Now().After(deadline) {
			break
		}
		// Random quiet time before the fault: load runs undisturbed.
		if !r.sleep(ctx, time.Duration(500+r.rng.IntN(2500))*time.Millisecond) {
			break
		}
		kind := opts.Kinds[r.rng.IntN(len(opts.Kinds))]
		if opts.InOrder {
			kind = opts.Kinds[n%len(opts.Kinds)]
		}
		r.sample(ctx)
		// Every fault starts from a full set of registrations: an earlier
		// ZooKeeper fault may have expired the simulators' sessions, they
		// register again only after a while, and a registration that
		// vanishes later is a drain that would be blamed on this fault.
		registered, err := r.e.allRegistered(ctx, 60*time.Second)
		if err != nil {
			r.logf("before %s: %v", kind, err)
		}
		sch.lateEffects(ctx)
		sch.fault(ctx, kind, registered)
	}
}

// lateEffects counts against the previous fault what came after it had
// converged (a ZooKeeper restart expires the registrations seconds later).
func (sch *schedule) lateEffects(ctx context.Context) {
	r, rep := sch.r, sch.r.rep
	pre, _, err := r.e.agreed(ctx, 60*time.Second)
	if err != nil || pre.Epoch == sch.lastRoute.Epoch {
		return
	}
	late := int(pre.Epoch) - int(sch.lastRoute.Epoch)
	line := fmt.Sprintf("         (late effect of %s: epoch %d -> %d, route %s)", sch.prevKind, sch.lastRoute.Epoch, pre.Epoch, pre.Server)
	rep.FaultLog = append(rep.FaultLog, line)
	r.logf("%s", line)
	if late < 0 {
		r.violate("epoch-monotonic", "agreed epoch went from %d to %d", sch.lastRoute.Epoch, pre.Epoch)
	} else {
		rep.EpochBumps += late
		if sch.prevBumps += late; sch.prevBumps > sch.prevAllowed {
			r.violate("failovers-per-incident", "%s: %d epoch bumps in all, at most %d allowed", sch.prevKind, sch.prevBumps, sch.prevAllowed)
		}
	}
	sch.lastRoute = pre
}

// fault injects one fault and checks the convergence after it.
func (sch *schedule) fault(ctx context.Context, kind string, registered int) {
	r, rep := sch.r, sch.r.rep
	t0 := time.Now()
	if err := r.inject(ctx, kind, sch.leader); err != nil {
		r.violate("fault-recovery", "%s: %v", kind, err)
	}
	rep.Faults[kind]++
	if hs2Incident(kind) {
		rep.HS2Incidents++
	}
	route, l, err := r.e.agreed(ctx, 60*time.Second)
	conv := time.Since(t0)
	if err != nil {
		r.violate("convergence", "after %s: replicas did not agree on one (server, epoch) within 60s: %v", kind, err)
		return
	}
	sch.maxConv = max(sch.maxConv, conv)
	bumps := int(route.Epoch - sch.lastRoute.Epoch)
	if route.Epoch < sch.lastRoute.Epoch {
		r.violate("epoch-monotonic", "agreed epoch went from %d to %d after %s", sch.lastRoute.Epoch, route.Epoch, kind)
		bumps = 0
	}
	rep.EpochBumps += bumps
	if l != sch.leader {
		rep.LeaderChanges++
	}
	line := fmt.Sprintf("%6.1fs %-20s -> leader %s route %s epoch %d (+%d) converged in %v %s",
		t0.Sub(sch.start).Seconds(), kind, l, route.Server, route.Epoch, bumps, conv.Round(time.Millisecond), r.note)
	r.note = ""
	rep.FaultLog = append(rep.FaultLog, line)
	r.logf("%s", line)
	// One failover per HS2 incident at most; a fault that is no HS2
	// incident must not move the route.
	allowed := allowedBumps(kind)
	if hs2Incident(kind) {
		allowed = 1
		if registered < 2 || kind == HS2Saturate || kind == HS2DrainLast {
			// Saturated alone: it stays, or (if its traffic paused)
			// "none" and back. The last one drained: "none" and back.
			// Documented: the only registered HS2 failed, so the
			// route goes to "none" and back once it returns.
			allowed = 2
		}
	}
	if bumps > allowed {
		r.violate("failovers-per-incident", "%s: %d epoch bumps (%d -> %d), at most %d allowed", kind, bumps, sch.lastRoute.Epoch, route.Epoch, allowed)
	}
	sch.prevKind, sch.prevBumps, sch.prevAllowed = kind, bumps, allowed
	sch.leader, sch.lastRoute = l, route
	if touchesRouteKey(kind) {
		r.checkRouteInEtcd(ctx, kind)
	}
}

func (r *runner) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// inject runs one fault to its end: inject, hold, restore.
func (r *runner) inject(ctx context.Context, kind, leader string) error {
	hold := r.opts.Hold/2 + time.Duration(r.rng.Int64N(int64(r.opts.Hold)))
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch kind {
	case HS2Crash, HS2Pause, HS2Saturate, HS2DrainLast, HS2Hang, HS2Slow, HS2Drop, HS2Drain:
		return r.injectHS2(ctx, fctx, kind, hold)
	case FollowerKill, FollowerTerm, LeaderKill, LeaderTerm:
		return r.injectReplica(ctx, fctx, kind, leader, hold)
	case EtcdKill, ZKKill, ZKExpiry, ZKRefuse, EtcdRefuse, EtcdBlackhole:
		return r.injectCoordination(ctx, fctx, kind, leader, hold)
	case EtcdCompact:
		return r.etcdCompact(fctx, hold)
	case EtcdRouteDelete:
		return r.routeDelete(fctx)
	case EtcdRestore:
		return r.etcdRestore(fctx, hold)
	case EtcdCutFollower:
		return r.cutFollower(fctx, hold)
	}
	return fmt.Errorf("unknown fault %q", kind)
}

// routed is the simulator the replicas route to.
func (r *runner) routed(ctx context.Context) (*harness.Sim, error) {
	rt, _, err := r.e.agreed(ctx, 60*time.Second)
	if err != nil {
		return nil, err
	}
	s := r.e.fleet.SimByAddr(rt.Server)
	if s == nil {
		return nil, fmt.Errorf("route %s is no simulator", rt.Server)
	}
	return s, nil
}

// pick is a random replica that is (or is not) the leader.
func (r *runner) pick(leader string, wantLeader bool) *harness.Hiveqd {
	var cands []*harness.Hiveqd
	for _, h := range r.e.fleet.Replicas {
		if (h.Name == leader) == wantLeader {
			cands = append(cands, h)
		}
	}
	return cands[r.rng.IntN(len(cands))]
}

// proxyOf is replica id's pair of fault proxies.
func (r *runner) proxyOf(id string) *replica {
	for _, x := range r.e.replicas {
		if x.id == id {
			return x
		}
	}
	return nil
}

// injectHS2 faults the routed HS2 (or the others, to leave it alone).
func (r *runner) injectHS2(ctx, fctx context.Context, kind string, hold time.Duration) error {
	from := time.Now()
	s, err := r.routed(fctx)
	if err != nil {
		return err
	}
	defer func() { r.span(kind, s.Addr, "", from) }()
	switch kind {
	case HS2Crash:
		if err := s.Fault(fctx, "crash"); err != nil {
			return err
		}
		r.sleep(ctx, hold)
		s.Kill()
		return s.Restart(fctx)
	case HS2Pause:
		pause := time.Duration(2000+r.rng.IntN(6000)) * time.Millisecond
		r.note = fmt.Sprintf("[paused %v]", pause)
		if err := s.Fault(fctx, "pause", "for", pause.String()); err != nil {
			return err
		}
		r.sleep(ctx, pause+time.Second)
		return nil
	case HS2Saturate, HS2DrainLast:
		return r.injectAlone(ctx, fctx, kind, s, hold)
	case HS2Drain:
		if err := s.Fault(fctx, "deregister"); err != nil {
			return err
		}
		r.sleep(ctx, hold)
		return s.Fault(fctx, "register")
	}
	switch kind {
	case HS2Hang:
		err = s.Fault(fctx, "hang")
	case HS2Slow:
		err = s.Fault(fctx, "slow", "delay", fmt.Sprintf("%dms", 50+r.rng.IntN(400)))
	default:
		err = s.Fault(fctx, "drop", "rows", fmt.Sprint(1000+r.rng.IntN(20000)))
	}
	if err != nil {
		return err
	}
	r.sleep(ctx, hold)
	return s.Fault(fctx, "heal")
}

// injectAlone deregisters every other HS2, then saturates or drains the
// routed one s.
func (r *runner) injectAlone(ctx, fctx context.Context, kind string, s *harness.Sim, hold time.Duration) error {
	var others []*harness.Sim
	for _, o := range r.e.fleet.Sims {
		if o != s {
			others = append(others, o)
		}
	}
	for _, o := range others {
		if err := o.Fault(fctx, "deregister"); err != nil {
			return err
		}
	}
	var err error
	if kind == HS2Saturate {
		// Longer than the fleet's 1s probe budget: probes time out,
		// calls still complete.
		err = s.Fault(fctx, "slow", "delay", fmt.Sprintf("%dms", 1200+r.rng.IntN(400)))
	} else {
		err = s.Fault(fctx, "deregister")
	}
	if err != nil {
		return err
	}
	r.sleep(ctx, hold)
	if kind == HS2Saturate {
		err = s.Fault(fctx, "heal")
	} else {
		err = s.Fault(fctx, "register")
	}
	for _, o := range others {
		err = errors.Join(err, o.Fault(fctx, "register"))
	}
	return err
}

// injectReplica kills or stops a replica, then restarts it.
func (r *runner) injectReplica(ctx, fctx context.Context, kind, leader string, hold time.Duration) error {
	h := r.pick(leader, kind == LeaderKill || kind == LeaderTerm)
	from := time.Now()
	defer func() { r.span(kind, "", h.Name, from) }()
	if kind == FollowerKill || kind == LeaderKill {
		h.Kill()
	} else {
		t := time.Now()
		err := h.Stop(15 * time.Second)
		r.note = fmt.Sprintf("[%s exited %v after SIGTERM]", h.Name, time.Since(t).Round(time.Millisecond))
		if err != nil && !strings.Contains(err.Error(), "exit status") {
			return fmt.Errorf("SIGTERM of %s: %w", h.Name, err)
		}
	}
	r.sleep(ctx, hold)
	return h.Restart(fctx)
}

// injectCoordination kills etcd or ZooKeeper, or cuts a replica's link to
// one of them.
func (r *runner) injectCoordination(ctx, fctx context.Context, kind, leader string, hold time.Duration) error {
	e := r.e
	switch kind {
	case EtcdKill:
		e.etcd.Kill()
		r.sleep(ctx, hold)
		return e.etcd.Start(fctx)
	case ZKKill:
		e.zk.Kill()
		r.sleep(ctx, hold)
		return e.zk.Start(fctx)
	case ZKExpiry:
		// The leader's ZooKeeper packets vanish for longer than the
		// session timeout: ZooKeeper expires its session.
		p := r.proxyOf(leader)
		p.zkProxy.SetMode(testenv.Blackhole)
		r.sleep(ctx, 2*zkSessionTimeout)
		p.zkProxy.SetMode(testenv.Pass)
		return nil
	case ZKRefuse:
		p := r.proxyOf(leader)
		p.zkProxy.SetMode(testenv.Refuse)
		r.sleep(ctx, hold)
		p.zkProxy.SetMode(testenv.Pass)
		return nil
	}
	// EtcdRefuse, EtcdBlackhole: half the time the leader, else a
	// follower; long enough for the lease to expire.
	id := leader
	if r.rng.IntN(2) == 0 {
		id = r.pick(leader, false).Name
	}
	p := r.proxyOf(id)
	mode := testenv.Refuse
	if kind == EtcdBlackhole {
		mode = testenv.Blackhole
	}
	p.etcdProxy.SetMode(mode)
	r.sleep(ctx, leaseTTL+hold)
	p.etcdProxy.SetMode(testenv.Pass)
	return nil
}

// sample records the replicas' resources.
func (r *runner) sample(ctx context.Context) map[string]procStats {
	out := map[string]procStats{}
	for i, h := range r.e.fleet.Replicas {
		select {
		case <-h.Done():
			continue
		default:
		}
		st, err := readProc(ctx, h.Pid(), r.e.replicas[i].metricsAddr)
		if err != nil {
			continue
		}
		out[h.Name] = st
		r.rep.MaxFDs = max(r.rep.MaxFDs, st.FDs)
		r.rep.MaxRSSKiB = max(r.rep.MaxRSSKiB, st.RSSKiB)
		r.rep.MaxGoroutines = max(r.rep.MaxGoroutines, st.Goroutines)
	}
	return out
}

func (r *runner) checkOutcomes(outs []outcome) {
	rep := r.rep
	bad := 0
	for _, o := range outs {
		rep.Streams++
		rep.ByCode[o.code.String()]++
		rep.ByKind[o.kind]++
		if o.code == codes.OK && o.err == nil {
			rep.CompleteRows += o.rows
		}
		fail := func(inv, format string, args ...any) {
			if bad++; bad <= 20 {
				r.violate(inv, format, args...)
			}
		}
		switch {
		case !documented[o.code]:
			fail("status-code", "%s %s on %s ended %v after %v: %v", o.kind, "stream", o.replica, o.code, o.took, o.err)
		case o.code == codes.OK && o.err != nil:
			fail("complete-rows", "%s stream on %s: %v", o.kind, o.replica, o.err)
		case o.code == codes.Canceled && o.kind != kindCancel:
			// Only the client cancels: a server-made CANCELLED would be a
			// lie about who stopped the query.
			fail("status-code", "%s stream on %s ended CANCELLED without a client cancel: %v", o.kind, o.replica, o.err)
		}
		if o.badRows != nil {
			fail("row-values", "%s stream on %s: %v", o.kind, o.replica, o.badRows)
		}
		if o.took > o.deadline+rpcSlack {
			fail("deadline", "%s stream on %s took %v, deadline %v", o.kind, o.replica, o.took, o.deadline)
		}
	}
	if bad > 20 {
		r.violate("more", "%d more stream violations not listed", bad-20)
	}
}

// checkLeaks waits for the load's HS2 sessions and operations to close
// and checks the replicas' resources.
func (r *runner) checkLeaks(ctx context.Context) {
	e, rep := r.e, r.rep
	bound := int64(len(e.replicas) * idlePerKey)
	for _, s := range e.fleet.Sims {
		var st harness.SimStats
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := testenv.WaitFor(cctx, func() error {
			var err error
			if st, err = s.Stats(cctx); err != nil {
				return err
			}
			if st.OpenOperations != 0 || st.OpenSessions > bound {
				return fmt.Errorf("%d operations and %d sessions open", st.OpenOperations, st.OpenSessions)
			}
			return nil
		})
		cancel()
		rep.SimOpenAtEnd[s.Name] = fmt.Sprintf("operations=%d sessions=%d (bound %d)", st.OpenOperations, st.OpenSessions, bound)
		if err != nil {
			rep.Leaks = append(rep.Leaks, fmt.Sprintf("%s: %v", s.Name, err))
		}
	}
	// Idle replicas must come back down: wait for the goroutine count
	// to settle under a bound rather than sampling once.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last map[string]procStats
	err := testenv.WaitFor(cctx, func() error {
		last = r.sample(cctx)
		for id, st := range last {
			if st.Goroutines > 400 {
				return fmt.Errorf("%s: %d goroutines idle", id, st.Goroutines)
			}
		}
		return nil
	})
	if err != nil {
		rep.Leaks = append(rep.Leaks, "goroutines: "+err.Error())
	}
	for id, st := range last {
		rep.EndGoroutines[id] = st.Goroutines
		rep.EndFDs[id] = st.FDs
	}
	if rep.MaxFDs > maxFDs {
		rep.Leaks = append(rep.Leaks, fmt.Sprintf("file descriptors reached %d (bound %d)", rep.MaxFDs, maxFDs))
	}
	if rep.MaxRSSKiB > maxRSSKiB {
		rep.Leaks = append(rep.Leaks, fmt.Sprintf("RSS reached %d KiB (bound %d)", rep.MaxRSSKiB, maxRSSKiB))
	}
}

// watcher follows one replica's WatchTopology, reopening it across
// restarts, and records epochs that go backwards.
type watcher struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}

	violations []string
}

func startWatcher(id string, c *harness.Client) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{id: id, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var last uint64 // across streams: a restarted replica must not go back either
		for ctx.Err() == nil {
			stream, err := c.Cluster.WatchTopology(ctx, &hiveqv1.WatchTopologyRequest{})
			for err == nil {
				var resp *hiveqv1.WatchTopologyResponse
				if resp, err = stream.Recv(); err != nil {
					break
				}
				cs := harness.ConnectorState(resp.GetTopology(), connector)
				ep := cs.GetEpoch()
				if ep == 0 { // not known yet (a replica that just started)
					continue
				}
				if ep < last {
					w.violations = append(w.violations, fmt.Sprintf("replica %s: epoch %d after %d", id, ep, last))
				}
				last = max(last, ep)
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *watcher) stop() { w.cancel(); <-w.done }

// Summary renders the report for people.
func (rep *Report) Summary() string {
	s := fmt.Sprintf("chaos run: seed %d, %s\n", rep.Seed, rep.Duration)
	s += "faults injected: " + histogram(rep.Faults) + "\n"
	s += fmt.Sprintf("streams: %d; by code: %s\n", rep.Streams, histogram(rep.ByCode))
	s += "streams by kind: " + histogram(rep.ByKind) + "\n"
	s += fmt.Sprintf("rows checked against synth: %d\n", rep.CompleteRows)
	s += fmt.Sprintf("epochs %d -> %d: %d bumps for %d HS2 incidents; %d leader changes; slowest convergence %s\n",
		rep.FirstEpoch, rep.LastEpoch, rep.EpochBumps, rep.HS2Incidents, rep.LeaderChanges, rep.MaxConverge)
	s += fmt.Sprintf("replica resources: max fds %d, max RSS %d MiB, max goroutines %d; at end goroutines %v fds %v\n",
		rep.MaxFDs, rep.MaxRSSKiB>>10, rep.MaxGoroutines, rep.EndGoroutines, rep.EndFDs)
	s += fmt.Sprintf("HS2 at end: %v\n", rep.SimOpenAtEnd)
	s += fmt.Sprintf("leaks: %d\n", len(rep.Leaks))
	for _, l := range rep.Leaks {
		s += "  " + l + "\n"
	}
	s += fmt.Sprintf("invariant violations: %d\n", len(rep.Violations))
	for _, v := range rep.Violations {
		s += fmt.Sprintf("  %s: %s\n", v.Invariant, v.Detail)
	}
	return s
}

func histogram(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%d ", k, m[k])
	}
	return s
}
