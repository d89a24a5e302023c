package query

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/routing"
)

// The engine's driver, in files by concern: run.go runs one attempt on one
// route (its HS2 life cycle is an hs2.Lease), retry.go decides whether to
// try again (a failure before HS2 accepted the statement, a re-run of a
// read that sent nothing: rerun.go), fetch.go waits for the operation and
// streams its result, emit.go writes events to the client, classify.go
// turns failures into *Error and decides which of them lose the server.

// Status polling back-off when HS2 answers GetOperationStatus at once
// (HS2 long-polls up to 5s, so with a real server this rarely matters).
const (
	minPollDelay = 5 * time.Millisecond
	maxPollDelay = 500 * time.Millisecond
	// fetchAhead is how many fetched batches wait while one is emitted.
	fetchAhead = 1
)

// queryRun is one Execute call.
type queryRun struct {
	e           *Engine
	req         Request
	connector   string
	cc          Connector
	start       time.Time
	maxRows     int64 // 0: none
	serverLimit bool  // maxRows is the replica's limit, not the client's
	read        bool  // a metadata call, or IsRead(req.Statement)
	emitFn      func(Event) error
	run         *run
	logger      *slog.Logger // made by log on first use

	emitErr      error   // the stream stopped taking events
	staleRetried bool    // a possibly stale pooled session was retried
	sentData     bool    // a schema or batch went out (or is held): never re-run
	held         []Event // STREAMING and the schema, held back (holdSchema)
	reruns       int
	server       string
	epoch        uint64
	state        State
	progress     float64
	rows         int64
}

// attempt is one try on one route.
type attempt struct {
	q    *queryRun
	cur  *routing.Current
	ctx  context.Context // the query's
	call context.Context // for HS2 calls: not cancelled with ctx

	// HS2 calls run on goroutines counted here, so that the query can end
	// at once (cancel, deadline, lost server) while a call (HS2's status
	// long poll, a slow fetch) finishes; the lease's end cuts such a call
	// short or waits for it.
	calls sync.WaitGroup
	// worker runs the attempt's calls (run): taken from the engine's
	// workers on the first call, given back once the calls are done.
	worker *worker

	pool     *hs2.Pool
	lease    *hs2.Lease // the session and operation of this attempt
	accepted bool       // HS2 accepted the statement
	released bool       // release ran (the query succeeded)
}

// streamEnd is how a successful result ends: the last batch, held back
// so that it leaves with FINISHED, and FINISHED's message.
type streamEnd struct {
	tail *hs2.Batch
	note string
}

// try runs the statement on cur's server.
func (q *queryRun) try(ctx context.Context, cur *routing.Current) (err error) {
	a := &attempt{q: q, cur: cur, ctx: ctx, call: context.WithoutCancel(ctx)}
	defer func() { a.end(err) }()
	if err := q.status(StateSubmitted, ""); err != nil {
		return err
	}
	if err := a.submit(); err != nil {
		return err
	}
	a.accepted = true
	if q.e.log.Enabled(ctx, slog.LevelDebug) {
		a.log().Debug("statement accepted")
	}
	last, err := a.stream()
	if err != nil {
		return err
	}
	// The result is complete: give the operation and session back first,
	// then send the held-back last batch and FINISHED, which thus leave
	// with the stream's end in one write instead of three (for a small
	// query most of what hiveqd adds is per-message writes and wake-ups).
	a.release()
	if err := q.emitBatch(last.tail); err != nil {
		return err
	}
	return q.finish(last.note)
}

// submit leases a session on the route's server and executes the
// statement there.
func (a *attempt) submit() error {
	q := a.q
	pool, err := q.e.pools.get(q.connector, a.cur, q.poolConfig())
	if err != nil {
		return a.classify(err)
	}
	a.pool = pool
	a.lease = hs2.NewLease(pool)
	if err := a.open(); err != nil {
		return a.classify(err)
	}
	_, err = call(a, func(ctx context.Context) (*hs2.Operation, error) {
		return a.lease.Submit(ctx, q.submit)
	})
	if err == nil {
		return nil
	}
	if q.staleSession(err) && !a.lost() && a.ctx.Err() == nil {
		// A pooled session may have died while idle (HS2 restarted,
		// a firewall dropped the connection): reset the pool, whose
		// other idle sessions likely died too, and retry once at once
		// before telling anyone the server failed.
		q.staleRetried = true
		q.e.pools.reset(poolKey{q.connector, *a.cur.Endpoint}, a.pool)
		a.log().Info("session failed before the statement was accepted; retrying on a new session", "error", err)
		return &retryable{stale: true, err: a.meta(newError(Unavailable, ReasonNoHS2, err, "HiveServer2 %s is unreachable", q.server))}
	}
	return a.classify(err)
}

// staleSession reports whether err, from the call that submits the
// request, may be a pooled session that died while idle, and the request
// may be sent again: a read (a lost answer to ExecuteStatement does not
// prove HS2 never ran it) or a metadata call, retried once per query.
func (q *queryRun) staleSession(err error) bool {
	var te *hs2.TransportError
	if !errors.As(err, &te) || !q.read || q.staleRetried {
		return false
	}
	if m := q.req.Meta; m != nil {
		return te.Call == m.Call.String()
	}
	return te.Call == "ExecuteStatement"
}

// open leases a session as call would, and also stops waiting when the
// route moves on to another server while the session is still opening:
// nothing of the statement was sent, so it runs on the new route at once
// rather than after the old server's connect or call timeout (a hung
// server the leader routed away from without declaring it dead, or one
// stuck in OpenSession during a draining failover). A move to "no server"
// (the last one draining) is nowhere better to go: the session keeps
// opening where it is, and a later route naming a server is followed.
func (a *attempt) open() error {
	done := make(chan error, 1)
	a.run(func() { done <- a.lease.Open(a.call, a.q.sessionConfig()) })
	moved := a.cur.Superseded()
	for {
		select {
		case err := <-done:
			return err
		case <-a.ctx.Done():
			return a.ctx.Err()
		case <-a.cur.Lost():
			return errLost
		case <-moved:
			select {
			case err := <-done: // opened meanwhile: use it
				return err
			default:
			}
			next, _ := a.q.e.cfg.Routes.Get(a.q.connector)
			if next == nil || next.Endpoint != nil {
				return errRouteChanged
			}
			moved = next.Superseded()
		}
	}
}

// end releases what the attempt holds unless the query's success already
// did. A server declared dead is abandoned without a word to it; otherwise
// the lease is released in the background so that the client hears of
// the cancel or failure now.
func (a *attempt) end(err error) {
	if a.released || a.lease == nil {
		return
	}
	if err == nil {
		a.release()
		return
	}
	if a.lost() {
		a.lease.Abandon()
		a.closeWork()
		return
	}
	a.q.e.background(a.release)
}

// release ends the lease with a fresh bounded context (a call still in
// flight is interrupted, then cut off at CleanupTimeout) and stops the
// attempt's worker.
func (a *attempt) release() {
	a.released = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), a.q.e.cfg.CleanupTimeout)
	defer cancel()
	a.lease.Release(ctx)
	a.closeWork()
}

// closeWork waits for the call goroutines (their lease calls have ended)
// and gives the worker back.
func (a *attempt) closeWork() {
	a.calls.Wait()
	if a.worker != nil {
		a.q.e.workers.put(a.worker)
		a.worker = nil
	}
}

// call runs one HS2 call on its own goroutine and waits for it, for the
// query's end or for the server's loss, whichever comes first. fn must
// return its results rather than store them where the caller reads.
func call[T any](a *attempt, fn func(ctx context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	a.run(func() {
		v, err := fn(a.call)
		done <- result{v, err}
	})
	var zero T
	select {
	case r := <-done:
		return r.v, r.err
	case <-a.ctx.Done():
		return zero, a.classify(a.ctx.Err())
	case <-a.cur.Lost():
		return zero, a.classify(errLost)
	}
}

// bounded runs fn under the connector's stall bound: a call the server
// does not answer within it fails (a *hs2.TransportError wrapping
// context.DeadlineExceeded), which is evidence that the server is hung.
func bounded[T any](a *attempt, fn func(ctx context.Context) (T, error)) func(ctx context.Context) (T, error) {
	return func(ctx context.Context) (T, error) {
		ctx, cancel := context.WithTimeout(ctx, a.q.cc.StallTimeout)
		defer cancel()
		return fn(ctx)
	}
}

// run runs f, counted in a.calls, on the attempt's worker goroutine when
// that is idle, else on a new one. An attempt's calls follow one another,
// so they share one goroutine and its stack (the engine keeps workers
// between queries: workers.go). A call left running (the query ended
// first) keeps the worker busy; later ones, if any, get their own
// goroutine.
func (a *attempt) run(f func()) {
	a.calls.Add(1)
	job := func() {
		defer a.calls.Done()
		f()
	}
	if a.worker == nil {
		a.worker = a.q.e.workers.get()
	}
	if !a.worker.send(job) {
		go job()
	}
}

// log is the query's logger. It is made on first use: slog's With
// formats its attributes up front, and a query that succeeds logs nothing
// at the default level.
func (q *queryRun) log() *slog.Logger {
	if q.logger == nil {
		q.logger = q.e.log.With("query_id", q.req.QueryID, "connector", q.connector, "replica", q.e.cfg.ReplicaID)
	}
	return q.logger
}

// log is the attempt's logger: the query's, with the attempt's server.
func (a *attempt) log() *slog.Logger {
	return a.q.log().With("server", a.q.server, "epoch", a.q.epoch)
}

func (q *queryRun) poolConfig() hs2.PoolConfig {
	return hs2.PoolConfig{
		Options:       q.cc.Options,
		MaxSessions:   q.cc.MaxSessions,
		MaxIdlePerKey: q.cc.MaxIdlePerKey,
		IdleTimeout:   q.cc.IdleTimeout,
		ValidateAfter: q.cc.ValidateAfter,
		Clock:         q.e.clock.Now,
	}
}

func (q *queryRun) sessionConfig() hs2.SessionConfig {
	sc := hs2.SessionConfig{Database: q.req.Database, Conf: q.req.Config}
	if q.cc.Impersonate {
		sc.ProxyUser = q.req.User
	}
	return sc
}

var errLost = errors.New("the HiveServer2 was found dead")

// lost reports whether the route's server was declared dead.
func (a *attempt) lost() bool {
	select {
	case <-a.cur.Lost():
		return true
	default:
		return false
	}
}
