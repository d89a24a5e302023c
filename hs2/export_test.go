package hs2

// SelfSignedTLS is testTLS for the external integration tests.
var SelfSignedTLS = testTLS

// InFlight is how many calls on l are running (for tests that act while one is).
func (l *Lease) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}
