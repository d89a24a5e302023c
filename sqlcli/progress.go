package sqlcli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// progress reports one statement's state on stderr.
type progress interface {
	status(s *hiveqv1.QueryStatus)
	rows(n int64)
	// clear removes what is on the screen before results are written.
	clear()
	close()
}

// newProgress picks the display: none with --silent, plain lines with
// --progress, one line updated in place on a terminal, none otherwise.
func (r *runner) newProgress(start time.Time) progress {
	switch {
	case r.opts.silent:
		return noProgress{}
	case r.opts.progress:
		return &lineProgress{w: r.stderr}
	case r.live:
		return newLiveProgress(r.stderr, r.now, start, liveRefresh)
	}
	return noProgress{}
}

type noProgress struct{}

func (noProgress) status(*hiveqv1.QueryStatus) {}
func (noProgress) rows(int64)                  {}
func (noProgress) clear()                      {}
func (noProgress) close()                      {}

// clearingWriter clears the progress line before results go out.
type clearingWriter struct {
	w io.Writer
	p progress
}

func (c clearingWriter) Write(b []byte) (int, error) {
	c.p.clear()
	return c.w.Write(b)
}

// lineProgress prints state changes and whole-percent progress steps as
// plain lines, beeline-style ("INFO  : ..."), for logs and pipes.
type lineProgress struct {
	w     io.Writer
	state hiveqv1.QueryState
	pct   int
}

func (p *lineProgress) rows(int64) {}
func (p *lineProgress) clear()     {}
func (p *lineProgress) close()     {}

func (p *lineProgress) status(s *hiveqv1.QueryStatus) {
	pct := -1
	if s.GetProgress() >= 0 {
		pct = int(s.GetProgress()*100 + 1e-9)
	}
	if s.GetState() == p.state {
		if pct >= 0 && pct != p.pct {
			fmt.Fprintf(p.w, "INFO  : query %s %s %d%%\n", s.GetQueryId(), stateName(s.GetState()), pct)
			p.pct = pct
		}
		return
	}
	p.state, p.pct = s.GetState(), pct
	var b strings.Builder
	fmt.Fprintf(&b, "INFO  : query %s %s", s.GetQueryId(), stateName(s.GetState()))
	if s.GetServer() != "" {
		fmt.Fprintf(&b, " on %s (connector %s, epoch %d, replica %s)", s.GetServer(), s.GetConnector(), s.GetEpoch(), s.GetReplicaId())
	}
	if pct >= 0 {
		fmt.Fprintf(&b, " %d%%", pct)
	}
	switch s.GetState() {
	case hiveqv1.QueryState_QUERY_STATE_FINISHED, hiveqv1.QueryState_QUERY_STATE_FAILED, hiveqv1.QueryState_QUERY_STATE_CANCELED:
		fmt.Fprintf(&b, ", %s", plural(s.GetRows(), "row"))
		if d := s.GetElapsed(); d != nil {
			fmt.Fprintf(&b, " in %.3f s", d.AsDuration().Seconds())
		}
	}
	if m := s.GetMessage(); m != "" {
		fmt.Fprintf(&b, ": %s", m)
	}
	fmt.Fprintln(p.w, b.String())
}

// liveRefresh is how often the live line redraws (the elapsed time moves
// without events).
const liveRefresh = 200 * time.Millisecond

// liveProgress is one line on a terminal, redrawn in place:
//
//	RUNNING on hs2-a:10000  12.3s  45%
//	STREAMING on hs2-a:10000  14.0s  120000 rows  85714 rows/s
//
// It is erased before results are printed and when the statement ends.
type liveProgress struct {
	w     io.Writer
	now   func() time.Time
	start time.Time
	stop  chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	state    string
	server   string
	pct      float64
	n        int64
	firstRow time.Time
	shown    bool
	closed   bool
}

func newLiveProgress(w io.Writer, now func() time.Time, start time.Time, every time.Duration) *liveProgress {
	p := &liveProgress{w: w, now: now, start: start, state: "SUBMITTED", pct: -1, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop(every)
	return p
}

func (p *liveProgress) loop(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.draw()
			p.mu.Unlock()
		}
	}
}

func (p *liveProgress) status(s *hiveqv1.QueryStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = stateName(s.GetState())
	if s.GetServer() != "" {
		p.server = s.GetServer()
	}
	p.pct = s.GetProgress()
	p.draw()
}

func (p *liveProgress) rows(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 && n > 0 {
		p.firstRow = p.now()
	}
	p.n = n
}

// line is the text shown; p.mu is held.
func (p *liveProgress) line() string {
	now := p.now()
	var b strings.Builder
	b.WriteString(p.state)
	if p.server != "" {
		b.WriteString(" on " + p.server)
	}
	fmt.Fprintf(&b, "  %.1fs", now.Sub(p.start).Seconds())
	if p.n > 0 {
		fmt.Fprintf(&b, "  %s", plural(p.n, "row"))
		if d := now.Sub(p.firstRow).Seconds(); d >= 0.5 {
			fmt.Fprintf(&b, "  %.0f rows/s", float64(p.n)/d)
		}
	} else if p.pct >= 0 && p.pct < 1 {
		fmt.Fprintf(&b, "  %d%%", int(p.pct*100))
	}
	return b.String()
}

// draw rewrites the line; p.mu is held.
func (p *liveProgress) draw() {
	if p.closed {
		return
	}
	s := p.line()
	fmt.Fprintf(p.w, "\r%s\x1b[K", s)
	p.shown = true
}

func (p *liveProgress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.erase()
}

// erase removes the line; p.mu is held.
func (p *liveProgress) erase() {
	if p.shown {
		io.WriteString(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// close stops the redraws and erases the line; it may be called twice.
func (p *liveProgress) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.erase()
	p.mu.Unlock()
	close(p.stop)
	<-p.done
}
