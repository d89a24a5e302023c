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

// resume ends a hang (Pause) and leaves the other faults.
func (f *faults) resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang != nil {
		close(f.hang)
		f.hang = nil
	}
}

// heal clears every fault; pacing is a setting, not a fault, and stays.
func (f *faults) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang != nil {
		close(f.hang)
		f.hang = nil
	}
	f.slow, f.fail, f.dropAfter = 0, false, 0
}

func (f *faults) get() (fail bool, dropAfter, rate int64, fetchDelay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail, f.dropAfter, f.rate, f.fetchDelay
}
