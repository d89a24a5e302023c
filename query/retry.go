package query

import (
	"context"
	"errors"
	"strconv"

	"github.com/hiveqd/hiveqd/routing"
)

// retryable marks a failure after which the statement may run again on
// another route: before HS2 accepted it, or (rerun) a read that had sent
// nothing when its server was lost.
type retryable struct {
	err *Error
	// stale: the session came from the pool and may have died idle; retry
	// at once, on the same route, before blaming the server.
	stale bool
	// rerun: HS2 had accepted the statement; running it again is a re-run.
	rerun bool
}

func (r *retryable) Error() string { return r.err.Error() }

func (q *queryRun) execute(ctx context.Context) error {
	var err error
	for n := 1; ; n++ {
		var cur *routing.Current
		cur, err = q.route()
		if err != nil {
			break
		}
		err = q.try(ctx, cur)
		var rt *retryable
		if !errors.As(err, &rt) {
			break
		}
		err = rt.err
		if n >= maxAttempts || !q.awaitRetry(ctx, cur, rt) {
			break
		}
		if rt.rerun {
			q.reruns++
			q.progress = -1
			q.log().Info("re-running the read on the new route: its server was lost before it sent anything", "lost_server", q.server, "error", rt.err)
		} else {
			q.log().Info("retrying on a new attempt", "server", q.server, "epoch", q.epoch, "error", rt.err)
		}
	}
	if err != nil {
		return q.fail(ctx, err)
	}
	return nil
}

// route looks the connector's server up.
func (q *queryRun) route() (*routing.Current, error) {
	cur, err := q.e.cfg.Routes.Get(q.connector)
	if err == nil && (cur == nil || cur.Endpoint == nil) {
		err = routing.ErrNoRoute
	}
	if err != nil {
		e := newError(Unavailable, ReasonNoHS2, err, "no HiveServer2 available for connector %q", q.connector)
		if cur != nil {
			q.epoch = cur.Epoch
			e.Metadata[MetaEpoch] = strconv.FormatUint(cur.Epoch, 10)
			if cur.Reason != "" {
				e.Message += ": " + cur.Reason
			}
		} else if errors.Is(err, routing.ErrUnknownConnector) {
			e.Message += ": no route was published for it yet"
		}
		return nil, e
	}
	q.server, q.epoch = cur.Endpoint.Addr(), cur.Epoch
	return cur, nil
}

// awaitRetry waits, within RetryWait, for a route newer than cur that
// names a server (not for a stale pooled session: the same route is
// retried at once). A re-run waits up to RerunWait instead: the client has
// received nothing yet, and the switch after a crash, seen by the query's
// own calls at once, reaches this replica only after the leader's probes
// and etcd (seconds on a loaded machine).
func (q *queryRun) awaitRetry(ctx context.Context, cur *routing.Current, rt *retryable) bool {
	if rt.stale {
		return ctx.Err() == nil
	}
	wait := q.e.cfg.RetryWait
	if rt.rerun {
		wait = max(wait, q.e.cfg.RerunWait)
	}
	bound := q.e.clock.After(wait)
	for {
		select {
		case <-cur.Superseded():
		case <-bound:
			return false
		case <-ctx.Done():
			return false
		}
		next, _ := q.e.cfg.Routes.Get(q.connector)
		if next == nil {
			return false
		}
		if next.Endpoint != nil {
			return true
		}
		cur = next // "no server" for now: wait for the one after it
	}
}
