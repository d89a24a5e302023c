package sqlclitest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Output is a command's output that a test can watch while the command
// runs: WaitFor returns once the output holds a string.
type Output struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

// NewOutput returns an empty Output.
func NewOutput() *Output { return &Output{notify: make(chan struct{}, 1)} }

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// WaitFor waits until the output holds s, failing t after timeout.
func (o *Output) WaitFor(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !strings.Contains(o.String(), s) {
		select {
		case <-o.notify:
		case <-deadline.C:
			t.Fatalf("output never held %q; it is:\n%s", s, o.String())
		}
	}
}
