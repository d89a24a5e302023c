package gssapi

import (
	"testing"

	"go.uber.org/goleak"
)

// gokrb5's acceptor starts one process-wide replay-cache sweeper.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.VerifyAPREQ.GetReplayCache.func1.1"))
}
