package hs2

import (
	"context"

	"github.com/beltran/gohive/hiveserver"
)

// ObserveFunc is called as a Thrift call to server (host:port) starts, with
// the caller's context (which carries its trace span) and the method name
// ("OpenSession", "ExecuteStatement", "GetOperationStatus", "FetchResults",
// ...). The function it returns is called once the call ends, with nil, a
// *ServerError (an error status or exception from HS2), an *AuthError or a
// *TransportError. Both must be quick: they run on the call's path.
type ObserveFunc func(ctx context.Context, call, server string) (done func(error))

// Observers combines observers, skipping nil ones; it returns nil if none
// is left.
func Observers(fs ...ObserveFunc) ObserveFunc {
	var live []ObserveFunc
	for _, f := range fs {
		if f != nil {
			live = append(live, f)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return func(ctx context.Context, call, server string) func(error) {
		dones := make([]func(error), len(live))
		for i, f := range live {
			dones[i] = f(ctx, call, server)
		}
		return func(err error) {
			for _, d := range dones {
				if d != nil {
					d(err)
				}
			}
		}
	}
}

// observed wraps one call's Thrift round trip in obs. The error obs sees
// is classified as the caller will classify it.
func observed(obs ObserveFunc, server, name string, fn func(context.Context) (*hiveserver.TStatus, error)) func(context.Context) (*hiveserver.TStatus, error) {
	return func(ctx context.Context) (*hiveserver.TStatus, error) {
		done := obs(ctx, name, server)
		st, err := fn(ctx)
		if done != nil {
			var out error
			if err != nil {
				out, _ = callError(ctx, server, name, err)
			} else {
				out = statusError(server, name, st)
			}
			done(out)
		}
		return st, err
	}
}
