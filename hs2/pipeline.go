package hs2

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// Pipelined fetching. A FetchResults round trip is: HS2 builds and writes
// the batch, then this process reads and decodes it, then asks for the
// next one; each side idles while the other works. On the binary
// transports FetchAhead sends the request for the next batch before it
// reads the current one, so that HS2 builds batch k+1 while batch k is
// decoded here. HS2 serves a connection's requests one after another
// (it reads the next message once it has answered the last), so a request
// sent ahead simply waits in the socket; answers come back in order and
// each carries its request's sequence id, which is checked.
//
// The requests ahead (at most two: SchemaAhead sends the first two
// fetches) are the session's until their answers are read: the next
// Fetch or FetchAhead calls of the same operation read them, in order, and
// any other call on the session first reads and drops them (an operation
// being cancelled or closed does not need those rows).

// fetchAhead is a FetchResults request whose answer is still unread.
type fetchAhead struct {
	op    *Operation
	seqID int32
}

// pipelines reports whether requests may be sent ahead: not over HTTP,
// where each call is its own request and two could be served at once.
func (s *Session) pipelines() bool {
	switch s.tr.(type) {
	case *saslTransport, *rawTransport:
		return s.proto != nil
	}
	return false
}

// Pipelines reports whether the session sends requests ahead (FetchAhead,
// SchemaAhead, CloseLater): on the binary transports, not over HTTP.
func (s *Session) Pipelines() bool { return s.pipelines() }

// FetchAhead is Fetch that also sends, on the binary transports, the
// request for the batch after this one (next rows, 0..MaxFetchRows; 0
// sends none), so that HS2 prepares it while this batch is read and
// decoded. The next Fetch or FetchAhead returns the rows asked for then,
// whatever size it asks for itself. Over HTTP it is Fetch.
func (o *Operation) FetchAhead(ctx context.Context, maxRows, next int) (*Batch, error) {
	if next < 0 || next > MaxFetchRows {
		return nil, fmt.Errorf("hs2: fetch size %d out of range 0..%d", next, MaxFetchRows)
	}
	return o.fetch(ctx, maxRows, next)
}

// fetchPipelined is one FetchResults call on a binary transport with the
// session lock held: it reads the answer to the request sent ahead for o
// (or sends one now), after sending the next request ahead when next > 0.
func (s *Session) fetchPipelined(ctx context.Context, o *Operation, maxRows, next int) (*fetchResult, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	var resp *fetchResult
	err := s.callLocked(ctx, "FetchResults", callOpts{keepAhead: o}, func(ctx context.Context) (*hiveserver.TStatus, error) {
		seq, ok := int32(0), false
		if len(s.ahead) > 0 && s.ahead[0].op == o {
			seq, ok = s.ahead[0].seqID, true
			s.ahead = s.ahead[1:]
		}
		if !ok {
			var err error
			if seq, err = s.sendFetch(ctx, o.h, maxRows); err != nil {
				return nil, err
			}
		}
		if next > 0 {
			nseq, err := s.sendFetch(ctx, o.h, next)
			if err != nil {
				return nil, err
			}
			s.ahead = append(s.ahead, fetchAhead{op: o, seqID: nseq})
		}
		var err error
		resp, err = s.recvFetch(ctx, seq, o.hints)
		if err != nil {
			return nil, err
		}
		return resp.status, nil
	})
	return resp, err
}

func (s *Session) sendFetch(ctx context.Context, h *hiveserver.TOperationHandle, maxRows int) (int32, error) {
	return s.send(ctx, "FetchResults", &hiveserver.TCLIServiceFetchResultsArgs{Req: &hiveserver.TFetchResultsReq{
		OperationHandle: h, Orientation: hiveserver.TFetchOrientation_FETCH_NEXT, MaxRows: int64(maxRows),
	}})
}

// recvFetch reads a FetchResults answer, decoding its rows straight into a
// Batch (decode.go); hints size string columns' buffers.
func (s *Session) recvFetch(ctx context.Context, seq int32, hints []int) (*fetchResult, error) {
	result := &fetchResult{hints: hints}
	var tc thrift.TStandardClient
	if err := tc.Recv(ctx, s.proto, seq, "FetchResults", result); err != nil {
		return nil, err
	}
	if !result.success {
		return nil, thrift.NewTApplicationException(thrift.MISSING_RESULT, "FetchResults failed: unknown result")
	}
	return result, nil
}

// drainFirst wraps fn so that it first reads the answers nobody waits for
// (s.later, then a request sent ahead unless keep is its operation). HS2
// answers in order, so they stand before fn's. Their own outcome does not
// matter (a close that failed, even with an exception); a transport
// failure reading them, or an answer out of step, fails fn's call, with
// nothing of fn sent.
func (s *Session) drainFirst(fn func(context.Context) (*hiveserver.TStatus, error), keep *Operation) func(context.Context) (*hiveserver.TStatus, error) {
	return func(ctx context.Context) (*hiveserver.TStatus, error) {
		later := s.later
		s.later = s.later[:0]
		for _, l := range later {
			var tc thrift.TStandardClient
			if err := tc.Recv(ctx, s.proto, l.seqID, l.method, l.result); err != nil && !answered(err) {
				return nil, err
			}
		}
		if len(s.ahead) > 0 && s.ahead[0].op != keep {
			ahead := s.ahead
			s.ahead = nil
			for _, a := range ahead {
				// An exception HS2 answered leaves the stream in step:
				// read on, or the answers after it would go unread and
				// answer the session's next call (a statement sent,
				// then failed as if HS2 might not have run it).
				if _, err := s.recvFetch(ctx, a.seqID, nil); err != nil && !answered(err) {
					return nil, err
				}
			}
		}
		return fn(ctx)
	}
}

// answered reports whether err is an exception HS2 sent as the answer
// (read whole: the connection is still in step), not one made here when
// the answer did not match the call (callError tells them apart alike).
func answered(err error) bool {
	var appErr thrift.TApplicationException
	if !errors.As(err, &appErr) {
		return false
	}
	switch appErr.TypeId() {
	case thrift.WRONG_METHOD_NAME, thrift.BAD_SEQUENCE_ID, thrift.INVALID_MESSAGE_TYPE_EXCEPTION:
		return false
	}
	return true
}

// laterAnswer is the unread answer to a call sent by CloseLater.
type laterAnswer struct {
	seqID  int32
	method string
	result thrift.TStruct
}

// corker is a binary transport that can hold several whole messages and
// write them at once.
type corker interface {
	cork()
	uncork() error
}

// corked runs fn, whose messages the transport then writes with one write
// (one system call and one wake-up of HS2 instead of one per message).
func (s *Session) corked(fn func() error) error {
	c, ok := s.tr.(corker)
	if !ok {
		return fn()
	}
	c.cork()
	err := fn()
	if uerr := c.uncork(); err == nil {
		err = uerr
	}
	return err
}

// send writes one call's request and returns its sequence id.
func (s *Session) send(ctx context.Context, method string, args thrift.TStruct) (int32, error) {
	s.seq++
	var tc thrift.TStandardClient // Send and Recv use only their arguments
	return s.seq, tc.Send(ctx, s.proto, s.seq, method, args)
}

// SchemaAhead is Schema that, on the binary transports, also sends the
// first FetchResults request (rows, 1..MaxFetchRows) and, when next > 0,
// the second (next rows) in the same write, so that HS2 answers them in one
// round trip; the next Fetch or FetchAhead calls read the rows, in order,
// whatever sizes they ask for themselves. HS2 serves a connection's
// requests in order, and the caller saw the operation FINISHED, so the
// fetches find the result ready, as they would a round trip later. Every
// result needs two fetches (the rows, and the empty batch that ends them),
// so a second one sent ahead is never wasted. Over HTTP, or when the schema
// is already known, it is Schema.
func (o *Operation) SchemaAhead(ctx context.Context, rows, next int) (Schema, error) {
	if rows < 1 || rows > MaxFetchRows {
		return nil, fmt.Errorf("hs2: fetch size %d out of range 1..%d", rows, MaxFetchRows)
	}
	if next < 0 || next > MaxFetchRows {
		return nil, fmt.Errorf("hs2: fetch size %d out of range 0..%d", next, MaxFetchRows)
	}
	if !o.s.pipelines() {
		return o.Schema(ctx)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.schema != nil || !o.hasRS.Load() || o.done || o.next > 0 {
		return o.schemaLocked(ctx)
	}
	s := o.s
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	var resp *hiveserver.TGetResultSetMetadataResp
	err := s.callLocked(ctx, "GetResultSetMetadata", callOpts{keepAhead: o}, func(ctx context.Context) (*hiveserver.TStatus, error) {
		if len(s.ahead) > 0 {
			// Fetches for o are in flight after an earlier SchemaAhead
			// failed: their answers come next on the wire, so a plain
			// metadata call would read one of them. Refuse, sending nothing.
			return nil, errors.New("hs2: schema asked again while the operation's fetches are in flight")
		}
		var seq int32
		err := s.corked(func() error {
			var err error
			seq, err = s.send(ctx, "GetResultSetMetadata", &hiveserver.TCLIServiceGetResultSetMetadataArgs{Req: &hiveserver.TGetResultSetMetadataReq{OperationHandle: o.h}})
			if err != nil {
				return err
			}
			for _, n := range []int{rows, next} {
				if n == 0 {
					break
				}
				fseq, err := s.sendFetch(ctx, o.h, n)
				if err != nil {
					return err
				}
				s.ahead = append(s.ahead, fetchAhead{op: o, seqID: fseq})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		var result hiveserver.TCLIServiceGetResultSetMetadataResult
		var tc thrift.TStandardClient
		if err := tc.Recv(ctx, s.proto, seq, "GetResultSetMetadata", &result); err != nil {
			return nil, err
		}
		if result.Success == nil {
			return nil, thrift.NewTApplicationException(thrift.MISSING_RESULT, "GetResultSetMetadata failed: unknown result")
		}
		resp = result.Success
		return resp.Status, nil
	})
	if err != nil {
		return nil, err
	}
	return o.setSchema(resp)
}

// CloseLater is Close that, on the binary transports, does not wait for
// HS2's answer: the request goes out now and the session's next call
// (the next statement on a pooled session, a validation ping, its
// CloseSession) reads the answer first. HS2 serves requests in order, so
// the operation is closed before anything sent after it runs. It saves the
// round trip at the end of every query. Over HTTP it is Close.
func (o *Operation) CloseLater(ctx context.Context) error {
	s := o.s
	if !s.pipelines() {
		return o.Close(ctx)
	}
	if o.closed.Swap(true) || s.Broken() {
		return nil
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	err := s.callLocked(ctx, "CloseOperation", callOpts{}, func(ctx context.Context) (*hiveserver.TStatus, error) {
		seq, err := s.send(ctx, "CloseOperation", &hiveserver.TCLIServiceCloseOperationArgs{Req: &hiveserver.TCloseOperationReq{OperationHandle: o.h}})
		if err != nil {
			return nil, err
		}
		s.later = append(s.later, laterAnswer{seqID: seq, method: "CloseOperation", result: &hiveserver.TCLIServiceCloseOperationResult{}})
		return &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_SUCCESS_STATUS}, nil
	})
	if errors.Is(err, ErrSessionClosed) {
		return nil
	}
	return err
}
