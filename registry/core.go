package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

// Policies for choosing a new server.
const (
	PolicyOldest = "oldest" // lowest registration sequence first, as Hue does
	PolicyRandom = "random" // uniformly among verified servers
)

const (
	// maxParallelProbes bounds how many candidates are verified at once
	// while looking for a new server.
	maxParallelProbes = 3
	// discoveryGrace is how long a selector with no server waits for a
	// first discovery answer before publishing "none" with the reason.
	discoveryGrace = 10 * time.Second
	// maxReportGap is the most a reported server's probe waits after the
	// previous probe started.
	maxReportGap = 50 * time.Millisecond
)

// health is what the selector knows about one registered endpoint.
type health struct {
	cand      Candidate // the oldest registration of this endpoint
	nodes     map[string]bool
	fails     int // consecutive failed probes
	okAt      time.Time
	lastProbe time.Time
	lastErr   string
	// slowOnly: every failure of the current run timed out (a busy server
	// looks like that), none was refused or reset.
	slowOnly bool
	// refusedOnly: every failure of the current run was a refused
	// connection: the port is closed, the process is gone.
	refusedOnly bool
	downUntil   time.Time
	inflight    bool
	lastStart   time.Time
	nextProbe   time.Time // when the current server is probed next
}

func (h *health) down(now time.Time) bool { return now.Before(h.downUntil) }

type failoverReq struct {
	ctx    context.Context
	reason string
	abort  bool       // declare the old server dead
	reply  chan error // buffered
}

// core is the selector's decision logic: pure state, driven by Run (or a
// test) with explicit times, so every transition is table-testable.
type core struct {
	policy    string
	interval  time.Duration
	timeout   time.Duration
	cooldown  time.Duration
	threshold int
	fresh     time.Duration // how old a successful probe may be to switch to it
	window    time.Duration // how recent an answered call shows a server saturated
	intn      func(int) int
	// lastAnswer is passive evidence: when real traffic last got an answer
	// from a server (nil: none configured).
	lastAnswer func(hs2.Endpoint) time.Time

	started time.Time
	synced  bool
	status  Status
	order   []hs2.Endpoint // registered endpoints, oldest registration first
	hs      map[hs2.Endpoint]*health
	current *hs2.Endpoint
	lastPub *Choice
	// noneKey is what the last "no server" choice was made from; while it
	// holds, the choice is not published again: every publication is a new
	// epoch, and a changed error text is no new incident.
	noneKey  string
	failover *failoverReq
	events   []string // log lines for the driver
}

func newCore(cfg SelectorConfig, initial *hs2.Endpoint, now time.Time) *core {
	c := &core{
		policy:    cfg.Policy,
		interval:  cfg.ProbeInterval,
		timeout:   cfg.ProbeTimeout,
		cooldown:  cfg.Cooldown,
		threshold: cfg.FailThreshold,
		window:    cfg.AnswerWindow,
		intn:      rand.IntN,
		started:   now,
		hs:        map[hs2.Endpoint]*health{},
	}
	c.fresh = time.Duration(c.threshold)*c.interval + c.timeout
	if c.window <= 0 {
		c.window = DefaultAnswerWindow
	}
	if initial != nil {
		ep := *initial
		c.current = &ep
		// Probed before discovery answers: a dead adopted server must not
		// stay published just because the registry is slow.
		c.hs[ep] = &health{cand: Candidate{Endpoint: ep, Active: true}, nodes: map[string]bool{}}
		c.order = []hs2.Endpoint{ep}
	}
	return c
}

func (c *core) logf(format string, args ...any) {
	c.events = append(c.events, fmt.Sprintf(format, args...))
}

// setCandidates installs discovery's latest list.
func (c *core) setCandidates(list []Candidate, st Status, now time.Time) {
	c.synced = true
	c.status = st
	sorted := append([]Candidate(nil), list...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Seq != sorted[j].Seq {
			return sorted[i].Seq < sorted[j].Seq
		}
		return sorted[i].Node < sorted[j].Node
	})
	hs := make(map[hs2.Endpoint]*health, len(sorted))
	prev := map[hs2.Endpoint]map[string]bool{}
	var order []hs2.Endpoint
	for _, cand := range sorted {
		ep := cand.Endpoint
		h, seen := hs[ep]
		old := c.hs[ep]
		if !seen {
			h = &health{}
			if old != nil {
				*h = *old
				prev[ep] = old.nodes
			}
			h.nodes = map[string]bool{}
			h.cand = cand
			h.cand.Data = maps.Clone(cand.Data)
			hs[ep] = h
			order = append(order, ep)
		} else if cand.Active {
			h.cand.Active = true
		}
		h.nodes[cand.Node] = true
		if old != nil && len(old.nodes) > 0 && !prev[ep][cand.Node] && (h.down(now) || h.fails > 0) {
			// A new registration of a failed endpoint is a restarted
			// server: give it a fresh chance.
			h.downUntil, h.fails, h.okAt = time.Time{}, 0, time.Time{}
			c.logf("%s registered again (%s): cooldown cleared", ep, cand.Node)
		}
	}
	c.hs, c.order = hs, order
}

// probeStarted marks ep as being probed.
func (c *core) probeStarted(ep hs2.Endpoint, now time.Time) {
	if h := c.hs[ep]; h != nil {
		h.inflight = true
		h.lastStart = now
	}
}

// probeDone records a probe's outcome.
func (c *core) probeDone(ep hs2.Endpoint, err error, now time.Time) {
	h := c.hs[ep]
	if h == nil {
		return // deregistered meanwhile
	}
	h.inflight = false
	h.lastProbe = now
	isCurrent := c.current != nil && *c.current == ep
	if isCurrent {
		h.nextProbe = h.lastStart.Add(c.interval)
	}
	if err == nil {
		if h.fails > 0 && isCurrent {
			c.logf("%s answers again after %d failed probe(s)", ep, h.fails)
		}
		if isCurrent || c.routedDown(now) {
			// The current server answers again (it was only saturated), or
			// nothing (healthy) is routed: no cooldown keeps a working
			// server out.
			h.downUntil = time.Time{}
		}
		h.fails, h.okAt, h.lastErr = 0, now, ""
		return
	}
	h.fails++
	h.lastErr = err.Error()
	h.slowOnly = isTimeout(err) && (h.fails == 1 || h.slowOnly)
	h.refusedOnly = isRefused(err) && (h.fails == 1 || h.refusedOnly)
	if isCurrent && h.refusedOnly && h.fails < c.threshold {
		// Its port is closed: the process is likely gone, and every query
		// routed there fails until the switch. Confirm as soon as for a
		// reported server, not a whole interval later (that interval was
		// most of a crash's failover time when the replicas' reports had
		// all come in before the first probe).
		h.nextProbe = h.lastStart.Add(min(c.interval/4, maxReportGap))
	}
	if !isCurrent || h.fails >= c.threshold {
		h.downUntil = now.Add(c.cooldown)
		c.logf("%s failed health check (%d in a row), down until %s: %v", ep, h.fails, h.downUntil.Format(time.RFC3339Nano), err)
	} else {
		c.logf("%s failed health check (%d of %d): %v", ep, h.fails, c.threshold, err)
	}
}

// report asks for the current server to be probed now, because a replica
// saw transport errors on it; repeated reports coalesce.
func (c *core) report(server string, now time.Time) {
	if c.current == nil || (c.current.Addr() != server && c.current.String() != server) {
		return
	}
	h := c.hs[*c.current]
	if h == nil {
		return
	}
	// However many reports come in, probes stay a little apart.
	at := h.lastStart.Add(min(c.interval/4, maxReportGap))
	if at.Before(now) {
		at = now
	}
	if at.Before(h.nextProbe) {
		h.nextProbe = at
	}
}

// requestFailover starts a manual failover away from the current server.
func (c *core) requestFailover(req *failoverReq) {
	switch {
	case !c.synced:
		req.reply <- ErrNotSynced
	case c.current == nil:
		req.reply <- fmt.Errorf("registry: no current HiveServer2 to fail over from")
	case c.failover != nil:
		req.reply <- fmt.Errorf("registry: a failover is already in progress")
	default:
		c.failover = req
	}
}

// verified says ep answered a probe recently enough to switch to it.
func (c *core) verified(h *health, now time.Time) bool {
	return h.fails == 0 && !h.okAt.IsZero() && now.Sub(h.okAt) <= c.fresh && !h.down(now)
}

// eligible lists active, registered endpoints not held down, in policy
// order (registration order; shuffled for random).
func (c *core) eligible(now time.Time, exclude *hs2.Endpoint) []hs2.Endpoint {
	var out []hs2.Endpoint
	for _, ep := range c.order {
		h := c.hs[ep]
		if !h.cand.Active || h.down(now) || (exclude != nil && ep == *exclude) {
			continue
		}
		out = append(out, ep)
	}
	return out
}

// step decides: which probes to start, what to publish (nil: nothing), and
// when to be called again at the latest (zero: only on an event).
func (c *core) step(now time.Time) (probes []hs2.Endpoint, pub *Choice, wake time.Time) {
	c.dropWithdrawnFailover()
	if !c.synced {
		return c.stepUnsynced(now)
	}
	cur := c.current
	if cur == nil {
		return c.stepLook(now, "", false, false, nil, false)
	}
	h := c.hs[*cur]
	v := c.assess(*cur, h, now)
	if !v.need {
		return c.stepKeep(*cur, h, now)
	}
	if v.exclude == nil && h != nil && h.cand.Active && h.down(now) && h.slowOnly {
		return c.stepSlow(*cur, h, v, now)
	}
	return c.stepLook(now, v.why, v.drain, v.dead, v.exclude, false)
}

// dropWithdrawnFailover answers a manual failover whose caller gave up: it
// never fires later.
func (c *core) dropWithdrawnFailover() {
	if f := c.failover; f != nil && f.ctx != nil && f.ctx.Err() != nil {
		f.reply <- fmt.Errorf("registry: failover withdrawn: %w", f.ctx.Err())
		c.failover = nil
	}
}

// stepUnsynced runs while discovery has not answered: an adopted server is
// kept under watch; with none, "none" is published after the grace period.
func (c *core) stepUnsynced(now time.Time) (probes []hs2.Endpoint, pub *Choice, wake time.Time) {
	if c.current != nil {
		return c.stepAdopted(now)
	}
	if c.lastPub != nil {
		return nil, nil, time.Time{}
	}
	if now.Sub(c.started) < discoveryGrace {
		return nil, nil, c.started.Add(discoveryGrace)
	}
	reason := "no HiveServer2 known: discovery has not answered"
	if c.status.Err != "" {
		reason += ": " + c.status.Err
	}
	return nil, c.publish(nil, reason, false, false, now), time.Time{}
}

// verdict is what assess concludes about the current server.
type verdict struct {
	need        bool // a new server is needed
	why         string
	drain, dead bool          // how the old server's running queries end
	exclude     *hs2.Endpoint // set for a manual failover
}

// assess says whether the current server (h: its health, nil when it is no
// longer registered) must be replaced, and why.
func (c *core) assess(cur hs2.Endpoint, h *health, now time.Time) verdict {
	switch {
	case h == nil:
		return verdict{need: true, drain: true, why: fmt.Sprintf("%s is no longer registered (draining)", cur)}
	case !h.cand.Active:
		// HS2 Interactive's old leader closes its own sessions.
		return verdict{need: true, why: fmt.Sprintf("%s is no longer the active HiveServer2 (passive)", cur)}
	case h.down(now):
		switch {
		case h.refusedOnly:
			return verdict{need: true, dead: true,
				why: fmt.Sprintf("%s refused every health check (%d in a row, found dead): %s", cur, h.fails, h.lastErr)}
		case h.slowOnly:
			return verdict{need: true, drain: true,
				why: fmt.Sprintf("%s timed out %d health checks in a row (not known dead: draining): %s", cur, h.fails, h.lastErr)}
		}
		return verdict{need: true, why: fmt.Sprintf("%s failed %d health checks in a row: %s", cur, h.fails, h.lastErr)}
	case c.failover != nil:
		v := verdict{need: true, drain: !c.failover.abort, dead: c.failover.abort, exclude: c.current,
			why: fmt.Sprintf("manual failover from %s: %s", cur, c.failover.reason)}
		if v.dead {
			v.why += " (running queries aborted)"
		}
		return v
	}
	return verdict{}
}

// stepKeep keeps a healthy current server under watch: it is probed every
// interval, and while it is suspect the next server is verified too.
func (c *core) stepKeep(cur hs2.Endpoint, h *health, now time.Time) (probes []hs2.Endpoint, pub *Choice, wake time.Time) {
	if !h.inflight && !now.Before(h.nextProbe) {
		probes = append(probes, cur)
	} else if !h.inflight {
		wake = h.nextProbe
	}
	if h.fails > 0 {
		// Suspect: verify the next server now, so a failover does not
		// wait for it.
		if alts := c.eligible(now, &cur); len(alts) > 0 {
			a := c.hs[alts[0]]
			if !a.inflight && !c.verified(a, now) {
				probes = append(probes, alts[0])
			}
		}
	}
	return probes, nil, wake
}

// stepSlow handles a current server held down because its health checks
// only time out: it stays while nothing better is verified and real calls
// to it are answered (saturated), and is replaced once none is
// (unresponsive).
func (c *core) stepSlow(cur hs2.Endpoint, h *health, v verdict, now time.Time) (probes []hs2.Endpoint, pub *Choice, wake time.Time) {
	keep, p, w := c.keepSaturated(cur, h, now)
	if !keep {
		v.why += "; no call to it was answered for " + c.window.String() + " either (unresponsive)"
		return c.stepLook(now, v.why, v.drain, v.dead, nil, false)
	}
	// While it stays, look for a healthy server to move new queries to:
	// saturated is not healthy.
	more, pub, w2 := c.stepLook(now, v.why, v.drain, v.dead, nil, true)
	if pub != nil {
		return append(p, more...), pub, w2
	}
	return append(p, more...), nil, minTime(w, w2)
}

// keepSaturated decides whether cur, whose health checks only time out
// and which is out of cooldown only when it answers, stays routed because
// nothing better is verified: with traffic evidence, only while real calls
// to it still get answers (saturated, not hung). It returns the probes to
// start (cur keeps being probed, so an answer restores it) and when to
// decide again.
func (c *core) keepSaturated(cur hs2.Endpoint, h *health, now time.Time) (keep bool, probes []hs2.Endpoint, wake time.Time) {
	if c.lastAnswer != nil {
		last := c.lastAnswer(cur)
		if last.IsZero() || now.Sub(last) > c.window {
			return false, nil, time.Time{}
		}
		wake = last.Add(c.window + time.Millisecond)
	}
	if !h.inflight {
		next := h.lastStart.Add(c.interval)
		if !now.Before(next) {
			probes = append(probes, cur)
		} else {
			wake = minTime(wake, next)
		}
	}
	return true, probes, wake
}

// stepLook looks for a server, verifying candidates before switching to
// them; keeping says the current server stays if none is found.
func (c *core) stepLook(now time.Time, why string, drain, dead bool, exclude *hs2.Endpoint, keeping bool) (probes []hs2.Endpoint, pub *Choice, wake time.Time) {
	elig := c.eligible(now, c.current)
	chosen, probes, pending := c.pick(now, elig)
	if chosen != nil {
		pub, wake = c.switchTo(*chosen, why, drain, dead, exclude, len(elig), now)
		return probes, pub, wake
	}
	if keeping || pending > 0 {
		return probes, nil, c.nextCooldownEnd(now)
	}
	return c.stepNone(now, why, drain, dead, exclude)
}

// pick chooses a verified server by policy among elig; while there is
// none, it lists the candidates to verify (at most maxParallelProbes in
// flight: pending counts them).
func (c *core) pick(now time.Time, elig []hs2.Endpoint) (chosen *hs2.Endpoint, probes []hs2.Endpoint, pending int) {
	for _, ep := range elig {
		if c.hs[ep].inflight {
			pending++
		}
	}
	if c.policy == PolicyRandom {
		var ok []hs2.Endpoint
		for _, ep := range elig {
			if c.verified(c.hs[ep], now) {
				ok = append(ok, ep)
			}
		}
		if len(ok) > 0 {
			ep := ok[c.intn(len(ok))]
			return &ep, nil, pending
		}
	} else if len(elig) > 0 && c.verified(c.hs[elig[0]], now) {
		// Strictly oldest first: while an older candidate is unverified, wait.
		ep := elig[0]
		return &ep, nil, pending
	}
	for _, ep := range elig {
		h := c.hs[ep]
		if pending >= maxParallelProbes {
			break
		}
		if !h.inflight && !c.verified(h, now) {
			probes = append(probes, ep)
			pending++
		}
	}
	return nil, probes, pending
}

// switchTo makes chosen the current server, answering a manual failover
// (whose old server is held down), and publishes it.
func (c *core) switchTo(chosen hs2.Endpoint, why string, drain, dead bool, exclude *hs2.Endpoint, nElig int, now time.Time) (*Choice, time.Time) {
	h := c.hs[chosen]
	h.nextProbe = h.okAt.Add(c.interval)
	desc := fmt.Sprintf("chose %s (%s)", chosen, c.describe(h, nElig))
	if h.down(now) {
		desc = fmt.Sprintf("chose %s (held down after failing, but it answered its latest health check)", chosen)
		h.downUntil = time.Time{} // routed: its health checks decide from now on
	}
	if why != "" {
		desc = why + "; " + desc
	}
	if c.failover != nil {
		if old := c.current; old != nil {
			if oh := c.hs[*old]; oh != nil && exclude != nil {
				oh.downUntil = now.Add(c.cooldown)
			}
		}
		c.failover.reply <- nil
		c.failover = nil
	}
	ep := chosen
	c.current = &ep
	pub := c.publish(&ep, desc, drain, dead, now)
	return pub, minTime(h.nextProbe, c.nextCooldownEnd(now))
}

// stepNone handles "nothing to switch to": a manual failover is refused
// (the current server stays), otherwise "none" is published once per
// situation.
func (c *core) stepNone(now time.Time, why string, drain, dead bool, exclude *hs2.Endpoint) (probes []hs2.Endpoint, pub *Choice, wake time.Time) {
	// A cooldown is a preference, not a ban: rather than "none" for the
	// rest of it, route to a held-down server that has answered its latest
	// health check since failing (a hung server whose stuck probe came
	// back), verifying it first when that answer is not fresh. A manual
	// failover holds its old server down on purpose: not then.
	if c.failover == nil {
		if ep, check, waiting := c.recovered(now, exclude); ep != nil {
			pub, wake = c.switchTo(*ep, why, drain, dead, exclude, 0, now)
			return nil, pub, wake
		} else if len(check) > 0 || waiting {
			return check, nil, c.nextCooldownEnd(now)
		}
	}
	if c.failover != nil {
		c.failover.reply <- fmt.Errorf("registry: no other healthy HiveServer2 to fail over to: %s", c.unavailable(now, c.current))
		c.failover = nil
		if exclude != nil {
			return c.step(now) // the current server is fine: it stays
		}
	}
	if c.current != nil {
		// Before the routed server gives way to "none", recheck the
		// servers still held down by an earlier incident: one that answers
		// now is switched to directly, one failover instead of "none" and
		// back a moment later.
		if probes, waiting := c.recheckHeldDown(now); waiting {
			return probes, nil, c.nextCooldownEnd(now)
		}
	}
	reason := c.unavailable(now, nil)
	if why != "" {
		reason = why + "; " + reason
	}
	c.current = nil
	key := c.noneSituation()
	probes, wake = c.probeHeldDown(now)
	if c.lastPub != nil && c.lastPub.Endpoint == nil && c.noneKey == key {
		return probes, nil, minTime(wake, c.nextCooldownEnd(now))
	}
	c.noneKey = key
	return probes, c.publish(nil, reason, drain, dead, now), minTime(wake, c.nextCooldownEnd(now))
}

// recovered finds, in registration order, an active server held down after
// failing that has answered a fresh health check since. Failing that, it
// lists the ones whose answer is stale, to probe again, and says whether
// such a probe is still in flight. The excluded and current servers (what
// is being replaced) are never candidates.
func (c *core) recovered(now time.Time, exclude *hs2.Endpoint) (ep *hs2.Endpoint, check []hs2.Endpoint, waiting bool) {
	for _, e := range c.order {
		h := c.hs[e]
		if !h.cand.Active || !h.down(now) || h.fails > 0 || h.okAt.IsZero() {
			continue
		}
		if (exclude != nil && e == *exclude) || (c.current != nil && e == *c.current) {
			continue
		}
		switch {
		case h.inflight:
			waiting = true
		case now.Sub(h.okAt) <= c.fresh:
			return &e, nil, false
		default:
			check = append(check, e)
		}
	}
	return nil, check, waiting
}

// probeHeldDown keeps probing held-down servers that only timed out every
// interval while no server is routed: one that answers again (a hung
// server that recovered) is taken back at once instead of after its
// cooldown. A server that refused is gone: it comes back registered anew.
func (c *core) probeHeldDown(now time.Time) (probes []hs2.Endpoint, wake time.Time) {
	for _, ep := range c.order {
		h := c.hs[ep]
		if !h.cand.Active || !h.down(now) || h.inflight || !h.slowOnly {
			continue
		}
		next := h.lastStart.Add(c.interval)
		if now.Before(next) {
			wake = minTime(wake, next)
			continue
		}
		probes = append(probes, ep)
	}
	return probes, wake
}

// recheckHeldDown starts a probe of every other active server held down
// after probes that only timed out, whose last probe is older than a
// verification stays fresh (its failure is old news: an earlier incident);
// waiting is true while such a probe is due or in flight.
func (c *core) recheckHeldDown(now time.Time) (probes []hs2.Endpoint, waiting bool) {
	for _, ep := range c.order {
		h := c.hs[ep]
		if *c.current == ep || !h.cand.Active || !h.down(now) || !h.slowOnly {
			continue
		}
		switch {
		case h.inflight:
			waiting = true
		case now.Sub(h.lastProbe) > c.fresh:
			probes = append(probes, ep)
			waiting = true
		}
	}
	return probes, waiting
}

// routedDown reports whether no server is routed or the routed one is
// held down: then no cooldown keeps a server that answers out.
func (c *core) routedDown(now time.Time) bool {
	if c.current == nil {
		return true
	}
	h := c.hs[*c.current]
	return h == nil || h.down(now)
}

// stepAdopted runs while discovery has not answered yet, for a server
// adopted from the previous leader: it is probed like any current server,
// and if it fails, "none" is published (there is no list to choose from).
func (c *core) stepAdopted(now time.Time) (probes []hs2.Endpoint, pub *Choice, wake time.Time) {
	cur := *c.current
	h := c.hs[cur]
	if h == nil {
		return nil, nil, time.Time{}
	}
	if h.down(now) {
		// Discovery usually answers within milliseconds and then picks
		// the next server directly; "none" is for a registry that stays
		// silent.
		if grace := c.started.Add(c.fresh); now.Before(grace) {
			return nil, nil, grace
		}
		reason := fmt.Sprintf("adopted %s failed %d health checks in a row before discovery answered: %s", cur, h.fails, h.lastErr)
		c.current = nil
		c.noneKey = ""
		return nil, c.publish(nil, reason, !h.refusedOnly, h.refusedOnly, now), time.Time{}
	}
	if h.inflight {
		return nil, nil, time.Time{}
	}
	if now.Before(h.nextProbe) {
		return nil, nil, h.nextProbe
	}
	return []hs2.Endpoint{cur}, nil, time.Time{}
}

// isRefused reports whether a probe's connection was refused: nothing
// listens on the port, so the server process is gone.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// isTimeout reports whether a probe failed by running out of time rather
// than by being refused or cut off.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// noneSituation identifies what "no server" was concluded from: the
// registered servers and whether the registry itself could be read.
func (c *core) noneSituation() string {
	return fmt.Sprint(c.order, c.status.Skipped, c.status.Err != "")
}

func (c *core) describe(h *health, n int) string {
	if c.policy == PolicyRandom {
		return fmt.Sprintf("random policy, %d eligible", n)
	}
	return fmt.Sprintf("oldest registration, sequence %d", h.cand.Seq)
}

// unavailable says why no server can be chosen.
func (c *core) unavailable(now time.Time, exclude *hs2.Endpoint) string {
	src := c.status.Source
	if src == "" {
		src = "the registry"
	}
	var suffix []string
	if c.status.Skipped > 0 {
		s := fmt.Sprintf("%d registration(s) skipped as malformed or unreadable", c.status.Skipped)
		if len(c.status.Problems) > 0 {
			s += ": " + strings.Join(firstN(c.status.Problems, 3), "; ")
		}
		suffix = append(suffix, s)
	}
	if c.status.Err != "" {
		suffix = append(suffix, c.status.Err)
	}
	tail := ""
	if len(suffix) > 0 {
		tail = " (" + strings.Join(suffix, "; ") + ")"
	}
	var active, passive []*health
	for _, ep := range c.order {
		if exclude != nil && ep == *exclude {
			continue
		}
		h := c.hs[ep]
		if h.cand.Active {
			active = append(active, h)
		} else {
			passive = append(passive, h)
		}
	}
	other := ""
	if exclude != nil {
		other = " other"
	}
	switch {
	case len(active) == 0 && len(passive) == 0:
		return fmt.Sprintf("no%s HiveServer2 registered under %s%s", other, src, tail)
	case len(active) == 0:
		return fmt.Sprintf("no%s active HiveServer2 under %s: %d passive instance(s)%s", other, src, len(passive), tail)
	}
	var errs []string
	for _, h := range active {
		e := h.lastErr
		if e == "" {
			e = "not probed yet"
		}
		errs = append(errs, fmt.Sprintf("%s: %s", h.cand.Endpoint, e))
	}
	return fmt.Sprintf("all %d%s registered HiveServer2 failed health checks: %s%s", len(active), other, strings.Join(errs, "; "), tail)
}

func (c *core) publish(ep *hs2.Endpoint, reason string, drain, dead bool, now time.Time) *Choice {
	ch := &Choice{Reason: reason, Drain: drain && !dead, PrevDead: dead, Candidates: c.snapshot(now)}
	if ep != nil {
		e := *ep
		ch.Endpoint = &e
	}
	c.lastPub = ch
	return ch
}

// nextCooldownEnd is the earliest time a held-down active server becomes
// eligible again (zero if none is held down).
func (c *core) nextCooldownEnd(now time.Time) time.Time {
	var t time.Time
	for _, ep := range c.order {
		h := c.hs[ep]
		if h.cand.Active && h.down(now) {
			t = minTime(t, h.downUntil)
		}
	}
	return t
}

func (c *core) snapshot(now time.Time) []CandidateHealth {
	out := make([]CandidateHealth, 0, len(c.order))
	for _, ep := range c.order {
		h := c.hs[ep]
		cand := h.cand
		cand.Data = maps.Clone(cand.Data)
		out = append(out, CandidateHealth{
			Candidate: cand,
			Healthy:   h.fails == 0 && !h.okAt.IsZero() && !h.down(now),
			LastError: h.lastErr,
			LastProbe: h.lastProbe,
			DownUntil: h.downUntil,
		})
	}
	return out
}

// minTime is the earlier of two times, zero meaning "none".
func minTime(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(append([]string(nil), s[:n]...), fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}
