package registry

import (
	"context"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

// Prober checks that a HiveServer2 answers.
type Prober interface {
	// Probe returns nil if ep serves clients; ctx carries the probe timeout.
	Probe(ctx context.Context, ep hs2.Endpoint) error
}

// DefaultSessionMaxAge is how long HS2Prober reuses a probe session.
const DefaultSessionMaxAge = 30 * time.Second

// HS2Prober probes with our HS2 client. Opening a session on a real HS2 is
// not free (it creates a SessionState and scratch directories), so at a
// probe every 200ms the prober keeps one session per server and pings it
// (GetInfo, which proves the Thrift service and the session answer); it
// opens a fresh one when there is none, when the ping fails, and every
// SessionMaxAge, which also proves new sessions are still accepted (a
// passive HS2 Interactive refuses them).
type HS2Prober struct {
	Options hs2.Options
	// SessionMaxAge bounds how long a probe session is reused; 0 means
	// DefaultSessionMaxAge, negative opens and closes a session on every
	// probe.
	SessionMaxAge time.Duration

	mu       sync.Mutex
	sessions map[hs2.Endpoint]*probeSession
}

type probeSession struct {
	s      *hs2.Session
	opened time.Time
}

// Probe implements Prober.
func (p *HS2Prober) Probe(ctx context.Context, ep hs2.Endpoint) error {
	maxAge := p.SessionMaxAge
	if maxAge == 0 {
		maxAge = DefaultSessionMaxAge
	}
	if maxAge < 0 {
		return probeFresh(ctx, ep, p.Options)
	}
	ps := p.take(ep)
	if ps != nil {
		if time.Since(ps.opened) < maxAge {
			err := ps.s.Ping(ctx)
			if err == nil {
				p.put(ep, ps, maxAge)
				return nil
			}
			if ctx.Err() != nil {
				_ = ps.s.Close(ctx) // drops the connection; no time left to be polite
				return err
			}
		}
		// Stale or failed: a fresh session decides. Closing within the
		// probe's deadline keeps a dead server from delaying the verdict.
		_ = ps.s.Close(ctx)
	}
	s, err := hs2.Open(ctx, ep, p.Options, hs2.SessionConfig{})
	if err != nil {
		return err
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close(ctx)
		return err
	}
	p.put(ep, &probeSession{s: s, opened: time.Now()}, maxAge)
	return nil
}

// take removes ep's cached session for exclusive use.
func (p *HS2Prober) take(ep hs2.Endpoint) *probeSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.sessions[ep]
	delete(p.sessions, ep)
	return ps
}

// put caches ep's session, and closes sessions of servers no longer probed
// (deregistered ones) once they are too old to be reused.
func (p *HS2Prober) put(ep hs2.Endpoint, ps *probeSession, maxAge time.Duration) {
	var drop []*probeSession
	p.mu.Lock()
	if p.sessions == nil {
		p.sessions = map[hs2.Endpoint]*probeSession{}
	}
	if old := p.sessions[ep]; old != nil {
		drop = append(drop, old)
	}
	p.sessions[ep] = ps
	for e, o := range p.sessions {
		if time.Since(o.opened) > 2*maxAge {
			drop = append(drop, o)
			delete(p.sessions, e)
		}
	}
	p.mu.Unlock()
	if len(drop) > 0 {
		// Without waiting for an answer: a gone server must not delay this
		// probe's verdict.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, o := range drop {
			_ = o.s.Close(ctx)
		}
	}
}

// CloseIdle closes the cached probe sessions; the Selector calls it when it
// stops. Later probes open new ones.
func (p *HS2Prober) CloseIdle() {
	p.mu.Lock()
	ss := p.sessions
	p.sessions = nil
	p.mu.Unlock()
	for _, ps := range ss {
		closeQuietly(ps.s)
	}
}

func probeFresh(ctx context.Context, ep hs2.Endpoint, opts hs2.Options) error {
	s, err := hs2.Open(ctx, ep, opts, hs2.SessionConfig{})
	if err != nil {
		return err
	}
	err = s.Ping(ctx)
	if cerr := s.Close(ctx); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// closeQuietly closes an idle probe session, politely but briefly.
func closeQuietly(s *hs2.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.Close(ctx)
}
