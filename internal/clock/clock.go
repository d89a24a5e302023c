// Package clock is the wall clock that packages with an injectable clock
// (their own small Clock interface: Now and After) use by default.
package clock

import "time"

// Real is the wall clock.
type Real struct{}

// Now is time.Now.
func (Real) Now() time.Time { return time.Now() }

// After is time.After.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
