package query

import (
	"context"
	"fmt"

	"github.com/hiveqd/hiveqd/hs2"
)

// stream waits for HS2 to finish the statement and streams its result,
// all but the last batch (see try).
func (a *attempt) stream() (streamEnd, error) {
	q := a.q
	st, err := a.wait()
	if err != nil {
		return streamEnd{}, err
	}
	if !st.HasResultSet && !a.lease.Operation().HasResultSet() {
		return streamEnd{}, nil
	}
	// STREAMING goes out with the schema, one HS2 call later, so that the
	// two share a write. The first FetchResults goes to HS2 with
	// GetResultSetMetadata (hs2 SchemaAhead): one round trip for both.
	first, second := a.firstFetches()
	schema, err := call(a, bounded(a, func(ctx context.Context) (hs2.Schema, error) {
		return a.lease.SchemaAhead(ctx, first, second)
	}))
	if err != nil {
		return streamEnd{}, a.classify(err)
	}
	q.holdSchema(schema)
	return a.fetchAll()
}

// wait polls HS2 until the operation is terminal, emitting PENDING and
// RUNNING when the state or progress changes. Each poll is bounded by the
// stall bound: HS2 holds it at most its long poll (5s).
func (a *attempt) wait() (hs2.Status, error) {
	q := a.q
	poll := bounded(a, a.lease.Status)
	delay := minPollDelay
	for {
		began := q.e.clock.Now()
		st, err := call(a, poll)
		if err != nil {
			return st, a.classify(err)
		}
		if st.State.Terminal() {
			return st, a.terminal(st)
		}
		s := StatePending
		if st.State == hs2.StateRunning {
			s = StateRunning
		}
		changed, err := q.progressTo(s, st.Progress)
		if err != nil {
			return st, err
		}
		if changed {
			delay = minPollDelay
		} else {
			delay = min(delay*2, maxPollDelay)
		}
		wait := max(delay-q.e.clock.Now().Sub(began), 0)
		select {
		case <-q.e.clock.After(wait):
		case <-a.ctx.Done():
			return st, a.classify(a.ctx.Err())
		case <-a.cur.Lost():
			return st, a.classify(errLost)
		}
	}
}

// terminal is the outcome of an operation HS2 reports terminal: nil for
// FINISHED.
func (a *attempt) terminal(st hs2.Status) error {
	q := a.q
	switch st.State {
	case hs2.StateFinished:
		q.progress = 1
		return nil
	case hs2.StateError:
		if st.Err == nil {
			st.Err = &hs2.ServerError{Server: q.server, Call: "GetOperationStatus", Message: "operation failed"}
		}
		return a.classify(st.Err)
	case hs2.StateCanceled:
		return a.meta(newError(Canceled, ReasonCancelled, nil, "HiveServer2 %s cancelled the query", q.server))
	case hs2.StateTimedOut:
		return a.meta(newError(DeadlineExceeded, ReasonDeadline, nil, "the query timed out on HiveServer2 %s", q.server))
	}
	// CLOSED, UNKNOWN
	return a.meta(newError(Failed, ReasonQueryFailed, nil, "HiveServer2 %s reports the operation %s", q.server, st.State))
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
	defer close(quit) // the lease's end waits for the fetcher's call
	var held *hs2.Batch
	// The schema waits for the first batch at most schemaHold.
	hold := q.e.clock.After(schemaHold)
	for {
		if len(q.held) == 0 {
			hold = nil
		}
		var r fetched
		var ok bool
		select {
		case <-hold:
			if err := q.flushHeld(); err != nil {
				return streamEnd{}, err
			}
			continue
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

// fetcher reads batches until the end, maxRows, an error or quit. Each
// fetch is bounded by the stall bound.
func (a *attempt) fetcher(out chan<- fetched, quit <-chan struct{}) {
	defer close(out)
	q := a.q
	rows := int64(0)
	size := q.req.FetchSize
	// queued are the sizes of the requests sent ahead, oldest first. The
	// first two went with the schema (stream): every result needs two
	// (its rows, and the empty batch that ends them). After that, while
	// batches come back full, each fetch sends the request for the batch
	// after it first (hs2 FetchAhead), so that HS2 builds batch k+1 while
	// batch k is decoded here; after a short first batch (a small result)
	// no further request goes ahead. Over HTTP nothing goes ahead.
	var queued []int
	pipelines := a.lease.Session().Pipelines()
	if pipelines {
		first, second := a.firstFetches()
		queued = append(make([]int, 0, 2), first)
		if second > 0 {
			queued = append(queued, second)
		}
	}
	pipeline := true
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
		if len(queued) > 0 {
			asked = queued[0] // what the request ahead asked for
			queued = queued[1:]
		}
		next := 0
		if pipeline && pipelines && len(queued) == 0 {
			next = size
			if q.maxRows > 0 {
				next = int(max(min(int64(next), q.maxRows-rows-int64(asked)), 0))
			}
		}
		b, err := a.fetchOne(n, next)
		if next > 0 {
			queued = append(queued, next)
		}
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
		size = a.nextFetchSize(b)
	}
}

// firstFetches are the sizes of the first two FetchResults (0: none, the
// first reaches maxRows).
func (a *attempt) firstFetches() (first, second int) {
	q := a.q
	first, second = q.req.FetchSize, q.req.FetchSize
	if m := q.maxRows; m > 0 {
		first = int(min(int64(first), m))
		second = int(max(min(int64(second), m-int64(first)), 0))
	}
	return first, second
}

// fetchOne is one FetchResults under the stall bound.
func (a *attempt) fetchOne(n, next int) (*hs2.Batch, error) {
	ctx, cancel := context.WithTimeout(a.call, a.q.cc.StallTimeout)
	defer cancel()
	return a.lease.Fetch(ctx, n, next)
}

// nextFetchSize: wide rows ask for fewer next time so one answer stays
// near MaxFetchBytes (a few batches per stream are held at once).
func (a *attempt) nextFetchSize(b *hs2.Batch) int {
	q := a.q
	size := q.req.FetchSize
	fixed, variable := rowWidth(b.Columns)
	if bytes := batchBytes(b.Columns, variable, fixed, 0, b.Rows); bytes > 0 {
		perRow := max(bytes/b.Rows, 1)
		size = max(min(q.req.FetchSize, q.e.limits.MaxFetchBytes/perRow), 1)
	}
	return size
}

// limitNote is FINISHED's message when maxRows cut the result.
func (q *queryRun) limitNote() string {
	if q.serverLimit {
		return fmt.Sprintf("result truncated at this replica's limit of %d rows", q.maxRows)
	}
	return ""
}
