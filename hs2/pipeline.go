package hs2

import (
	"context"
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
// The request ahead is the session's until its answer is read: the next
// Fetch or FetchAhead of the same operation reads it, and any other call
// on the session first reads and drops it (an operation being cancelled or
// closed does not need those rows).

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
		if a := s.ahead; a != nil && a.op == o {
			seq, ok = a.seqID, true
		}
		s.ahead = nil
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
			s.ahead = &fetchAhead{op: o, seqID: nseq}
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
	s.seq++
	args := &hiveserver.TCLIServiceFetchResultsArgs{Req: &hiveserver.TFetchResultsReq{
		OperationHandle: h, Orientation: hiveserver.TFetchOrientation_FETCH_NEXT, MaxRows: int64(maxRows),
	}}
	var tc thrift.TStandardClient // Send and Recv use only their arguments
	return s.seq, tc.Send(ctx, s.proto, s.seq, "FetchResults", args)
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

// dropAhead wraps fn so that it first reads and drops the answer to a
// request sent ahead.
func (s *Session) dropAhead(fn func(context.Context) (*hiveserver.TStatus, error)) func(context.Context) (*hiveserver.TStatus, error) {
	return func(ctx context.Context) (*hiveserver.TStatus, error) {
		a := s.ahead
		s.ahead = nil
		if _, err := s.recvFetch(ctx, a.seqID, nil); err != nil {
			return nil, err
		}
		return fn(ctx)
	}
}
