package hs2

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrLeaseEnded is returned by calls on a Lease after Release or Abandon.
var ErrLeaseEnded = errors.New("hs2: lease ended")

// Lease owns one statement's HiveServer2 life cycle on one server, the way
// etcd's concurrency.Session owns its lease: a session borrowed from a
// Pool, the operation the statement runs as, the calls on both, and their
// end. Exactly one of Release or Abandon ends it, on every path; both are
// safe while a call is still in flight (a status long poll, a slow fetch)
// and while the session is still being opened: what arrives later is
// released when it does.
//
// Calls are meant to follow one another (a session carries one call at a
// time); the lease only tracks them so that its end can wait for, or cut
// short, the one in flight.
type Lease struct {
	pool *Pool

	mu sync.Mutex
	// calls cancel the contexts of the calls in flight: Abandon, and
	// Release cut short, cancel them so that they return at once. (A map
	// per lease, not a context per call bound to one of the lease's: that
	// cost a goroutine-safe AfterFunc registration per HS2 call.)
	calls    map[uint64]context.CancelCauseFunc
	callID   uint64
	sess     *Session
	op       *Operation
	opDone   bool          // HS2 reported a terminal state: no CancelOperation
	ended    bool          // Release or Abandon ran
	abandon  bool          // ... and it was Abandon
	inflight int           // calls running
	idle     chan struct{} // closed when inflight drops to 0 after ended
}

// NewLease returns a lease on pool that holds nothing yet; Open borrows its
// session.
func NewLease(pool *Pool) *Lease {
	return &Lease{pool: pool}
}

// begin counts a call and gives it a context the lease can cancel; done
// must follow.
func (l *Lease) begin(ctx context.Context) (context.Context, func(), error) {
	cctx, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		cancel(nil)
		return nil, nil, ErrLeaseEnded
	}
	l.inflight++
	l.callID++
	id := l.callID
	if l.calls == nil {
		l.calls = make(map[uint64]context.CancelCauseFunc, 2)
	}
	l.calls[id] = cancel
	l.mu.Unlock()
	return cctx, func() {
		cancel(nil)
		l.mu.Lock()
		delete(l.calls, id)
		l.inflight--
		if l.inflight == 0 && l.idle != nil {
			close(l.idle)
			l.idle = nil
		}
		l.mu.Unlock()
	}, nil
}

// cancelCalls cancels the calls in flight with cause.
func (l *Lease) cancelCalls(cause error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, cancel := range l.calls {
		cancel(cause)
	}
}

// Open borrows a session configured as sc from the pool (an idle one or a
// new one). If the lease ended meanwhile, the session goes back at once.
func (l *Lease) Open(ctx context.Context, sc SessionConfig) error {
	cctx, done, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	s, err := l.pool.Get(cctx, sc)
	if err != nil {
		return err
	}
	l.mu.Lock()
	ended, abandon := l.ended, l.abandon
	if !ended {
		l.sess = s
	}
	l.mu.Unlock()
	if ended {
		if abandon {
			dropSession(s)
		}
		l.pool.Put(s)
		return ErrLeaseEnded
	}
	return nil
}

// Session is the leased session (nil before Open succeeds).
func (l *Lease) Session() *Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sess
}

// Operation is the statement's operation (nil before Execute succeeds).
func (l *Lease) Operation() *Operation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.op
}

// Execute submits stmt on the leased session (Session.Execute); the lease
// then owns the operation.
func (l *Lease) Execute(ctx context.Context, stmt string, conf map[string]string) (*Operation, error) {
	return l.Submit(ctx, func(ctx context.Context, s *Session) (*Operation, error) {
		return s.Execute(ctx, stmt, conf)
	})
}

// Submit starts an operation on the leased session with start (a
// statement, or a metadata call such as Session.Metadata); the lease then
// owns the operation.
func (l *Lease) Submit(ctx context.Context, start func(context.Context, *Session) (*Operation, error)) (*Operation, error) {
	cctx, done, err := l.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	s := l.Session()
	if s == nil {
		return nil, fmt.Errorf("hs2: Execute before Open: %w", ErrSessionClosed)
	}
	op, err := start(cctx, s)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.op = op
	l.mu.Unlock()
	return op, nil
}

// operation returns the operation for a call, or an error.
func (l *Lease) operation(call string) (*Operation, error) {
	if op := l.Operation(); op != nil {
		return op, nil
	}
	return nil, fmt.Errorf("hs2: %s before Execute: %w", call, ErrSessionClosed)
}

// Status asks HS2 once for the operation's state (Operation.Status) and
// remembers a terminal one, so that Release does not cancel a finished
// operation.
func (l *Lease) Status(ctx context.Context) (Status, error) {
	cctx, done, err := l.begin(ctx)
	if err != nil {
		return Status{State: StateUnknown, Progress: -1}, err
	}
	defer done()
	op, err := l.operation("GetOperationStatus")
	if err != nil {
		return Status{State: StateUnknown, Progress: -1}, err
	}
	st, err := op.Status(cctx)
	if err == nil && st.State.Terminal() {
		l.mu.Lock()
		l.opDone = true
		l.mu.Unlock()
	}
	return st, err
}

// Schema is Operation.Schema on the leased operation.
func (l *Lease) Schema(ctx context.Context) (Schema, error) {
	cctx, done, err := l.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	op, err := l.operation("GetResultSetMetadata")
	if err != nil {
		return nil, err
	}
	return op.Schema(cctx)
}

// SchemaAhead is Operation.SchemaAhead on the leased operation: the
// schema, with the first two fetches sent in the same write.
func (l *Lease) SchemaAhead(ctx context.Context, rows, next int) (Schema, error) {
	cctx, done, err := l.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	op, err := l.operation("GetResultSetMetadata")
	if err != nil {
		return nil, err
	}
	return op.SchemaAhead(cctx, rows, next)
}

// Fetch is Operation.FetchAhead on the leased operation.
func (l *Lease) Fetch(ctx context.Context, maxRows, next int) (*Batch, error) {
	cctx, done, err := l.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	op, err := l.operation("FetchResults")
	if err != nil {
		return nil, err
	}
	return op.FetchAhead(cctx, maxRows, next)
}

// end marks the lease ended and returns what it holds and a channel closed
// once no call is in flight.
func (l *Lease) end(abandon bool) (s *Session, op *Operation, opDone bool, idle <-chan struct{}, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return nil, nil, false, nil, false
	}
	l.ended, l.abandon = true, abandon
	ch := make(chan struct{})
	if l.inflight == 0 {
		close(ch)
	} else {
		l.idle = ch
	}
	return l.sess, l.op, l.opDone, ch, true
}

// Release ends the lease and gives its session back to the pool: if a call
// is still in flight, the operation is first cancelled over another
// connection (Operation.Interrupt) so that HS2 stops it and the call
// returns; the operation is cancelled if it still runs and closed; a
// broken session is closed rather than kept. ctx bounds all of it: a call
// still running when ctx ends is cut off, which costs its connection (the
// session is then closed, never pooled). Release is idempotent, and a
// no-op after Abandon.
func (l *Lease) Release(ctx context.Context) {
	s, op, opDone, idle, ok := l.end(false)
	if !ok {
		return
	}
	select {
	case <-idle:
	default:
		if op != nil && !opDone {
			_ = op.Interrupt(ctx) // best effort: the wait below is bounded
		}
		select {
		case <-idle:
		case <-ctx.Done():
			l.cancelCalls(errors.New("hs2: lease released with a call in flight"))
			<-idle
			if s == nil {
				s = l.Session()
			}
			if s != nil {
				dropSession(s)
				l.pool.Put(s)
			}
			return
		}
	}
	if s == nil {
		s = l.Session() // Open returned after end: it put the session back
		if s == nil {
			return
		}
	}
	l.mu.Lock()
	op, opDone = l.op, l.opDone // Execute may have returned after end
	l.mu.Unlock()
	if op != nil && !s.Broken() {
		if !opDone {
			_ = op.Cancel(ctx)
		}
		// Sent now, its answer read by the session's next call: the
		// session goes back to the pool without waiting a round trip.
		_ = op.CloseLater(ctx)
	}
	if s.Broken() {
		// Over HTTP the session outlives a failed call: Close ends it.
		_ = s.Close(ctx)
	}
	l.pool.Put(s)
}

// Abandon ends the lease when its server is gone or its session unusable:
// a call in flight is cut off, the session's connection is closed without a
// call (HS2 ends a binary session, and its operations, with its
// connection) and the session never goes back to the pool. It does not
// wait on the server. It is idempotent, and a no-op after Release.
func (l *Lease) Abandon() {
	s, _, _, idle, ok := l.end(true)
	if !ok {
		return
	}
	l.cancelCalls(errors.New("hs2: lease abandoned"))
	if s != nil {
		dropSession(s)
	}
	<-idle // the calls were cut off: they return promptly
	if s != nil {
		l.pool.Put(s)
	}
}

// dropSession closes s's connection without talking to the server; a call
// in flight is aborted.
func dropSession(s *Session) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Close(ctx)
}
