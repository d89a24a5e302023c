package hs2sim

import (
	"context"
	"sync"
	"time"
)

// faults is the injectable misbehaviour, shared by every connection.
type faults struct {
	mu         sync.Mutex
	hang       chan struct{} // non-nil while hung; closed by heal
	slow       time.Duration
	fail       bool
	dropAfter  int64
	rate       int64 // synthetic rows per second, 0 = unpaced
	fetchDelay time.Duration
	// holdOpen, non-nil while set, holds every OpenSession (other calls
	// go on) until heal closes it; heldOpens counts those waiting.
	holdOpen  chan struct{}
	heldOpens int
}

// gate runs before every call: it blocks while the server hangs, then
// waits out the slow delay. It fails when ctx (the caller's connection or
// request) or stop (the server) ends first.
func (f *faults) gate(ctx context.Context, stop <-chan struct{}) error {
	f.mu.Lock()
	hang, slow := f.hang, f.slow
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return context.Canceled
		}
	}
	return sleep(ctx, stop, slow)
}

// sleep waits d unless ctx or stop ends first.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return context.Canceled
	}
}

func (f *faults) setHang() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang == nil {
		f.hang = make(chan struct{})
	}
}

// setHoldOpen makes OpenSession wait until heal: a server whose session
// start is stuck (HS2 runs session hooks and metastore calls there) while
// calls on open sessions still work.
func (f *faults) setHoldOpen() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holdOpen == nil {
		f.holdOpen = make(chan struct{})
	}
}

// openGate runs in OpenSession after gate: it blocks while OpenSession is
// held. It fails when ctx or stop ends first.
func (f *faults) openGate(ctx context.Context, stop <-chan struct{}) error {
	f.mu.Lock()
	hold := f.holdOpen
	if hold == nil {
		f.mu.Unlock()
		return nil
	}
	f.heldOpens++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.heldOpens--
		f.mu.Unlock()
	}()
	select {
	case <-hold:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return context.Canceled
	}
}

// held is the number of OpenSession calls held now.
func (f *faults) held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heldOpens
}

// pause stalls every call for d, then lets them all go on, like a JVM's
// stop-the-world GC pause: connections stay open, nothing is answered
// meanwhile, and nothing is lost. A pause during a hang ends with it.
func (f *faults) pause(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang != nil {
		return // already hung or paused
	}
	ch := make(chan struct{})
	f.hang = ch
	time.AfterFunc(d, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.hang == ch {
			close(ch)
			f.hang = nil
		}
	})
}

// heal clears every fault; pacing is a setting, not a fault, and stays.
func (f *faults) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang != nil {
		close(f.hang)
		f.hang = nil
	}
	if f.holdOpen != nil {
		close(f.holdOpen)
		f.holdOpen = nil
	}
	f.slow, f.fail, f.dropAfter = 0, false, 0
}

func (f *faults) get() (fail bool, dropAfter, rate int64, fetchDelay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail, f.dropAfter, f.rate, f.fetchDelay
}
