package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/clock"
)

// Clock is the selector's time source (the same shape as hs2.Clock); tests
// inject a fake one. Probe timeouts are real time: they bound real I/O.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Choice is the selector's decision for a connector.
type Choice struct {
	Endpoint *hs2.Endpoint // nil: no HiveServer2 available
	// Reason says why this server was chosen, or why none is available.
	Reason string
	// Drain labels a planned switch: the previous server deregistered, was
	// left by a manual failover, or only timed out (slow, saturated or
	// hung, never known to be gone). Its running queries may finish.
	Drain bool
	// PrevDead is set when the previous server was found dead (every
	// failed probe was refused: its process is gone), or a manual failover
	// asked to abort what runs there: queries still running on it end.
	PrevDead   bool
	Candidates []CandidateHealth
}

// CandidateHealth is a registered server as the selector sees it.
type CandidateHealth struct {
	Candidate
	Healthy   bool   // the last probe succeeded
	LastError string // of the last failed probe, until one succeeds
	LastProbe time.Time
	DownUntil time.Time // held down (not chosen) until then
}

// SelectorConfig configures a Selector. Zero durations take the defaults,
// which replace a crashed HS2 in about a second.
type SelectorConfig struct {
	Connector string
	Discovery Discovery
	Prober    Prober
	Policy    string // PolicyOldest (default) or PolicyRandom
	// ProbeInterval is how often the current server is probed (200ms).
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration // per probe (500ms)
	// Cooldown holds a failed server down before it may be chosen again (5s).
	Cooldown time.Duration
	// FailThreshold consecutive failed probes fail the current server over (2).
	FailThreshold int
	// Traffic is passive evidence from real queries (optional). With it, a
	// lone server whose probes only time out stays in service while calls
	// to it still get answers (saturated), and is taken out once none has
	// for AnswerWindow (unresponsive). Without it such a server is kept.
	Traffic TrafficEvidence
	// AnswerWindow is how recent an answered call must be for a server
	// whose probes time out to count as saturated rather than hung
	// (default 2s, at least ProbeTimeout plus ProbeInterval).
	AnswerWindow time.Duration
	Clock        Clock
	Logger       *slog.Logger
}

// TrafficEvidence tells when real traffic last got an answer from a server
// (host:port) of connector; zero if never. *traffic.Observer implements it.
type TrafficEvidence interface {
	LastAnswer(connector, server string) time.Time
}

// Defaults of SelectorConfig.
const (
	DefaultProbeInterval = 200 * time.Millisecond
	DefaultProbeTimeout  = 500 * time.Millisecond
	DefaultCooldown      = 5 * time.Second
	DefaultFailThreshold = 2
	DefaultAnswerWindow  = 2 * time.Second
)

// ErrNotRunning is returned by Failover when the selector is not running.
var ErrNotRunning = errors.New("registry: selector is not running")

// ErrNotSynced is returned by Failover while discovery has not answered:
// with no list of servers there is nothing to fail over to.
var ErrNotSynced = errors.New("registry: discovery has not answered yet")

// Selector chooses one connector's HiveServer2 and keeps the choice healthy.
type Selector struct {
	cfg SelectorConfig
	log *slog.Logger

	mu      sync.Mutex
	runDone chan struct{} // closed when Run returns; nil before
	snap    []CandidateHealth
	reports map[string]bool

	reportC   chan struct{}
	failoverC chan *failoverReq
}

// NewSelector returns a selector; Run starts it.
func NewSelector(cfg SelectorConfig) *Selector {
	if cfg.Policy == "" {
		cfg.Policy = PolicyOldest
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.FailThreshold <= 0 {
		cfg.FailThreshold = DefaultFailThreshold
	}
	if cfg.AnswerWindow <= 0 {
		cfg.AnswerWindow = DefaultAnswerWindow
	}
	cfg.AnswerWindow = max(cfg.AnswerWindow, cfg.ProbeTimeout+cfg.ProbeInterval)
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Selector{
		cfg:       cfg,
		log:       log.With("component", "registry", "connector", cfg.Connector),
		reports:   map[string]bool{},
		reportC:   make(chan struct{}, 1),
		failoverC: make(chan *failoverReq),
	}
}

type probeResult struct {
	ep  hs2.Endpoint
	err error
}

// Run discovers and probes until ctx ends, calling publish (from this
// goroutine only) every time the choice changes: a different server, none,
// or draining. initial is the currently published server: it is kept unless
// it is not registered or turns out unhealthy, so a new leader adopting the
// choice never moves traffic by itself. Run returns nil when ctx ends, or
// the discovery's configuration error.
func (s *Selector) Run(ctx context.Context, initial *hs2.Endpoint, publish func(Choice)) error {
	if err := s.validate(); err != nil {
		return err
	}
	done, err := s.markRunning()
	if err != nil {
		return err
	}
	defer close(done)

	ctx, cancel := context.WithCancel(ctx)
	r := &selectorLoop{s: s, ctx: ctx, publish: publish, results: make(chan probeResult, maxParallelProbes+2)}
	defer func() {
		cancel()
		r.wg.Wait()
		if c, ok := s.cfg.Prober.(interface{ CloseIdle() }); ok {
			c.CloseIdle()
		}
	}()
	r.c = s.newCore(initial)
	r.startDiscovery()
	for {
		now := s.cfg.Clock.Now()
		wake := r.decide(now)
		if stop, err := r.wait(now, wake); stop {
			return err
		}
	}
}

func (s *Selector) validate() error {
	switch s.cfg.Policy {
	case PolicyOldest, PolicyRandom:
	default:
		return fmt.Errorf("registry: unknown selection policy %q", s.cfg.Policy)
	}
	if s.cfg.Discovery == nil || s.cfg.Prober == nil {
		return errors.New("registry: selector needs a Discovery and a Prober")
	}
	return nil
}

// markRunning claims the selector for one Run; the returned channel is
// closed when that Run returns.
func (s *Selector) markRunning() (chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runDone != nil {
		select {
		case <-s.runDone:
		default:
			return nil, errors.New("registry: selector is already running")
		}
	}
	s.runDone = make(chan struct{})
	return s.runDone, nil
}

// newCore makes the decision core for one Run.
func (s *Selector) newCore(initial *hs2.Endpoint) *core {
	c := newCore(s.cfg, initial, s.cfg.Clock.Now())
	if tr := s.cfg.Traffic; tr != nil {
		// Traffic evidence is real time, like probe timeouts; the
		// selector's clock is real in production.
		c.lastAnswer = func(ep hs2.Endpoint) time.Time { return tr.LastAnswer(s.cfg.Connector, ep.Addr()) }
	}
	if initial != nil {
		s.log.Info("adopting the published HiveServer2", "server", initial.String())
	}
	return c
}

func (s *Selector) status() Status {
	if r, ok := s.cfg.Discovery.(StatusReporter); ok {
		return r.Status()
	}
	return Status{}
}

// selectorLoop is one Run's state: the core, driven from the Run goroutine
// only, and the goroutines (discovery, probes) that feed it.
type selectorLoop struct {
	s       *Selector
	ctx     context.Context
	c       *core
	publish func(Choice)
	wg      sync.WaitGroup
	results chan probeResult

	// Discovery: the latest list wins; the loop reads it when notified.
	updMu   sync.Mutex
	updList []Candidate
	updHave bool
	updC    chan struct{}
	discErr <-chan error // nil once discovery returned without error
}

// startDiscovery runs the discovery in its own goroutine.
func (r *selectorLoop) startDiscovery() {
	r.updC = make(chan struct{}, 1)
	errc := make(chan error, 1)
	r.discErr = errc
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		errc <- r.s.cfg.Discovery.Run(r.ctx, func(list []Candidate) {
			r.updMu.Lock()
			r.updList, r.updHave = list, true
			r.updMu.Unlock()
			select {
			case r.updC <- struct{}{}:
			default:
			}
		})
	}()
}

// decide runs one step of the core: logs its events, starts its probes,
// publishes its choice. It returns when to decide again at the latest.
func (r *selectorLoop) decide(now time.Time) time.Time {
	s, c := r.s, r.c
	c.status = s.status()
	probes, pub, wake := c.step(now)
	for _, line := range c.events {
		s.log.Info(line)
	}
	c.events = c.events[:0]
	for _, ep := range probes {
		c.probeStarted(ep, now)
		r.startProbe(ep)
	}
	s.setSnapshot(c.snapshot(now))
	if pub != nil {
		if pub.Endpoint != nil {
			s.log.Info("hiveserver2 chosen", "server", pub.Endpoint.String(), "drain", pub.Drain, "prev_dead", pub.PrevDead, "reason", pub.Reason)
		} else {
			s.log.Warn("no hiveserver2 available", "drain", pub.Drain, "prev_dead", pub.PrevDead, "reason", pub.Reason)
		}
		r.publish(*pub)
	}
	return wake
}

// startProbe probes ep in its own goroutine; the result comes back on
// r.results.
func (r *selectorLoop) startProbe(ep hs2.Endpoint) {
	ctx, timeout := r.ctx, r.s.cfg.ProbeTimeout
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		start := time.Now()
		pctx, pcancel := context.WithTimeout(ctx, timeout)
		err := r.s.cfg.Prober.Probe(pctx, ep)
		// I/O deadlines taken from pctx may fire just before pctx does.
		if err != nil && ctx.Err() == nil && (pctx.Err() != nil || time.Since(start) >= timeout) {
			err = fmt.Errorf("no answer within %v: %w", timeout, err)
		}
		pcancel()
		select {
		case r.results <- probeResult{ep, err}:
		case <-ctx.Done():
		}
	}()
}

// wait feeds the core the next event (a discovery list, a probe result,
// reports, a failover request) or waits until wake. stop says Run returns,
// with err.
func (r *selectorLoop) wait(now, wake time.Time) (stop bool, err error) {
	s, c, clock := r.s, r.c, r.s.cfg.Clock
	var timer <-chan time.Time
	if !wake.IsZero() {
		timer = clock.After(max(wake.Sub(now), 0))
	}
	select {
	case <-r.ctx.Done():
		return true, nil
	case err := <-r.discErr:
		if err != nil {
			s.log.Error("discovery failed", "err", err)
			return true, err
		}
		r.discErr = nil // returned early without error: keep the last list
	case <-r.updC:
		r.updMu.Lock()
		list, ok := r.updList, r.updHave
		r.updMu.Unlock()
		if ok {
			c.setCandidates(list, s.status(), clock.Now())
		}
	case res := <-r.results:
		c.probeDone(res.ep, res.err, clock.Now())
	case <-s.reportC:
		s.mu.Lock()
		reps := s.reports
		s.reports = map[string]bool{}
		s.mu.Unlock()
		for srv := range reps {
			c.report(srv, clock.Now())
		}
	case req := <-s.failoverC:
		c.requestFailover(req)
	case <-timer:
	}
	return false, nil
}

func (s *Selector) setSnapshot(snap []CandidateHealth) {
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
}

// Snapshot returns every registered server's health as of the last decision.
func (s *Selector) Snapshot() []CandidateHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CandidateHealth, len(s.snap))
	copy(out, s.snap)
	return out
}

// Report tells the selector that a replica saw transport errors on server
// (host:port): the current server is probed at once, and fails over only if
// probes confirm it. Reports coalesce; it never blocks.
func (s *Selector) Report(server string) {
	s.mu.Lock()
	s.reports[server] = true
	s.mu.Unlock()
	select {
	case s.reportC <- struct{}{}:
	default:
	}
}

// FailoverOptions qualify a manual failover.
type FailoverOptions struct {
	// AbortRunning declares the old server dead (Choice.PrevDead): queries
	// still running there end at once. By default they may finish (drain).
	AbortRunning bool
}

// Failover moves traffic away from the current server (a planned switch:
// its running queries may finish unless opts.AbortRunning) and holds it
// down for the cooldown. It returns once another server was verified and
// published, or with an error if there is none (the current server then
// stays), if discovery has not answered yet (ErrNotSynced), or when ctx
// ends first (the request is then withdrawn: it never fires later).
func (s *Selector) Failover(ctx context.Context, reason string, opts FailoverOptions) error {
	s.mu.Lock()
	done := s.runDone
	s.mu.Unlock()
	if done == nil {
		return ErrNotRunning
	}
	req := &failoverReq{ctx: ctx, reason: reason, abort: opts.AbortRunning, reply: make(chan error, 1)}
	select {
	case s.failoverC <- req:
	case <-done:
		return ErrNotRunning
	case <-ctx.Done():
		return fmt.Errorf("registry: failover: %w", ctx.Err())
	}
	select {
	case err := <-req.reply:
		return err
	case <-done:
		return ErrNotRunning
	case <-ctx.Done():
		// The core drops a request whose ctx ended at its next step.
		s.Report("") // wake it
		return fmt.Errorf("registry: failover: %w", ctx.Err())
	}
}
