package hs2sim

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// confInt reads a non-negative integer setting, 0 when unset or bad.
func confInt(conf map[string]string, key string) int64 {
	n, err := strconv.ParseInt(conf[key], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func (s *Server) addSession(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.crashed {
		return false
	}
	if sess.connID != 0 {
		if _, ok := s.connIDs[sess.connID]; !ok {
			return false // its connection is already gone
		}
	}
	s.sessions[sess.h.guid] = sess
	s.sessionsOpened.Add(1)
	return true
}

func (s *Server) lookupSession(h *hiveserver.TSessionHandle) (*session, *hiveError) {
	var id *hiveserver.THandleIdentifier
	if h != nil {
		id = h.SessionId
	}
	guid, secret, ok := handleKey(id)
	if ok {
		s.mu.Lock()
		sess := s.sessions[guid]
		s.mu.Unlock()
		if sess != nil && sess.h.secret == secret {
			return sess, nil
		}
	}
	var g []byte
	if id != nil {
		g = id.GUID
	}
	return nil, plainError("Invalid SessionHandle: SessionHandle [%s]", uuidString(g))
}

// closeSession ends a session and its operations.
func (s *Server) closeSession(sess *session) {
	s.mu.Lock()
	if s.sessions[sess.h.guid] != sess {
		s.mu.Unlock()
		return
	}
	delete(s.sessions, sess.h.guid)
	s.mu.Unlock()
	sess.mu.Lock()
	ops := make([]*operation, 0, len(sess.ops))
	for _, op := range sess.ops {
		ops = append(ops, op)
	}
	sess.mu.Unlock()
	for _, op := range ops {
		s.closeOp(op)
	}
}

// closeConnSessions ends the sessions of a binary connection that went
// away, as HS2 does when a client's socket closes.
func (s *Server) closeConnSessions(connID uint64) {
	s.mu.Lock()
	var victims []*session
	for _, sess := range s.sessions {
		if sess.connID == connID {
			victims = append(victims, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range victims {
		s.closeSession(sess)
	}
}

// newOp registers an operation for plan; nil when the session is gone.
func (s *Server) newOp(sess *session, typ hiveserver.TOperationType, p *plan) *operation {
	ctx, cancel := context.WithCancel(s.ctx)
	op := &operation{
		h: newHandle(), typ: typ, sess: sess, plan: p, ctx: ctx, cancelRun: cancel,
		state:   hiveserver.TOperationState_RUNNING_STATE,
		started: time.Now().UnixMilli(),
		done:    make(chan struct{}),
		queryID: fmt.Sprintf("hive_%s_%s", time.Now().UTC().Format("20060102150405"), uuidString(newUUIDSlice())),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.h.guid] != sess {
		cancel()
		return nil
	}
	sess.mu.Lock()
	sess.ops[op.h.guid] = op
	sess.mu.Unlock()
	s.ops[op.h.guid] = op
	s.operationsOpened.Add(1)
	return op
}

func newUUIDSlice() []byte {
	u := newUUID()
	return u[:]
}

func (s *Server) lookupOp(h *hiveserver.TOperationHandle) (*operation, *hiveError) {
	var id *hiveserver.THandleIdentifier
	typ := hiveserver.TOperationType_EXECUTE_STATEMENT
	if h != nil {
		id, typ = h.OperationId, h.OperationType
	}
	guid, secret, ok := handleKey(id)
	if ok {
		s.mu.Lock()
		op := s.ops[guid]
		s.mu.Unlock()
		if op != nil && op.h.secret == secret {
			return op, nil
		}
	}
	var g []byte
	if id != nil {
		g = id.GUID
	}
	return nil, plainError("Invalid OperationHandle: %s", opHandleString(typ, g))
}

// closeOp removes an operation, stopping its execution.
func (s *Server) closeOp(op *operation) {
	s.mu.Lock()
	if s.ops[op.h.guid] == op {
		delete(s.ops, op.h.guid)
	}
	s.mu.Unlock()
	op.sess.mu.Lock()
	delete(op.sess.ops, op.h.guid)
	op.sess.mu.Unlock()
	op.transition(hiveserver.TOperationState_CLOSED_STATE, nil)
	op.cancelRun()
}

// startOp runs an operation in the background, as HS2's async pool does.
func (s *Server) startOp(op *operation) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.runOp(op)
	}()
}

// runOp executes a compiled statement: its (simulated) execution time,
// query timeout, injected failures, then its effect on the session.
func (s *Server) runOp(op *operation) {
	p := op.plan
	if op.execDelay > 0 {
		var timeout <-chan time.Time
		if op.timeout > 0 && op.timeout < op.execDelay {
			t := time.NewTimer(op.timeout)
			defer t.Stop()
			timeout = t.C
		}
		d := time.NewTimer(op.execDelay)
		defer d.Stop()
		select {
		case <-d.C:
		case <-timeout:
			op.transition(hiveserver.TOperationState_TIMEDOUT_STATE, nil)
			return
		case <-op.ctx.Done():
			return // cancelled, closed, or the server stopped
		}
	}
	if fail, _, _, _ := s.faults.get(); fail && p.query {
		op.transition(hiveserver.TOperationState_ERROR_STATE, runtimeError(""))
		return
	}
	if p.runErr != nil {
		op.transition(hiveserver.TOperationState_ERROR_STATE, p.runErr)
		return
	}
	if p.useDB != "" || len(p.setKV) > 0 {
		op.sess.mu.Lock()
		if p.useDB != "" {
			op.sess.db = p.useDB
		}
		for k, v := range p.setKV {
			op.sess.conf[k] = v
		}
		op.sess.mu.Unlock()
	}
	op.transition(hiveserver.TOperationState_FINISHED_STATE, nil)
}

// metaOp runs a metadata call: an operation that is FINISHED at once.
func (s *Server) metaOp(h *hiveserver.TSessionHandle, typ hiveserver.TOperationType, build func(sessionView) *plan) (*hiveserver.TStatus, *hiveserver.TOperationHandle) {
	sess, herr := s.lookupSession(h)
	if herr != nil {
		return herr.status(), nil
	}
	op := s.newOp(sess, typ, build(sess.view()))
	if op == nil {
		return sessionGone(sess).status(), nil
	}
	op.transition(hiveserver.TOperationState_FINISHED_STATE, nil)
	return okStatus(), op.thrift()
}

// logColumns is the schema of an operation log fetch (fetchType 1).
var logColumns = []column{{name: "operation_log", typ: tString}}

// fetch serves FetchResults: FETCH_NEXT/FETCH_FIRST over a FINISHED
// operation, maxRows capped like HS2, pacing for synthetic tables and the
// drop-after-rows fault.
func (s *Server) fetch(ctx context.Context, op *operation, req *hiveserver.TFetchResultsReq) (*hiveserver.TFetchResultsResp, error) {
	resp := &hiveserver.TFetchResultsResp{}
	no := false
	if req.FetchType == 1 {
		// Operation logs: this server keeps none.
		resp.Status, resp.HasMoreRows = okStatus(), &no
		resp.Results = s.rowSet(op.sess, logColumns, []*hiveserver.TColumn{emptyTColumn(tString)}, 0)
		return resp, nil
	}
	switch req.Orientation {
	case hiveserver.TFetchOrientation_FETCH_NEXT, hiveserver.TFetchOrientation_FETCH_FIRST:
	default:
		e := plainError("The fetch type %s is not supported for this resultset", req.Orientation)
		e.sqlState = "HY106"
		resp.Status = e.status()
		return resp, nil
	}
	if state, _ := op.snapshot(); state != hiveserver.TOperationState_FINISHED_STATE {
		resp.Status = plainError("Expected state FINISHED, but found %s", stateName(state)).status()
		return resp, nil
	}
	p := op.plan
	if !p.hasResult {
		resp.Status, resp.HasMoreRows = okStatus(), &no
		resp.Results = s.rowSet(op.sess, nil, nil, 0)
		return resp, nil
	}
	op.fetchMu.Lock()
	defer op.fetchMu.Unlock()
	if req.Orientation == hiveserver.TFetchOrientation_FETCH_FIRST {
		op.offset, op.paced, op.paceStart = 0, 0, time.Time{}
	}
	n := int(min(max(req.MaxRows, 0), maxFetchSize))
	_, dropAfter, rate, delay := s.faults.get()
	if op.rate > 0 {
		rate = op.rate
	}
	if op.fetchDelay > 0 {
		delay = op.fetchDelay
	}
	if dropAfter > 0 {
		op.sess.mu.Lock()
		left := dropAfter - op.sess.fetched
		op.sess.mu.Unlock()
		if left <= 0 {
			return nil, thrift.ErrAbandonRequest
		}
		n = int(min(int64(n), left))
	}
	if p.src.synthetic() {
		if rate > 0 {
			n = int(min(int64(n), max(rate, 1))) // at most a second's worth per fetch
		}
		if err := s.pace(ctx, op, n, rate, delay); err != nil {
			return nil, thrift.ErrAbandonRequest
		}
	}
	cols, got := p.src.read(op.offset, n)
	op.offset += int64(got)
	if dropAfter > 0 {
		op.sess.mu.Lock()
		op.sess.fetched += int64(got)
		op.sess.mu.Unlock()
	}
	resp.Status, resp.HasMoreRows = okStatus(), &no // HS2 never sets hasMoreRows
	resp.Results = s.rowSet(op.sess, p.cols, cols, got)
	return resp, nil
}

// pace delays a synthetic fetch of n rows by the per-fetch delay and so
// that rows leave no faster than rate per second since the first fetch.
func (s *Server) pace(ctx context.Context, op *operation, n int, rate int64, delay time.Duration) error {
	if err := sleep(ctx, s.stop, delay); err != nil {
		return err
	}
	if rate <= 0 {
		return nil
	}
	if op.paceStart.IsZero() {
		op.paceStart = time.Now()
	}
	op.paced += int64(n)
	due := op.paceStart.Add(time.Duration(float64(op.paced) / float64(rate) * float64(time.Second)))
	return sleep(ctx, s.stop, time.Until(due))
}

// rowSet encodes a batch: columnar from protocol V6 on (every column
// present, even with no rows), row-based before.
func (s *Server) rowSet(sess *session, schema []column, cols []*hiveserver.TColumn, n int) *hiveserver.TRowSet {
	rs := &hiveserver.TRowSet{StartRowOffset: 0, Rows: []*hiveserver.TRow{}}
	if sess.proto >= hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V6 {
		if cols == nil {
			cols = make([]*hiveserver.TColumn, len(schema))
			for i, c := range schema {
				cols[i] = emptyTColumn(c.typ)
			}
		}
		rs.Columns = cols
		return rs
	}
	rs.Rows = columnsToRows(cols, n)
	return rs
}
