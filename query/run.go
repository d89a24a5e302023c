package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/routing"
)

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
	emitFn      func(Event) error
	run         *run
	log         *slog.Logger

	emitErr      error // the stream stopped taking events
	staleRetried bool  // a possibly stale pooled session was retried
	server       string
	epoch        uint64
	state        State
	progress     float64
	rows         int64
}

// attempt is one try on one route.
type attempt struct {
	q     *queryRun
	cur   *routing.Current
	ctx   context.Context // the query's
	call  context.Context // for HS2 calls: not cancelled with ctx
	abort context.CancelCauseFunc
	log   *slog.Logger

	// HS2 calls run on goroutines counted here, so that the query can end
	// at once (cancel, deadline, failover) while a call (HS2's status long
	// poll, a slow fetch) finishes; cleanup waits for them before it
	// cancels and closes the operation on the same session.
	calls sync.WaitGroup
	// work feeds the attempt's worker goroutine (run); only the query's
	// goroutine sends, and release closes it once the calls are done.
	work       chan func()
	workerIdle atomic.Bool

	pool   *hs2.Pool
	sess   *hs2.Session   // set by a call goroutine
	op     *hs2.Operation // set by a call goroutine
	opDone bool           // HS2 reached a terminal state: no CancelOperation
	// opMu guards liveOp, the operation as release may see it while a call
	// is still in flight (a.op is only for after the calls are done).
	opMu     sync.Mutex
	liveOp   *hs2.Operation
	accepted bool // HS2 accepted the statement: it must not be re-run
	released bool // release ran (the query succeeded)
}

// streamEnd is how a successful result ends: the last batch, held back
// so that it leaves with FINISHED, and FINISHED's message.
type streamEnd struct {
	tail *hs2.Batch
	note string
}

// retryable marks a failure before HS2 accepted the statement.
type retryable struct {
	err *Error
	// stale: the session came from the pool and may have died idle; retry
	// at once, on the same route, before blaming the server.
	stale bool
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
		if n >= maxAttempts || !q.awaitRetry(ctx, cur, rt.stale) {
			break
		}
		q.log.Info("retrying on a new attempt", "server", q.server, "epoch", q.epoch, "error", rt.err)
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

// awaitRetry waits for a route newer than cur (not for a stale pooled
// session: the same route is retried at once).
func (q *queryRun) awaitRetry(ctx context.Context, cur *routing.Current, stale bool) bool {
	if stale {
		return ctx.Err() == nil
	}
	select {
	case <-cur.Superseded():
		return true
	case <-q.e.clock.After(q.e.cfg.RetryWait):
		return false
	case <-ctx.Done():
		return false
	}
}

// try runs the statement on cur's server.
func (q *queryRun) try(ctx context.Context, cur *routing.Current) (err error) {
	a := &attempt{q: q, cur: cur, ctx: ctx, log: q.log.With("server", q.server, "epoch", q.epoch)}
	a.call, a.abort = context.WithCancelCause(context.WithoutCancel(ctx))
	defer func() {
		if a.released {
			return
		}
		if a.pool == nil {
			a.abort(nil)
			return
		}
		// A query that ended normally has no call in flight: release at
		// once. Otherwise release in the background so that the client
		// hears of the cancel or failure now.
		if err == nil {
			a.release(true)
			return
		}
		q.e.background(func() { a.release(false) })
	}()
	if err := q.status(StateSubmitted, ""); err != nil {
		return err
	}
	pool, err := q.e.pools.get(q.connector, cur, q.poolConfig())
	if err != nil {
		return a.classify(err)
	}
	a.pool = pool
	// The session and operation are stored by the call goroutine: if the
	// query ends first, release still finds and returns them.
	_, err = call(a, func(ctx context.Context) (struct{}, error) {
		var err error
		a.sess, err = pool.Get(ctx, q.sessionConfig())
		return struct{}{}, err
	})
	if err != nil {
		return a.classify(err)
	}
	_, err = call(a, func(ctx context.Context) (struct{}, error) {
		var err error
		a.op, err = q.submit(ctx, a.sess)
		a.opMu.Lock()
		a.liveOp = a.op
		a.opMu.Unlock()
		return struct{}{}, err
	})
	if err != nil {
		var te *hs2.TransportError
		if errors.As(err, &te) && te.Call == "ExecuteStatement" && !q.staleRetried && !a.lost() && ctx.Err() == nil {
			// A pooled session may have died while idle (HS2 restarted,
			// a firewall dropped the connection): reset the pool, whose
			// other idle sessions likely died too, and retry once at once
			// before telling anyone the server failed.
			q.staleRetried = true
			q.e.pools.reset(poolKey{q.connector, *cur.Endpoint}, a.pool)
			a.log.Info("session failed before the statement was accepted; retrying on a new session", "error", err)
			return &retryable{stale: true, err: a.meta(newError(Unavailable, ReasonNoHS2, err, "HiveServer2 %s is unreachable", q.server))}
		}
		return a.classify(err)
	}
	a.accepted = true
	a.log.Debug("statement accepted")
	last, err := a.stream()
	if err != nil {
		return err
	}
	// The result is complete: give the operation and session back first,
	// then send the held-back last batch and FINISHED, which thus leave
	// with the stream's end in one write instead of three (for a small
	// query most of what hiveqd adds is per-message writes and wake-ups).
	a.release(true)
	a.released = true
	if err := q.emitBatch(last.tail); err != nil {
		return err
	}
	return q.finish(last.note)
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

// run runs f, counted in a.calls, on the attempt's worker goroutine when
// that is idle, else on a new one. An attempt's calls follow one another,
// so they share one goroutine and its stack: Thrift calls run deep, and
// growing a fresh stack for every HS2 call was a visible part of a small
// query's CPU. A call left running (the query ended first) keeps the
// worker busy; later ones, if any, get their own goroutine.
func (a *attempt) run(f func()) {
	a.calls.Add(1)
	job := func() {
		defer a.calls.Done()
		f()
	}
	switch {
	case a.work == nil:
		a.work = make(chan func())
		go a.worker(job)
	case a.workerIdle.Load():
		a.work <- job // the worker is at, or about to reach, its receive
	default:
		go job()
	}
}

// worker runs jobs until release closes a.work.
func (a *attempt) worker(job func()) {
	for {
		job()
		a.workerIdle.Store(true)
		var ok bool
		if job, ok = <-a.work; !ok {
			return
		}
		a.workerIdle.Store(false)
	}
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

var errLost = errors.New("the HiveServer2 was replaced after a failure")

// lost reports whether the route's server was replaced after a failure.
func (a *attempt) lost() bool {
	select {
	case <-a.cur.Lost():
		return true
	default:
		return false
	}
}

// stream waits for HS2 to finish the statement and streams its result,
// all but the last batch (see try).
func (a *attempt) stream() (streamEnd, error) {
	q := a.q
	st, err := a.wait()
	if err != nil {
		return streamEnd{}, err
	}
	if !st.HasResultSet && !a.op.HasResultSet() {
		return streamEnd{}, nil
	}
	// STREAMING goes out with the schema, one HS2 call later, so that the
	// two share a write.
	schema, err := call(a, a.op.Schema)
	if err != nil {
		return streamEnd{}, a.classify(err)
	}
	if err := q.status(StateStreaming, ""); err != nil {
		return streamEnd{}, err
	}
	if err := q.send(Event{Kind: EventSchema, Schema: schema}); err != nil {
		return streamEnd{}, err
	}
	return a.fetchAll()
}

// wait polls HS2 until the operation is terminal, emitting PENDING and
// RUNNING when the state or progress changes.
func (a *attempt) wait() (hs2.Status, error) {
	q := a.q
	delay := minPollDelay
	for {
		began := q.e.clock.Now()
		st, err := call(a, a.op.Status)
		if err != nil {
			return st, a.classify(err)
		}
		changed := false
		switch st.State {
		case hs2.StateInitialized, hs2.StatePending:
			changed, err = q.progressTo(StatePending, st.Progress)
		case hs2.StateRunning:
			changed, err = q.progressTo(StateRunning, st.Progress)
		case hs2.StateFinished:
			a.opDone = true
			q.progress = 1
			return st, nil
		case hs2.StateError:
			a.opDone = true
			if st.Err == nil {
				st.Err = &hs2.ServerError{Server: q.server, Call: "GetOperationStatus", Message: "operation failed"}
			}
			return st, a.classify(st.Err)
		case hs2.StateCanceled:
			a.opDone = true
			return st, a.meta(newError(Canceled, ReasonCancelled, nil, "HiveServer2 %s cancelled the query", q.server))
		case hs2.StateTimedOut:
			a.opDone = true
			return st, a.meta(newError(DeadlineExceeded, ReasonDeadline, nil, "the query timed out on HiveServer2 %s", q.server))
		default: // CLOSED, UNKNOWN
			a.opDone = true
			return st, a.meta(newError(Failed, ReasonQueryFailed, nil, "HiveServer2 %s reports the operation %s", q.server, st.State))
		}
		if err != nil {
			return st, err
		}
		if changed {
			delay = minPollDelay
		} else {
			delay = min(delay*2, maxPollDelay)
		}
		wait := delay - q.e.clock.Now().Sub(began)
		if wait <= 0 {
			wait = 0
		}
		select {
		case <-q.e.clock.After(wait):
		case <-a.ctx.Done():
			return st, a.classify(a.ctx.Err())
		case <-a.cur.Lost():
			return st, a.classify(errLost)
		}
	}
}

type fetched struct {
	b     *hs2.Batch
	err   error
	asked int // rows the request asked for
}

// fetchAll streams the result: a fetcher goroutine reads batch k+1 while
// batch k is emitted; a blocked emit blocks the fetcher (backpressure).
// A batch shorter than asked for is likely the last: it is held until the
// next answer says whether it is, and the last one is returned, not sent.
func (a *attempt) fetchAll() (streamEnd, error) {
	q := a.q
	results := make(chan fetched, fetchAhead)
	quit := make(chan struct{})
	a.run(func() { a.fetcher(results, quit) })
	defer close(quit) // release waits for the fetcher to see it
	var held *hs2.Batch
	for {
		var r fetched
		var ok bool
		select {
		case r, ok = <-results:
		case <-a.ctx.Done():
			return streamEnd{}, a.classify(a.ctx.Err())
		case <-a.cur.Lost():
			return streamEnd{}, a.classify(errLost)
		}
		if !ok { // the fetcher stopped at maxRows
			return streamEnd{tail: held, note: q.limitNote()}, nil
		}
		if r.err == nil && r.b.Rows == 0 {
			return streamEnd{tail: held}, nil
		}
		// Not the end: what was held goes out now.
		if err := q.emitBatch(held); err != nil {
			return streamEnd{}, err
		}
		held = nil
		if r.err != nil {
			return streamEnd{}, a.classify(r.err)
		}
		b := r.b
		if q.maxRows > 0 && q.rows+int64(b.Rows) > q.maxRows {
			b = subBatch(b, 0, int(q.maxRows-q.rows))
		}
		if b.Rows < r.asked {
			held = b
			continue
		}
		if err := q.emitBatch(b); err != nil {
			return streamEnd{}, err
		}
	}
}

// emitBatch sends b (nil: nothing) in slices of at most the batch limits.
func (q *queryRun) emitBatch(b *hs2.Batch) error {
	if b == nil {
		return nil
	}
	batchRows, batchBytes := q.batchLimits()
	return sliceBatch(b, batchRows, batchBytes, func(sb *hs2.Batch) error {
		if err := q.send(Event{Kind: EventBatch, Batch: sb}); err != nil {
			return err
		}
		q.rows += int64(sb.Rows)
		return nil
	})
}

// fetcher reads batches until the end, maxRows, an error or quit.
func (a *attempt) fetcher(out chan<- fetched, quit <-chan struct{}) {
	defer close(out)
	q := a.q
	limits := q.e.limits
	rows := int64(0)
	size := q.req.FetchSize
	// ahead is the size of the request sent ahead of the one being read
	// (0: none). Once a batch came back full, each fetch sends the request
	// for the batch after it first (hs2 FetchAhead), so that HS2 builds
	// batch k+1 while batch k is decoded here; a short first batch (a small
	// result) costs no extra request.
	ahead := 0
	pipeline := false
	for {
		select {
		case <-quit:
			return
		default:
		}
		n := size
		if q.maxRows > 0 {
			left := q.maxRows - rows
			if left <= 0 {
				return
			}
			n = int(min(int64(n), left))
		}
		asked := n
		if ahead > 0 {
			asked = ahead // what the request ahead asked for
		}
		next := 0
		if pipeline {
			next = size
			if q.maxRows > 0 {
				next = int(max(min(int64(next), q.maxRows-rows-int64(asked)), 0))
			}
		}
		b, err := a.op.FetchAhead(a.call, n, next)
		ahead = next
		select {
		case out <- fetched{b, err, asked}:
		case <-quit:
			return
		}
		if err != nil || b.Rows == 0 {
			return
		}
		if rows == 0 {
			pipeline = b.Rows >= asked
		}
		rows += int64(b.Rows)
		// Wide rows: ask for fewer next time so one answer stays near
		// MaxFetchBytes (a few batches per stream are held at once).
		fixed, variable := rowWidth(b.Columns)
		if bytes := batchBytes(b.Columns, variable, fixed, 0, b.Rows); bytes > 0 {
			perRow := max(bytes/b.Rows, 1)
			size = max(min(q.req.FetchSize, limits.MaxFetchBytes/perRow), 1)
		}
	}
}

// limitNote is FINISHED's message when maxRows cut the result.
func (q *queryRun) limitNote() string {
	if q.serverLimit {
		return fmt.Sprintf("result truncated at this replica's limit of %d rows", q.maxRows)
	}
	return ""
}

// release gives back what the attempt holds once its calls are done: every
// exit path cancels the operation if it still runs, closes it and returns
// the session to the pool (which closes it if broken), with a fresh
// bounded context. ended says the query finished normally: its calls
// have all returned.
func (a *attempt) release(ended bool) {
	q := a.q
	timeout := q.e.cfg.CleanupTimeout
	lost := a.lost()
	if lost {
		a.abort(errLost) // the server failed: do not wait on its calls
	}
	idle := make(chan struct{})
	if ended && !lost {
		// No call is in flight, though the goroutine of the last one may
		// not be done yet: wait for that, no more (interrupting here, a new
		// connection to HS2 and a CancelOperation, was most of a small
		// query's cost).
		a.calls.Wait()
		close(idle)
	} else {
		go func() {
			a.calls.Wait()
			close(idle)
		}()
	}
	if a.work != nil {
		defer close(a.work) // after the calls: nothing sends any more
	}
	a.opMu.Lock()
	op := a.liveOp
	a.opMu.Unlock()
	if op != nil && !lost && !ended {
		select {
		case <-idle:
		default:
			// A call is in flight, most likely a status long poll that HS2
			// may hold for seconds: cancel over another connection so the
			// query stops on HS2 now; the poll then returns CANCELED.
			ictx, cancel := context.WithTimeout(context.Background(), timeout)
			if err := op.Interrupt(ictx); err != nil {
				a.log.Debug("interrupting the operation", "error", err)
			}
			cancel()
		}
	}
	select {
	case <-idle:
	default:
		select {
		case <-idle:
		case <-q.e.clock.After(timeout):
			a.log.Warn("HiveServer2 call still in flight at cleanup; dropping its connection", "waited", timeout)
			a.abort(errors.New("cleanup timeout"))
			<-idle
		}
	}
	a.abort(nil)
	if a.sess == nil {
		return
	}
	if lost {
		// Closing with an ended context drops the connection without a
		// call; HS2 ends a binary session with its connection.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_ = a.sess.Close(done)
		a.pool.Put(a.sess)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), timeout)
	defer cancel()
	if a.op != nil && !a.sess.Broken() {
		if !a.opDone {
			if err := a.op.Cancel(ctx); err != nil {
				a.log.Debug("cancelling the operation", "error", err)
			}
		}
		if err := a.op.Close(ctx); err != nil {
			a.log.Debug("closing the operation", "error", err)
		}
	}
	if a.sess.Broken() {
		// Over HTTP the session outlives the failed call: Close ends it.
		_ = a.sess.Close(ctx)
	}
	a.pool.Put(a.sess)
}

// classify turns an error from the HS2 client (or the attempt's own
// cancellation) into an *Error; failures before HS2 accepted the statement
// that another server may not have come back as *retryable.
func (a *attempt) classify(err error) error {
	q := a.q
	var qe *Error
	if errors.As(err, &qe) {
		return err
	}
	if a.lost() {
		return a.lostError(err)
	}
	if a.ctx.Err() != nil {
		return a.meta(ctxError(a.ctx, "while running the query"))
	}
	if errors.Is(err, errRouteChanged) || errors.Is(err, hs2.ErrPoolClosed) {
		// Switched between routing and dialling: nothing ran.
		return &retryable{err: a.meta(newError(Unavailable, ReasonNoHS2, err, "the route of connector %q changed while the query was submitted", q.connector))}
	}
	if errors.Is(err, errShutdown) {
		return a.meta(newError(Unavailable, ReasonShuttingDown, err, "%s", errShutdown))
	}
	var se *hs2.ServerError
	if errors.As(err, &se) {
		e := fromServerError(se, a.metadata())
		if se.Call == "OpenSession" && q.req.Database != "" && se.SQLState == "" && strings.Contains(se.Message, "does not exist") {
			// HS2 refuses "use:database" for a missing database with a
			// bare HiveSQLException: no SQLSTATE, no code, only the text.
			e.Code, e.Reason = NotFound, ReasonNotFound
		}
		return e
	}
	var ae *hs2.AuthError
	if errors.As(err, &ae) {
		return a.meta(newError(Unavailable, ReasonAuthFailed, err, "HiveServer2 %s refused hiveqd's credentials for connector %q", q.server, q.connector))
	}
	if errors.Is(err, hs2.ErrUnsupported) {
		return a.meta(newError(Unavailable, ReasonUnsupportedHS2, err, "cannot talk to HiveServer2 %s: %v", q.server, err))
	}
	var te *hs2.TransportError
	if errors.As(err, &te) {
		if q.e.cfg.Reporter != nil {
			q.e.cfg.Reporter.ReportFailure(q.connector, q.epoch, q.server, err)
		}
		a.log.Warn("HiveServer2 transport failure", "accepted", a.accepted, "error", err)
		if a.accepted {
			// The connection usually breaks a moment before the failover
			// is published: wait briefly for it, so that the error names
			// the server to retry on.
			select {
			case <-a.cur.Superseded():
				return a.lostError(err)
			case <-a.ctx.Done():
			case <-q.e.clock.After(q.e.cfg.RetryWait):
			}
			return a.meta(newError(Aborted, ReasonHS2Lost, err, "the connection to HiveServer2 %s failed while the query ran; the query was lost: retry it", q.server))
		}
		return &retryable{err: a.meta(newError(Unavailable, ReasonNoHS2, err, "HiveServer2 %s is unreachable", q.server))}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The call context ended without the query's: a call timeout.
		return a.meta(newError(Unavailable, ReasonNoHS2, err, "HiveServer2 %s did not answer", q.server))
	}
	return a.meta(newError(Internal, ReasonInternal, err, "query failed: %v", err))
}

// lostError is the Aborted error of a query whose server failed over.
func (a *attempt) lostError(cause error) *Error {
	q := a.q
	e := newError(Aborted, ReasonHS2Lost, cause, "HiveServer2 %s was replaced", q.server)
	if next := a.cur.Next(); next != nil {
		if next.Endpoint != nil {
			e.Message += " by " + next.Endpoint.Addr()
			e.Metadata[MetaNewServer] = next.Endpoint.Addr()
		}
		e.Message += " at epoch " + strconv.FormatUint(next.Epoch, 10)
		e.Metadata[MetaNewEpoch] = strconv.FormatUint(next.Epoch, 10)
	}
	e.Message += "; the query was lost: retry it"
	return a.meta(e)
}

func (a *attempt) metadata() map[string]string {
	q := a.q
	return map[string]string{
		MetaServer:    q.server,
		MetaConnector: q.connector,
		MetaEpoch:     strconv.FormatUint(q.epoch, 10),
		MetaQueryID:   q.req.QueryID,
	}
}

// meta adds the attempt's server, connector and epoch to e.
func (a *attempt) meta(e *Error) *Error {
	for k, v := range a.metadata() {
		if _, ok := e.Metadata[k]; !ok {
			e.Metadata[k] = v
		}
	}
	return e
}

// status emits a Status in state s.
func (q *queryRun) status(s State, msg string) error {
	q.state = s
	q.run.setState(s)
	return q.send(Event{Kind: EventStatus, Status: Status{
		QueryID:   q.req.QueryID,
		State:     s,
		Server:    q.server,
		Epoch:     q.epoch,
		ReplicaID: q.e.cfg.ReplicaID,
		Connector: q.connector,
		Progress:  q.progress,
		Rows:      q.rows,
		Elapsed:   q.e.clock.Now().Sub(q.start),
		Message:   strings.ToValidUTF8(msg, "\uFFFD"),
	}})
}

// progressTo emits a status when the state or progress moved.
func (q *queryRun) progressTo(s State, progress float64) (bool, error) {
	if s == q.state && progress == q.progress {
		return false, nil
	}
	q.progress = progress
	return true, q.status(s, "")
}

// send emits ev; once emit failed, the stream is considered unwritable.
func (q *queryRun) send(ev Event) error {
	if q.emitErr != nil {
		return q.emitErr
	}
	if err := q.emitFn(ev); err != nil {
		var qe *Error
		if !errors.As(err, &qe) {
			qe = newError(Canceled, ReasonCancelled, err, "the stream to the client ended")
		}
		q.emitErr = qe
		return qe
	}
	return nil
}

func (q *queryRun) finish(msg string) error {
	if err := q.status(StateFinished, msg); err != nil {
		return err
	}
	q.log.Info("query finished", "server", q.server, "epoch", q.epoch, "rows", q.rows, "elapsed", q.e.clock.Now().Sub(q.start))
	return nil
}

// fail reports err in a last status (when the stream still takes events)
// and returns it as an *Error.
func (q *queryRun) fail(ctx context.Context, err error) error {
	qe := AsError(err)
	if qe.Metadata == nil {
		qe.Metadata = map[string]string{}
	}
	if _, ok := qe.Metadata[MetaConnector]; !ok {
		qe.Metadata[MetaConnector] = q.connector
	}
	if _, ok := qe.Metadata[MetaQueryID]; !ok {
		qe.Metadata[MetaQueryID] = q.req.QueryID
	}
	state := StateFailed
	if qe.Code == Canceled || qe.Code == DeadlineExceeded || errors.Is(qe, errShutdown) {
		state = StateCanceled
	}
	if q.emitErr == nil {
		_ = q.status(state, qe.Message)
	}
	q.run.setState(state)
	level := slog.LevelWarn
	if state == StateCanceled || qe.Code == InvalidArgument || qe.Code == NotFound {
		level = slog.LevelInfo
	}
	q.log.Log(ctx, level, "query ended", "state", state, "code", qe.Code, "reason", qe.Reason, "server", q.server, "epoch", q.epoch, "rows", q.rows, "error", qe.Error())
	return qe
}
