package flightsql

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hiveqd/hiveqd/query"
)

// running is one statement between GetFlightInfo and the end of its DoGet.
type running struct {
	s      *Server
	id     string // the ticket's handle and the engine's query id
	user   string
	cancel context.CancelCauseFunc

	ready  chan struct{} // closed once the schema is known or the query ended
	schema *arrow.Schema // set before ready closes; nil: failed
	err    error         // the engine's error when it ended before ready
	chunks chan flight.StreamChunk
	ended  chan struct{} // the engine returned: HS2's operation is released
	done   chan struct{} // the statement is over here

	claimedCh chan struct{} // closed by the DoGet that claims the ticket
	// gone is closed when no DoGet will read the chunks any more: its
	// client hung up, the ticket expired unclaimed, it was cancelled
	// before a DoGet, or the server closes.
	gone     chan struct{}
	goneOnce sync.Once

	mu       sync.Mutex
	claimed  bool
	progress float64
	state    query.State
	timer    *time.Timer
}

// start runs stmt on the engine, for the caller of ctx.
func (s *Server) start(ctx context.Context, stmt string) (*running, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, status.Error(codes.Unavailable, errShutdown.Error())
	}
	// The query outlives the call that started it (it is read by DoGet)
	// but keeps its values: the caller's principal and trace span.
	qctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	r := &running{
		s: s, id: newHandle(), user: s.cfg.UserFromContext(ctx), cancel: cancel,
		ready: make(chan struct{}), claimedCh: make(chan struct{}), gone: make(chan struct{}), ended: make(chan struct{}), chunks: make(chan flight.StreamChunk), done: make(chan struct{}),
		progress: -1,
	}
	s.queries[r.id] = r
	s.wg.Add(1)
	s.mu.Unlock()
	r.timer = time.AfterFunc(s.cfg.TicketTimeout, func() { r.abandon(errTicketExpired) })
	req := query.Request{
		QueryID:   r.id,
		Statement: stmt,
		User:      r.user,
		Frontend:  query.FrontendFlightSQL,
		Batch:     query.BatchLimits{MaxRows: s.cfg.BatchRows, MaxBytes: s.cfg.BatchBytes},
	}
	go r.run(qctx, req)
	return r, nil
}

// run executes the query and feeds DoGet.
func (r *running) run(ctx context.Context, req query.Request) {
	s := r.s
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.queries, r.id)
		s.mu.Unlock()
		r.timer.Stop()
		r.cancel(nil)
		close(r.done)
	}()
	var cols []column
	readyClosed := false
	err := s.cfg.Engine.Execute(ctx, req, func(ev query.Event) error {
		switch ev.Kind {
		case query.EventStatus:
			r.mu.Lock()
			r.state, r.progress = ev.Status.State, ev.Status.Progress
			r.mu.Unlock()
		case query.EventSchema:
			r.schema, cols = schemaOf(ev.Schema)
			readyClosed = true
			close(r.ready)
		case query.EventBatch:
			rec, err := record(r.schema, cols, ev.Batch)
			if err != nil {
				return &query.Error{Code: query.Internal, Reason: query.ReasonInternal, Message: "converting a batch to Arrow: " + err.Error(), Metadata: map[string]string{}}
			}
			select {
			case r.chunks <- flight.StreamChunk{Data: rec}:
				return nil
			case <-ctx.Done():
			case <-r.gone:
			}
			rec.Release()
			return context.Cause(ctx)
		}
		return nil
	})
	close(r.ended)
	if !readyClosed {
		if err == nil {
			r.schema = emptySchema // no result set (DDL, INSERT)
		}
		r.err = err
		close(r.ready)
		close(r.chunks)
		return
	}
	if err != nil {
		// The reader hears why the stream ended (a cancel, a failover).
		select {
		case r.chunks <- flight.StreamChunk{Err: toStatus(err)}:
		case <-r.gone:
		}
	}
	close(r.chunks)
	// A result that needed no read to end (no rows) keeps its ticket
	// until a DoGet claims it or it expires.
	select {
	case <-r.claimedCh:
	case <-r.gone:
	}
}

// abandon cancels r for good: no DoGet will read it.
func (r *running) abandon(cause error) {
	r.cancel(cause)
	r.goneOnce.Do(func() { close(r.gone) })
}

// wait waits until r's schema is known or it failed, or for d (0: no
// limit); it reports whether r is ready.
func (r *running) wait(ctx context.Context, d time.Duration) (bool, error) {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-r.ready:
		if r.err != nil {
			return true, toStatus(r.err)
		}
		return true, nil
	case <-timeout:
		return false, nil
	case <-ctx.Done():
		// Nobody has the ticket: the query is over.
		r.abandon(errors.New("the client gave up waiting for the FlightInfo"))
		return false, status.FromContextError(ctx.Err()).Err()
	}
}

// info is r's FlightInfo once ready: its schema and one endpoint.
func (r *running) info(desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	ticket, err := flightsql.CreateStatementQueryTicket([]byte(r.id))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "ticket: %v", err)
	}
	info := &flight.FlightInfo{
		FlightDescriptor: desc,
		Schema:           flight.SerializeSchema(r.schema, r.s.alloc),
		TotalRecords:     -1,
		TotalBytes:       -1,
		Ordered:          true,
	}
	if len(r.schema.Fields()) > 0 {
		info.Endpoint = []*flight.FlightEndpoint{{
			Ticket:         &flight.Ticket{Ticket: ticket},
			ExpirationTime: timestamppb.New(time.Now().Add(r.s.cfg.TicketTimeout)),
		}}
	}
	return info, nil
}

// GetFlightInfoStatement runs the statement until HS2 finished it.
func (s *Server) GetFlightInfoStatement(ctx context.Context, cmd flightsql.StatementQuery, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	if cmd.GetTransactionId() != nil {
		return nil, status.Error(codes.Unimplemented, "hiveqd has no transactions")
	}
	return s.statementInfo(ctx, cmd.GetQuery(), desc)
}

func (s *Server) statementInfo(ctx context.Context, stmt string, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	r, err := s.start(ctx, stmt)
	if err != nil {
		return nil, err
	}
	if _, err := r.wait(ctx, 0); err != nil {
		return nil, err
	}
	return r.info(desc)
}

// DoGetStatement streams the result of a ticket from GetFlightInfo. Each
// ticket is read once, by the user who ran the statement.
func (s *Server) DoGetStatement(ctx context.Context, t flightsql.StatementQueryTicket) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	r, err := s.claim(ctx, string(t.GetStatementHandle()))
	if err != nil {
		return nil, nil, err
	}
	// The client hanging up cancels the query; the engine then ends and
	// closes the chunks.
	stop := context.AfterFunc(ctx, func() { r.abandon(errReaderGone) })
	go func() {
		<-r.done
		stop()
	}()
	return r.schema, r.chunks, nil
}

func (s *Server) claim(ctx context.Context, id string) (*running, error) {
	s.mu.Lock()
	r := s.queries[id]
	s.mu.Unlock()
	if r == nil || r.user != s.cfg.UserFromContext(ctx) {
		return nil, status.Error(codes.NotFound, "no running query has this ticket: it was read already, expired, cancelled, or belongs to another user")
	}
	r.mu.Lock()
	claimed := r.claimed
	r.claimed = true
	r.mu.Unlock()
	if claimed {
		return nil, status.Error(codes.FailedPrecondition, "this ticket is being read already; a ticket is read once")
	}
	r.timer.Stop()
	close(r.claimedCh)
	<-r.ready // a ticket is handed out only once ready
	if r.schema == nil {
		return nil, toStatus(r.err)
	}
	return r, nil
}

// lookup finds a query of the caller's by id.
func (s *Server) lookup(ctx context.Context, id string) *running {
	s.mu.Lock()
	r := s.queries[id]
	s.mu.Unlock()
	if r == nil || r.user != s.cfg.UserFromContext(ctx) {
		return nil
	}
	return r
}

// CancelFlightInfo cancels the query of a FlightInfo: HS2's operation is
// cancelled and its DoGet ends with CANCELLED.
func (s *Server) CancelFlightInfo(ctx context.Context, req *flight.CancelFlightInfoRequest) (flight.CancelFlightInfoResult, error) {
	info := req.GetInfo()
	if info == nil || len(info.GetEndpoint()) == 0 {
		return flight.CancelFlightInfoResult{Status: flight.CancelStatusUnspecified}, invalidArg("CancelFlightInfo needs a FlightInfo with the statement's endpoint")
	}
	id, ok := handleOf(info.GetEndpoint()[0].GetTicket())
	if !ok {
		return flight.CancelFlightInfoResult{Status: flight.CancelStatusUnspecified}, invalidArg("the FlightInfo's ticket is not a statement of this server")
	}
	r := s.lookup(ctx, id)
	if r == nil {
		// Ended already: nothing to cancel.
		return flight.CancelFlightInfoResult{Status: flight.CancelStatusNotCancellable}, nil
	}
	// Cancelling the query's context cancels its HS2 operation; a DoGet
	// reading it then ends with CANCELLED.
	r.cancel(errCancelled)
	r.mu.Lock()
	if !r.claimed {
		r.abandon(errCancelled)
	}
	r.mu.Unlock()
	select {
	case <-r.ended:
		return flight.CancelFlightInfoResult{Status: flight.CancelStatusCancelled}, nil
	case <-ctx.Done():
		return flight.CancelFlightInfoResult{Status: flight.CancelStatusCancelling}, nil
	}
}

var errCancelled = errors.New("cancelled by CancelFlightInfo")

// handleOf reads a statement ticket's handle.
func handleOf(t *flight.Ticket) (string, bool) {
	if t == nil {
		return "", false
	}
	tq, err := flightsql.GetStatementQueryTicket(t)
	if err != nil {
		return "", false
	}
	return string(tq.GetStatementHandle()), true
}

// pollPrefix marks PollFlightInfo's own descriptors: "hiveqd-poll:" and
// the query's handle.
const pollPrefix = "hiveqd-poll:"

// PollFlightInfoStatement starts a statement and reports on it without
// waiting for HS2 to finish: long queries do not hold a call open.
func (s *Server) PollFlightInfoStatement(ctx context.Context, cmd flightsql.StatementQuery, desc *flight.FlightDescriptor) (*flight.PollInfo, error) {
	r, err := s.start(ctx, cmd.GetQuery())
	if err != nil {
		return nil, err
	}
	return s.poll(ctx, r, desc)
}

// PollFlightInfo continues a PollFlightInfoStatement.
func (s *Server) PollFlightInfo(ctx context.Context, desc *flight.FlightDescriptor) (*flight.PollInfo, error) {
	cmd := string(desc.GetCmd())
	if len(cmd) <= len(pollPrefix) || cmd[:len(pollPrefix)] != pollPrefix {
		return nil, invalidArg("not a descriptor of a running query")
	}
	r := s.lookup(ctx, cmd[len(pollPrefix):])
	if r == nil {
		return nil, status.Error(codes.NotFound, "no running query has this descriptor: it ended, was cancelled, or belongs to another user")
	}
	return s.poll(ctx, r, desc)
}

func (s *Server) poll(ctx context.Context, r *running, desc *flight.FlightDescriptor) (*flight.PollInfo, error) {
	ready, err := r.wait(ctx, s.cfg.PollWait)
	if err != nil {
		return nil, err
	}
	if ready {
		info, err := r.info(desc)
		if err != nil {
			return nil, err
		}
		one := 1.0
		return &flight.PollInfo{Info: info, Progress: &one}, nil
	}
	r.mu.Lock()
	progress := r.progress
	r.mu.Unlock()
	pi := &flight.PollInfo{
		Info:             &flight.FlightInfo{FlightDescriptor: desc, TotalRecords: -1, TotalBytes: -1},
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(pollPrefix + r.id)},
		ExpirationTime:   timestamppb.New(time.Now().Add(s.cfg.TicketTimeout)),
	}
	if progress >= 0 && progress <= 1 {
		pi.Progress = &progress
	}
	// A poll counts as interest: the ticket timeout starts over.
	r.timer.Reset(s.cfg.TicketTimeout)
	return pi, nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
