package hs2

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beltran/gohive/hiveserver"
)

// MaxFetchRows bounds Fetch's maxRows.
const MaxFetchRows = 10000

// Wait's polling back-off: HS2 long-polls GetOperationStatus (up to 5s) but
// may answer at once, e.g. when its long poll is disabled.
const (
	minPollDelay = 5 * time.Millisecond
	maxPollDelay = 500 * time.Millisecond
)

// Operation is one statement running in a session.
type Operation struct {
	s      *Session
	h      *hiveserver.TOperationHandle
	hasRS  atomic.Bool
	closed atomic.Bool

	mu     sync.Mutex // serialises Schema and Fetch and guards what follows
	schema Schema
	next   int64 // rows fetched so far
	done   bool  // an empty batch was seen
	hints  []int // each column's data bytes in the last batch
}

// HasResultSet reports whether the statement produces rows.
func (o *Operation) HasResultSet() bool { return o.hasRS.Load() }

// Status asks HS2 once for the operation's state. An operation in
// ERROR_STATE is a successful call: Status.Err carries the *ServerError.
func (o *Operation) Status(ctx context.Context) (Status, error) {
	progress := true
	req := &hiveserver.TGetOperationStatusReq{OperationHandle: o.h, GetProgressUpdate: &progress}
	var resp *hiveserver.TGetOperationStatusResp
	err := o.s.call(ctx, "GetOperationStatus", false, func(ctx context.Context) (*hiveserver.TStatus, error) {
		var err error
		resp, err = o.s.client.GetOperationStatus(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	})
	if err != nil {
		return Status{State: StateUnknown, Progress: -1}, err
	}
	st := Status{State: StateUnknown, Progress: -1, TaskStatus: resp.GetTaskStatus(), HasResultSet: o.hasRS.Load()}
	if resp.OperationState != nil {
		st.State = OpState(*resp.OperationState)
	}
	if resp.HasResultSet != nil {
		st.HasResultSet = *resp.HasResultSet
		o.hasRS.Store(st.HasResultSet)
	}
	if p := resp.ProgressUpdateResponse; p != nil && p.Status != hiveserver.TJobExecutionStatus_NOT_AVAILABLE {
		st.Progress = min(max(p.ProgressedPercentage, 0), 1)
	}
	if st.State == StateError {
		msg := resp.GetErrorMessage()
		if msg == "" {
			msg = "operation failed"
		}
		st.Err = &ServerError{Server: o.s.server, Call: "GetOperationStatus", SQLState: resp.GetSqlState(), ErrorCode: resp.GetErrorCode(), Message: msg}
	}
	return st, nil
}

// Wait polls Status until the operation reaches a terminal state and
// returns that Status; for ERROR_STATE the error is the *ServerError.
// onStatus (may be nil) sees the first answer and every one whose state or
// progress changed. Answers that come back at once without change are
// spaced by a back-off (5ms doubling to 500ms, reset on change) so a server
// that does not long-poll is not hammered.
func (o *Operation) Wait(ctx context.Context, onStatus func(Status)) (Status, error) {
	clock := o.s.opts.Clock
	var last Status
	delay := minPollDelay
	for i := 0; ; i++ {
		start := clock.Now()
		st, err := o.Status(ctx)
		if err != nil {
			return st, err
		}
		changed := i == 0 || st.State != last.State || st.Progress != last.Progress
		if changed && onStatus != nil {
			onStatus(st)
		}
		if st.State.Terminal() {
			return st, st.Err
		}
		delay = nextPollDelay(delay, changed)
		last = st
		if wait := delay - clock.Now().Sub(start); wait > 0 {
			select {
			case <-clock.After(wait):
			case <-ctx.Done():
				return st, fmt.Errorf("hs2 %s: waiting for the operation: %w", o.s.server, ctx.Err())
			}
		}
	}
}

// nextPollDelay is the least time between the starts of two status polls.
func nextPollDelay(prev time.Duration, changed bool) time.Duration {
	if changed {
		return minPollDelay
	}
	return min(prev*2, maxPollDelay)
}

// Schema returns the result set's columns (GetResultSetMetadata, asked
// once). It is empty for statements without a result set.
func (o *Operation) Schema(ctx context.Context) (Schema, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.schemaLocked(ctx)
}

func (o *Operation) schemaLocked(ctx context.Context) (Schema, error) {
	if o.schema != nil || !o.hasRS.Load() {
		return o.schema, nil
	}
	var resp *hiveserver.TGetResultSetMetadataResp
	err := o.s.call(ctx, "GetResultSetMetadata", false, func(ctx context.Context) (*hiveserver.TStatus, error) {
		var err error
		resp, err = o.s.client.GetResultSetMetadata(ctx, &hiveserver.TGetResultSetMetadataReq{OperationHandle: o.h})
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	})
	if err != nil {
		return nil, err
	}
	return o.setSchema(resp)
}

// setSchema keeps the schema of a GetResultSetMetadata answer.
func (o *Operation) setSchema(resp *hiveserver.TGetResultSetMetadataResp) (Schema, error) {
	sch := Schema{}
	if resp.Schema != nil {
		for i, c := range resp.Schema.Columns {
			if c == nil {
				return nil, &ServerError{Server: o.s.server, Call: "GetResultSetMetadata", Message: fmt.Sprintf("malformed schema: column %d missing", i+1)}
			}
			d := ColumnDesc{Name: c.ColumnName, Type: typeText(c.TypeDesc), Position: int(c.Position), Comment: c.GetComment()}
			if d.Position == 0 {
				d.Position = i + 1
			}
			sch = append(sch, d)
		}
	}
	o.schema = sch
	return sch, nil
}

// Fetch reads the next batch of at most maxRows (1..MaxFetchRows) rows. A
// batch with Rows == 0 is the end of the result: HS2 reports
// hasMoreRows=false on every batch, so only an empty batch tells.
func (o *Operation) Fetch(ctx context.Context, maxRows int) (*Batch, error) {
	return o.fetch(ctx, maxRows, 0)
}

// fetch is Fetch, sending a request ahead for next rows when next > 0 on
// the binary transports (FetchAhead).
func (o *Operation) fetch(ctx context.Context, maxRows, next int) (*Batch, error) {
	if maxRows < 1 || maxRows > MaxFetchRows {
		return nil, fmt.Errorf("hs2: fetch size %d out of range 1..%d", maxRows, MaxFetchRows)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.hasRS.Load() {
		return nil, fmt.Errorf("hs2 %s FetchResults: statement has no result set", o.s.server)
	}
	if o.done {
		return &Batch{StartRow: o.next}, nil
	}
	var resp *fetchResult
	var err error
	if o.s.pipelines() {
		resp, err = o.s.fetchPipelined(ctx, o, maxRows, next)
	} else {
		err = o.s.call(ctx, "FetchResults", false, func(ctx context.Context) (*hiveserver.TStatus, error) {
			seq, err := o.s.sendFetch(ctx, o.h, maxRows)
			if err != nil {
				return nil, err
			}
			if resp, err = o.s.recvFetch(ctx, seq, o.hints); err != nil {
				return nil, err
			}
			return resp.status, nil
		})
	}
	if err != nil {
		return nil, err
	}
	if resp.malformed != nil {
		return nil, &ServerError{Server: o.s.server, Call: "FetchResults", Message: "malformed result set: " + resp.malformed.Error()}
	}
	b := resp.batch
	if b == nil {
		b = &Batch{}
	}
	o.remember(b)
	b.StartRow = o.next
	o.next += int64(b.Rows)
	if b.Rows == 0 {
		o.done = true
	}
	return b, nil
}

// remember keeps each string column's data size as the next batch's
// starting buffer size, so that its buffer grows rarely.
func (o *Operation) remember(b *Batch) {
	if b.Rows == 0 {
		return
	}
	o.hints = slices.Grow(o.hints[:0], len(b.Columns))[:len(b.Columns)]
	for i := range b.Columns {
		o.hints[i] = b.Columns[i].ValueBytes()
	}
}

// Cancel asks HS2 to cancel the operation.
func (o *Operation) Cancel(ctx context.Context) error {
	if o.closed.Load() {
		return nil
	}
	return o.s.call(ctx, "CancelOperation", false, func(ctx context.Context) (*hiveserver.TStatus, error) {
		resp, err := o.s.client.CancelOperation(ctx, &hiveserver.TCancelOperationReq{OperationHandle: o.h})
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	})
}

// Close releases the operation on the server. It is idempotent, and a
// no-op once the session is closed or broken: HS2 dropped the operation
// with the session.
func (o *Operation) Close(ctx context.Context) error {
	if o.closed.Swap(true) || o.s.Broken() {
		return nil
	}
	err := o.s.call(ctx, "CloseOperation", false, func(ctx context.Context) (*hiveserver.TStatus, error) {
		resp, err := o.s.client.CloseOperation(ctx, &hiveserver.TCloseOperationReq{OperationHandle: o.h})
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	})
	if errors.Is(err, ErrSessionClosed) {
		return nil
	}
	return err
}
