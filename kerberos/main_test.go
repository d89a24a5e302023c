package kerberos_test

import (
	"testing"

	"go.uber.org/goleak"
)

// gokrb5's acceptor (used by a test as the service side) starts one
// process-wide replay-cache sweeper; the identity itself starts nothing.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.VerifyAPREQ.GetReplayCache.func1.1"))
}
