// Package sqlclitest is a scripted hiveq.v1.QueryService on loopback TCP
// for client tests (sqlcli, the Node example): each test says what a call
// streams and how it ends, and the server records what it was asked.
package sqlclitest

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// Handler serves one Execute call: it sends with send and returns the
// call's final status (nil: OK). attempt counts calls from 1, so a handler
// can fail the first attempt and serve the retry.
type Handler func(ctx context.Context, attempt int, req *hiveqv1.ExecuteRequest, send func(*hiveqv1.ExecuteResponse) error) error

// Call is what the server saw of one Execute call.
type Call struct {
	Request  *hiveqv1.ExecuteRequest
	Metadata metadata.MD
	// Err is what the handler returned; ctx.Err() when it returned
	// because the client went away.
	Err error
	// Canceled is set when the call's context was cancelled (the client
	// cancelled or its deadline passed) by the time the handler returned.
	Canceled bool
}

// Server is a running scripted QueryService.
type Server struct {
	hiveqv1.UnimplementedQueryServiceServer

	// Addr is the 127.0.0.1:port the server listens on.
	Addr string

	handler Handler
	gs      *grpc.Server

	mu      sync.Mutex
	calls   []Call
	started chan struct{} // closed at the first call
	once    sync.Once
}

// Start listens on a free loopback port and serves h until the test ends.
func Start(t testing.TB, h Handler, opts ...grpc.ServerOption) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &Server{Addr: lis.Addr().String(), handler: h, gs: grpc.NewServer(opts...), started: make(chan struct{})}
	hiveqv1.RegisterQueryServiceServer(s.gs, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.gs.Serve(lis)
	}()
	t.Cleanup(func() {
		s.gs.Stop()
		<-done
	})
	return s
}

// Execute implements hiveqv1.QueryServiceServer.
func (s *Server) Execute(req *hiveqv1.ExecuteRequest, stream grpc.ServerStreamingServer[hiveqv1.ExecuteResponse]) error {
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	attempt := len(s.calls) + 1
	s.calls = append(s.calls, Call{Request: proto.Clone(req).(*hiveqv1.ExecuteRequest), Metadata: md.Copy()})
	s.mu.Unlock()
	s.once.Do(func() { close(s.started) })

	err := s.handler(ctx, attempt, req, stream.Send)

	s.mu.Lock()
	s.calls[attempt-1].Err = err
	s.calls[attempt-1].Canceled = ctx.Err() != nil
	s.mu.Unlock()
	return err
}

// Calls returns what the server has seen so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Started is closed when the first call arrives.
func (s *Server) Started() <-chan struct{} { return s.started }

// Canned is a Handler that sends events in order and ends with end.
func Canned(end error, events ...*hiveqv1.ExecuteResponse) Handler {
	return func(ctx context.Context, _ int, _ *hiveqv1.ExecuteRequest, send func(*hiveqv1.ExecuteResponse) error) error {
		for _, ev := range events {
			if err := send(ev); err != nil {
				return err
			}
		}
		return end
	}
}

// Error is a gRPC status error carrying a google.rpc.ErrorInfo in domain
// hiveqd.io, as hiveqd sends them.
func Error(code codes.Code, msg, reason string, meta map[string]string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "hiveqd.io", Metadata: meta})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// Status is a status event.
func Status(queryID string, state hiveqv1.QueryState, progress float64, rows int64) *hiveqv1.ExecuteResponse {
	return &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Status{Status: &hiveqv1.QueryStatus{
		QueryId: queryID, State: state, Server: "hs2-a.example:10000", Epoch: 7, ReplicaId: "replica-1",
		Connector: "default", Progress: progress, Rows: rows, Elapsed: durationpb.New(0),
	}}}
}

// Col is a schema column.
func Col(name, typ string, kind hiveqv1.ColumnKind) *hiveqv1.ColumnSchema {
	return &hiveqv1.ColumnSchema{Name: name, Type: typ, Kind: kind}
}

// Schema is a schema event; positions are filled in.
func Schema(cols ...*hiveqv1.ColumnSchema) *hiveqv1.ExecuteResponse {
	for i, c := range cols {
		c.Position = int32(i + 1)
	}
	return &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Schema{Schema: &hiveqv1.ResultSchema{Columns: cols}}}
}

// Batch is a batch event of rows rows.
func Batch(start int64, rows int, cols ...*hiveqv1.ColumnVector) *hiveqv1.ExecuteResponse {
	return &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Batch{Batch: &hiveqv1.RowBatch{StartRow: start, RowCount: int32(rows), Columns: cols}}}
}

// Nulls is a NULL bitmap for rows rows with the given rows NULL (bit i%8 of
// byte i/8); nil when none is.
func Nulls(rows int, null ...int) []byte {
	if len(null) == 0 {
		return nil
	}
	b := make([]byte, (rows+7)/8)
	for _, i := range null {
		b[i/8] |= 1 << (i % 8)
	}
	return b
}

// Vector constructors; null lists the NULL rows (their slots hold the
// zero value, as hiveqd sends them).

func Bools(v []bool, null ...int) *hiveqv1.ColumnVector {
	return &hiveqv1.ColumnVector{Nulls: Nulls(len(v), null...), Values: &hiveqv1.ColumnVector_BoolValues{BoolValues: &hiveqv1.BoolValues{Values: v}}}
}

func Int32s(v []int32, null ...int) *hiveqv1.ColumnVector {
	return &hiveqv1.ColumnVector{Nulls: Nulls(len(v), null...), Values: &hiveqv1.ColumnVector_Int32Values{Int32Values: &hiveqv1.Int32Values{Values: v}}}
}

func Int64s(v []int64, null ...int) *hiveqv1.ColumnVector {
	return &hiveqv1.ColumnVector{Nulls: Nulls(len(v), null...), Values: &hiveqv1.ColumnVector_Int64Values{Int64Values: &hiveqv1.Int64Values{Values: v}}}
}

func Doubles(v []float64, null ...int) *hiveqv1.ColumnVector {
	return &hiveqv1.ColumnVector{Nulls: Nulls(len(v), null...), Values: &hiveqv1.ColumnVector_DoubleValues{DoubleValues: &hiveqv1.DoubleValues{Values: v}}}
}

func Strings(v []string, null ...int) *hiveqv1.ColumnVector {
	return &hiveqv1.ColumnVector{Nulls: Nulls(len(v), null...), Values: &hiveqv1.ColumnVector_StringValues{StringValues: &hiveqv1.StringValues{Values: v}}}
}

func Bytes(v [][]byte, null ...int) *hiveqv1.ColumnVector {
	return &hiveqv1.ColumnVector{Nulls: Nulls(len(v), null...), Values: &hiveqv1.ColumnVector_BytesValues{BytesValues: &hiveqv1.BytesValues{Values: v}}}
}

// Compact is a ColumnVector of the values layout in the compact layout
// (BATCH_LAYOUT_COMPACT): fixed-width integers, strings and bytes as one
// buffer plus offsets.
func Compact(cv *hiveqv1.ColumnVector) *hiveqv1.ColumnVector {
	out := &hiveqv1.ColumnVector{Nulls: cv.GetNulls(), Values: cv.GetValues()}
	buffer := func(vals [][]byte) *hiveqv1.BufferValues {
		b := &hiveqv1.BufferValues{Offsets: []uint32{0}}
		for _, v := range vals {
			b.Data = append(b.Data, v...)
			b.Offsets = append(b.Offsets, uint32(len(b.Data)))
		}
		return b
	}
	switch v := cv.GetValues().(type) {
	case *hiveqv1.ColumnVector_Int32Values:
		out.Values = &hiveqv1.ColumnVector_Fixed32Values{Fixed32Values: &hiveqv1.Fixed32Values{Values: v.Int32Values.GetValues()}}
	case *hiveqv1.ColumnVector_Int64Values:
		out.Values = &hiveqv1.ColumnVector_Fixed64Values{Fixed64Values: &hiveqv1.Fixed64Values{Values: v.Int64Values.GetValues()}}
	case *hiveqv1.ColumnVector_StringValues:
		var vals [][]byte
		for _, s := range v.StringValues.GetValues() {
			vals = append(vals, []byte(s))
		}
		out.Values = &hiveqv1.ColumnVector_StringBuffer{StringBuffer: buffer(vals)}
	case *hiveqv1.ColumnVector_BytesValues:
		out.Values = &hiveqv1.ColumnVector_BytesBuffer{BytesBuffer: buffer(v.BytesValues.GetValues())}
	}
	return out
}
