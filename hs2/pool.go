package hs2

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PoolConfig tunes a Pool; zero fields take defaults.
type PoolConfig struct {
	Options Options
	// MaxSessions bounds the sessions open at once, idle or lent out
	// (default 16). Get waits for a slot.
	MaxSessions int
	// MaxIdlePerKey bounds idle sessions kept per SessionConfig (default 4).
	MaxIdlePerKey int
	// IdleTimeout closes sessions idle longer than this (default 5m).
	IdleTimeout time.Duration
	// ValidateAfter: a session idle longer than this is pinged before it is
	// lent out (default 30s).
	ValidateAfter time.Duration
	// Clock is the pool's time source (default time.Now).
	Clock func() time.Time
}

// PoolStats is a snapshot of a Pool.
type PoolStats struct {
	Open  int // idle + in use
	Idle  int
	InUse int
}

// Pool keeps sessions to one endpoint for reuse, keyed by SessionConfig.
// Expired idle sessions are reaped on Get and Put; there is no background
// goroutine.
type Pool struct {
	ep  Endpoint
	cfg PoolConfig

	mu      sync.Mutex
	idle    map[string][]idleSession // per key, oldest first
	nIdle   int
	inUse   map[*Session]string
	pending int // being dialled or closed: they hold a slot
	closed  bool
	wake    chan struct{} // closed (and replaced) when a slot may have freed
}

type idleSession struct {
	s     *Session
	since time.Time
}

// NewPool returns an empty pool for ep.
func NewPool(ep Endpoint, cfg PoolConfig) *Pool {
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 16
	}
	if cfg.MaxIdlePerKey <= 0 {
		cfg.MaxIdlePerKey = 4
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.ValidateAfter <= 0 {
		cfg.ValidateAfter = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	cfg.Options = cfg.Options.withDefaults()
	return &Pool{
		ep:    ep.withDefaults(),
		cfg:   cfg,
		idle:  make(map[string][]idleSession),
		inUse: make(map[*Session]string),
		wake:  make(chan struct{}),
	}
}

// Endpoint is the server the pool dials.
func (p *Pool) Endpoint() Endpoint { return p.ep }

// Stats reports the pool's current sessions.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Open: p.nIdle + len(p.inUse), Idle: p.nIdle, InUse: len(p.inUse)}
}

// poolKey identifies sessions that are interchangeable.
func poolKey(sc SessionConfig) string {
	var sb strings.Builder
	sb.WriteString(strconv.Quote(sc.ProxyUser))
	sb.WriteString(strconv.Quote(sc.Database))
	for _, k := range slices.Sorted(maps.Keys(sc.Conf)) {
		sb.WriteString(strconv.Quote(k))
		sb.WriteString(strconv.Quote(sc.Conf[k]))
	}
	return sb.String()
}

// Get lends a session configured as sc: an idle one (pinged first if it
// sat idle longer than ValidateAfter) or a new one. At MaxSessions it
// evicts an idle session of another configuration or waits for a Put,
// until ctx ends. After CloseAll it fails with ErrPoolClosed.
func (p *Pool) Get(ctx context.Context, sc SessionConfig) (*Session, error) {
	key := poolKey(sc)
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, fmt.Errorf("hs2 %s: %w", p.ep, ErrPoolClosed)
		}
		now := p.cfg.Clock()
		doomed := p.takeExpiredLocked(now)
		if is, ok := p.popIdleLocked(key); ok {
			p.inUse[is.s] = key
			p.mu.Unlock()
			p.closeSessions(doomed)
			if now.Sub(is.since) <= p.cfg.ValidateAfter {
				return is.s, nil
			}
			err := is.s.Ping(ctx)
			if err == nil {
				return is.s, nil
			}
			p.discard(is.s)
			if ctx.Err() != nil {
				return nil, err
			}
			continue // dead: try the next idle one or dial
		}
		if p.nIdle+len(p.inUse)+p.pending < p.cfg.MaxSessions {
			p.pending++
			p.mu.Unlock()
			p.closeSessions(doomed)
			return p.dial(ctx, key, sc)
		}
		if victim, ok := p.popOldestIdleLocked(); ok {
			doomed = append(doomed, victim.s)
			p.pending++
			p.mu.Unlock()
			p.closeSessions(doomed)
			continue
		}
		wake := p.wake
		p.mu.Unlock()
		p.closeSessions(doomed)
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("hs2 %s: waiting for a pooled session: %w", p.ep, ctx.Err())
		}
	}
}

// dial opens a session in a slot already counted in pending. A session
// that opens after CloseAll is lent all the same, and closed when it is
// Put back, like those lent before: it was asked for before the close,
// and a server the pool was closed for may still serve it (the last
// server, draining, finishes what it was given).
func (p *Pool) dial(ctx context.Context, key string, sc SessionConfig) (*Session, error) {
	s, err := p.open(ctx, sc)
	p.mu.Lock()
	p.pending--
	if err == nil {
		p.inUse[s] = key
	}
	p.signalLocked()
	p.mu.Unlock()
	return s, err
}

// Put returns a session lent by Get. Broken sessions, and every session
// once the pool is closed, are closed instead of kept. Sessions the pool
// did not lend are ignored.
func (p *Pool) Put(s *Session) {
	if s == nil {
		return
	}
	p.mu.Lock()
	key, ok := p.inUse[s]
	if !ok {
		p.mu.Unlock()
		return
	}
	delete(p.inUse, s)
	if p.closed || s.Broken() || s.closed.Load() {
		p.pending++
		p.mu.Unlock()
		p.closeSessions([]*Session{s})
		return
	}
	now := p.cfg.Clock()
	doomed := p.takeExpiredLocked(now)
	list := append(p.idle[key], idleSession{s: s, since: now})
	p.nIdle++
	for len(list) > p.cfg.MaxIdlePerKey {
		doomed = append(doomed, list[0].s)
		list = list[1:]
		p.nIdle--
		p.pending++
	}
	p.idle[key] = list
	p.signalLocked()
	p.mu.Unlock()
	p.closeSessions(doomed)
}

// CloseAll closes the pool: idle sessions now, lent ones when they are
// Put back. Get fails with ErrPoolClosed from then on.
func (p *Pool) CloseAll(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	var doomed []*Session
	for _, list := range p.idle {
		for _, is := range list {
			doomed = append(doomed, is.s)
		}
	}
	clear(p.idle)
	p.nIdle = 0
	p.pending += len(doomed)
	p.signalLocked()
	p.mu.Unlock()
	p.closeSessionsCtx(ctx, doomed)
}

// discard closes a session that was lent out and failed validation.
func (p *Pool) discard(s *Session) {
	p.mu.Lock()
	delete(p.inUse, s)
	p.pending++
	p.mu.Unlock()
	p.closeSessions([]*Session{s})
}

// takeExpiredLocked removes idle sessions past IdleTimeout and counts
// them as pending until closeSessions is done with them.
func (p *Pool) takeExpiredLocked(now time.Time) []*Session {
	var out []*Session
	for key, list := range p.idle {
		i := 0
		for i < len(list) && now.Sub(list[i].since) >= p.cfg.IdleTimeout {
			out = append(out, list[i].s)
			i++
		}
		if i == 0 {
			continue
		}
		if i == len(list) {
			delete(p.idle, key)
		} else {
			p.idle[key] = slices.Delete(list, 0, i)
		}
	}
	p.nIdle -= len(out)
	p.pending += len(out)
	return out
}

// popIdleLocked takes the most recently returned idle session for key.
func (p *Pool) popIdleLocked(key string) (idleSession, bool) {
	list := p.idle[key]
	if len(list) == 0 {
		return idleSession{}, false
	}
	is := list[len(list)-1]
	if len(list) == 1 {
		delete(p.idle, key)
	} else {
		p.idle[key] = list[:len(list)-1]
	}
	p.nIdle--
	return is, true
}

// popOldestIdleLocked takes the longest-idle session of any key.
func (p *Pool) popOldestIdleLocked() (idleSession, bool) {
	var bestKey string
	var best *idleSession
	for key, list := range p.idle {
		if len(list) > 0 && (best == nil || list[0].since.Before(best.since)) {
			bestKey, best = key, &list[0]
		}
	}
	if best == nil {
		return idleSession{}, false
	}
	is := *best
	if list := p.idle[bestKey]; len(list) == 1 {
		delete(p.idle, bestKey)
	} else {
		p.idle[bestKey] = list[1:]
	}
	p.nIdle--
	return is, true
}

func (p *Pool) signalLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// closeSessions closes sessions already counted in pending, bounded by
// ConnectTimeout so a dead server cannot hold up Get or Put for long.
func (p *Pool) closeSessions(ss []*Session) {
	if len(ss) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Options.ConnectTimeout)
	defer cancel()
	p.closeSessionsCtx(ctx, ss)
}

func (p *Pool) closeSessionsCtx(ctx context.Context, ss []*Session) {
	if len(ss) == 0 {
		return
	}
	for _, s := range ss {
		_ = s.Close(ctx)
	}
	p.mu.Lock()
	p.pending -= len(ss)
	p.signalLocked()
	p.mu.Unlock()
}

// open is Open, observed as one "Connect" call when Options.Observe is set:
// a refused or unanswered connection is evidence about the server too.
func (p *Pool) open(ctx context.Context, sc SessionConfig) (*Session, error) {
	obs := p.cfg.Options.Observe
	if obs == nil {
		return Open(ctx, p.ep, p.cfg.Options, sc)
	}
	done := obs(ctx, "Connect", p.ep.Addr())
	s, err := Open(ctx, p.ep, p.cfg.Options, sc)
	if done != nil {
		done(err)
	}
	return s, err
}
