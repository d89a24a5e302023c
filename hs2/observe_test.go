package hs2_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
)

type observedCall struct {
	call, server string
	err          error
	ctxVal       any
}

type ctxKey struct{}

// TestObserve checks that Options.Observe sees every Thrift call with the
// caller's context and the error as the caller gets it.
func TestObserve(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	var mu sync.Mutex
	var calls []observedCall
	var second int
	opts := hs2.Options{Observe: hs2.Observers(nil, func(ctx context.Context, call, server string) func(error) {
		return func(err error) {
			mu.Lock()
			calls = append(calls, observedCall{call, server, err, ctx.Value(ctxKey{})})
			mu.Unlock()
		}
	}, func(context.Context, string, string) func(error) {
		second++ // the second observer runs too (under the session's lock)
		return nil
	})}
	ctx := context.WithValue(context.Background(), ctxKey{}, "q1")
	sess, err := hs2.Open(ctx, s.endpoint(t), opts, hs2.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	op, err := sess.Execute(ctx, "SELECT * FROM employees", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Fetch(ctx, 100); err != nil {
		t.Fatal(err)
	}
	_ = op.Close(ctx)
	_, execErr := sess.Execute(ctx, "SELECT * FROM no_such_table", nil)
	if err := sess.Close(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	byName := map[string]observedCall{}
	for _, c := range calls {
		if c.server != s.Addr() || c.ctxVal != "q1" {
			t.Errorf("%s: server %q, context value %v", c.call, c.server, c.ctxVal)
		}
		if _, seen := byName[c.call]; !seen || c.err != nil {
			byName[c.call] = c
		}
	}
	for _, name := range []string{"OpenSession", "ExecuteStatement", "GetOperationStatus", "FetchResults", "CloseOperation", "CloseSession"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("%s not observed; saw %v", name, calls)
		}
	}
	var se *hs2.ServerError
	if !errors.As(byName["ExecuteStatement"].err, &se) || !errors.As(execErr, &se) {
		t.Errorf("failed ExecuteStatement observed as %v, returned %v; want *ServerError", byName["ExecuteStatement"].err, execErr)
	}
	if second != len(calls) {
		t.Errorf("second observer saw %d calls, first %d", second, len(calls))
	}
	if hs2.Observers(nil, nil) != nil {
		t.Error("Observers of nothing is not nil")
	}
}
