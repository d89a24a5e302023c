package query

import (
	"context"
	"maps"

	"github.com/hiveqd/hiveqd/hs2"
)

// TrafficObserver is told about every HS2 call a query makes, so that health can tell a saturated
// server (calls still complete) from an unresponsive one (nothing completes).
type TrafficObserver interface {
	// CallStarted is called before an HS2 call to server (host:port) for connector; the returned
	// func is called once when the call returns, with its error (nil or an *hs2.ServerError means
	// the server answered).
	CallStarted(connector, server string) (done func(err error))
}

// observed returns connectors whose HS2 options also report every call
// (connecting, OpenSession, status polls, fetches, closes) to t. The hook
// rides on hs2.Options.Observe, so it costs one interface call per HS2
// call and nothing when t is nil. An error wrapping context.Canceled is
// the query giving up on a call (cancelled, ended), not the server failing.
func observed(cs map[string]Connector, t TrafficObserver) map[string]Connector {
	if t == nil {
		return cs
	}
	out := maps.Clone(cs)
	for name, c := range out {
		c.Options.Observe = hs2.Observers(c.Options.Observe, func(_ context.Context, _, server string) func(error) {
			return t.CallStarted(name, server)
		})
		out[name] = c
	}
	return out
}
