package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/hs2sim/synth"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/replica"
	"github.com/hiveqd/hiveqd/routing"
	"github.com/hiveqd/hiveqd/service"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const conn = "default"

const grpcMaxMessage = 4 << 20

type fixture struct {
	t      *testing.T
	sim    *hs2sim.Server
	table  *routing.Table
	engine *query.Engine
	svc    *service.Service
	health *service.Health
	cc     *grpc.ClientConn
	client hiveqv1.QueryServiceClient
	epoch  uint64
}

func startSim(t testing.TB) *hs2sim.Server {
	t.Helper()
	s, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testLogger() *slog.Logger {
	if os.Getenv("SERVICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newFixture serves QueryService over bufconn on an engine routed to s
// (nil: no route yet).
// fixtureSetup is what a fixtureOption may change before the server starts.
type fixtureSetup struct {
	svc        service.Config
	serverOpts []grpc.ServerOption
}

type fixtureOption func(*fixtureSetup)

func newFixture(t testing.TB, s *hs2sim.Server, mod func(*query.Config), opts ...fixtureOption) *fixture {
	t.Helper()
	f := &fixture{sim: s, table: routing.NewTable()}
	if tt, ok := t.(*testing.T); ok {
		f.t = tt
	}
	if s != nil {
		f.route(s, false)
	}
	cfg := query.Config{
		ReplicaID:        "replica-1",
		Routes:           f.table,
		DefaultConnector: conn,
		Connectors:       map[string]query.Connector{conn: {MaxSessions: 8}},
		Logger:           testLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	eng, err := query.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.engine = eng
	setup := fixtureSetup{svc: service.Config{Engine: eng, Logger: testLogger()}}
	for _, o := range opts {
		o(&setup)
	}
	svc, err := service.New(setup.svc)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	f.health = service.NewHealth(service.HealthConfig{Routes: f.table, DefaultConnector: conn, Services: []string{service.QueryServiceName}})
	lis := bufconn.Listen(1 << 20)
	// The options replica.Run gives the hiveq.v1 server.
	gs := grpc.NewServer(append(append(replica.ServerOptions(testLogger()),
		service.ServerCodec(), grpc.InitialWindowSize(1<<20), grpc.InitialConnWindowSize(1<<20)), setup.serverOpts...)...)
	svc.Register(gs)
	f.health.Register(gs)
	reflection.Register(gs)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = gs.Serve(lis)
	}()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	f.cc = cc
	f.client = hiveqv1.NewQueryServiceClient(cc)
	t.Cleanup(func() {
		cc.Close()
		gs.Stop()
		wg.Wait()
		f.health.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Close(ctx)
	})
	return f
}

func (f *fixture) route(s *hs2sim.Server, drain bool) uint64 {
	return f.publish(s, routing.Route{Drain: drain})
}

// routeDead switches to s declaring the previous server dead (PrevDead):
// only such a switch ends the queries running there.
func (f *fixture) routeDead(s *hs2sim.Server) uint64 {
	return f.publish(s, routing.Route{PrevDead: true})
}

func (f *fixture) publish(s *hs2sim.Server, r routing.Route) uint64 {
	f.epoch++
	r.Connector, r.Epoch, r.Reason, r.ChosenAt = conn, f.epoch, "test", time.Now()
	if s != nil {
		r.Endpoint = &hs2.Endpoint{Host: s.Host(), Port: s.Port()}
	} else {
		r.Reason = "no HiveServer2 registered in ZooKeeper"
	}
	f.table.Update(r)
	return f.epoch
}

type stream struct {
	msgs []*hiveqv1.ExecuteResponse
	err  error
}

func (s *stream) statuses() []*hiveqv1.QueryStatus {
	var out []*hiveqv1.QueryStatus
	for _, m := range s.msgs {
		if st := m.GetStatus(); st != nil {
			out = append(out, st)
		}
	}
	return out
}

func (s *stream) last() *hiveqv1.QueryStatus {
	st := s.statuses()
	if len(st) == 0 {
		return nil
	}
	return st[len(st)-1]
}

func (s *stream) schema() *hiveqv1.ResultSchema {
	for _, m := range s.msgs {
		if sc := m.GetSchema(); sc != nil {
			return sc
		}
	}
	return nil
}

func (s *stream) batches() []*hiveqv1.RowBatch {
	var out []*hiveqv1.RowBatch
	for _, m := range s.msgs {
		if b := m.GetBatch(); b != nil {
			out = append(out, b)
		}
	}
	return out
}

// execute runs req to the end of the stream; onMsg (may be nil) sees each
// response as it arrives.
func (f *fixture) execute(ctx context.Context, req *hiveqv1.ExecuteRequest, onMsg func(*hiveqv1.ExecuteResponse), opts ...grpc.CallOption) *stream {
	out := &stream{}
	cl, err := f.client.Execute(ctx, req, opts...)
	if err != nil {
		out.err = err
		return out
	}
	for {
		m, err := cl.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			out.err = err
			return out
		}
		out.msgs = append(out.msgs, m)
		if onMsg != nil {
			onMsg(m)
		}
	}
}

// checkClean waits until the simulators have no open operations and no
// sessions beyond the engine's pools.
func (f *fixture) checkClean(t *testing.T, sims ...*hs2sim.Server) {
	t.Helper()
	for _, s := range sims {
		testenv.Eventually(t, 10*time.Second, func() error {
			st, pool := s.Stats(), f.engine.PoolStats()
			if st.OpenOperations != 0 {
				return fmt.Errorf("%s: %d open operations", s.Addr(), st.OpenOperations)
			}
			if st.OpenSessions > pool.Open || pool.InUse != 0 {
				return fmt.Errorf("%s: %d sessions open, pools %+v", s.Addr(), st.OpenSessions, pool)
			}
			return nil
		})
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// errorInfo checks err's code and its ErrorInfo and returns the latter.
func errorInfo(t *testing.T, err error, code codes.Code, reason string) *errdetails.ErrorInfo {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("error %v, want code %v", err, code)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.Domain != service.ErrorDomain || info.Reason != reason {
				t.Fatalf("ErrorInfo %v, want reason %s", info, reason)
			}
			return info
		}
	}
	t.Fatalf("%v: no ErrorInfo", err)
	return nil
}

func isNull(v *hiveqv1.ColumnVector, i int) bool {
	return i/8 < len(v.Nulls) && v.Nulls[i/8]&(1<<(i%8)) != 0
}

func TestAllTypes(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	res := f.execute(ctxT(t, 30*time.Second), &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM all_types ORDER BY id", QueryId: "q-types"}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	first := res.statuses()[0]
	if first.State != hiveqv1.QueryState_QUERY_STATE_SUBMITTED || first.Server != s.Addr() || first.Epoch != 1 || first.ReplicaId != "replica-1" || first.QueryId != "q-types" || first.Connector != conn {
		t.Fatalf("first status %v", first)
	}
	last := res.last()
	if last.State != hiveqv1.QueryState_QUERY_STATE_FINISHED || last.Rows != 4 || last.Elapsed.AsDuration() <= 0 {
		t.Fatalf("last status %v", last)
	}
	type col struct {
		typ  string
		kind hiveqv1.ColumnKind
	}
	want := []col{
		{"int", 2}, {"boolean", 1}, {"tinyint", 2}, {"smallint", 2}, {"int", 2}, {"bigint", 3}, {"float", 4}, {"double", 4},
		{"decimal(10,2)", 5}, {"string", 5}, {"varchar(20)", 5}, {"char(5)", 5}, {"date", 5}, {"timestamp", 5}, {"binary", 6},
	}
	sch := res.schema()
	if len(sch.Columns) != len(want) {
		t.Fatalf("schema %v", sch)
	}
	for i, c := range sch.Columns {
		if c.Type != want[i].typ || c.Kind != want[i].kind || c.Position != int32(i+1) {
			t.Errorf("column %d: %v, want %v", i+1, c, want[i])
		}
	}
	bs := res.batches()
	if len(bs) != 1 || bs[0].RowCount != 4 || bs[0].StartRow != 0 {
		t.Fatalf("batches %v", bs)
	}
	c := bs[0].Columns
	// Row index 2 is NULL in every column but id.
	for i := 1; i < len(c); i++ {
		if !isNull(c[i], 2) || isNull(c[i], 0) || isNull(c[i], 1) || isNull(c[i], 3) {
			t.Errorf("column %s: nulls %08b", sch.Columns[i].Name, c[i].Nulls)
		}
	}
	if len(c[0].Nulls) != 0 {
		t.Errorf("id has a NULL bitmap %v", c[0].Nulls)
	}
	eq := func(name string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	eq("id", c[0].GetInt32Values().Values, []int32{1, 2, 3, 4})
	eq("boolean", c[1].GetBoolValues().Values, []bool{true, false, false, true})
	eq("tinyint", c[2].GetInt32Values().Values, []int32{1, -128, 0, 127})
	eq("smallint", c[3].GetInt32Values().Values, []int32{100, -32768, 0, 32767})
	eq("int", c[4].GetInt32Values().Values, []int32{1000, math.MinInt32, 0, math.MaxInt32})
	eq("bigint", c[5].GetInt64Values().Values, []int64{10000000000, math.MinInt64, 0, math.MaxInt64})
	eq("float", c[6].GetDoubleValues().Values, []float64{1.5, -0.5, 0, 3.25})
	eq("double", c[7].GetDoubleValues().Values, []float64{2.25, -1e10, 0, 0.001})
	eq("decimal", c[8].GetStringValues().Values[0], "12.50")
	eq("string", c[9].GetStringValues().Values[3], "unicode ✓ é")
	eq("string empty", c[9].GetStringValues().Values[1], "")
	eq("varchar", c[10].GetStringValues().Values[0], "varchar one")
	eq("char", c[11].GetStringValues().Values[0], "ab   ")
	eq("date", c[12].GetStringValues().Values[3], "2099-12-31")
	eq("timestamp", c[13].GetStringValues().Values[0], "2024-01-15 10:30:00")
	eq("binary", c[14].GetBytesValues().Values[0], []byte{1, 2, 0xff})
	f.checkClean(t, s)
}

func TestSynthRowsAndMessageSizes(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	res := f.execute(ctxT(t, 60*time.Second), &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_30000", FetchSize: 4000}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	next := int64(0)
	for _, b := range res.batches() {
		if b.StartRow != next {
			t.Fatalf("batch at %d, want %d", b.StartRow, next)
		}
		c := b.Columns
		for i := 0; i < int(b.RowCount); i++ {
			r := next + int64(i)
			ok := c[0].GetInt64Values().Values[i] == r &&
				isNull(c[1], i) == synth.INull(r) && (synth.INull(r) || c[1].GetInt32Values().Values[i] == synth.I(r)) &&
				isNull(c[2], i) == synth.DNull(r) && (synth.DNull(r) || c[2].GetDoubleValues().Values[i] == synth.D(r)) &&
				isNull(c[3], i) == synth.SNull(r) && (synth.SNull(r) || c[3].GetStringValues().Values[i] == synth.S(r)) &&
				isNull(c[4], i) == synth.BNull(r) && (synth.BNull(r) || c[4].GetBoolValues().Values[i] == synth.B(r))
			if !ok {
				t.Fatalf("row %d wrong", r)
			}
		}
		next += int64(b.RowCount)
	}
	if next != 30000 || res.last().Rows != 30000 {
		t.Fatalf("%d rows, last %v", next, res.last())
	}
	f.checkClean(t, s)
}

func TestWideRowsStayUnderMessageLimit(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	var maxSize, batches int
	res := f.execute(ctxT(t, 120*time.Second), &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.wide_3000", FetchSize: 10000},
		func(m *hiveqv1.ExecuteResponse) {
			if m.GetBatch() != nil {
				batches++
			}
			maxSize = max(maxSize, proto.Size(m))
		})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.last().Rows != 3000 {
		t.Fatalf("last %v", res.last())
	}
	if maxSize >= grpcMaxMessage/2 {
		t.Fatalf("largest message %d bytes", maxSize)
	}
	t.Logf("%d batches, largest message %d bytes", batches, maxSize)
	f.checkClean(t, s)
}

func TestErrorCodes(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	ctx := ctxT(t, 60*time.Second)
	for _, c := range []struct {
		stmt   string
		code   codes.Code
		reason string
		state  string
		errNo  string
	}{
		{"SELECT * FRM x", codes.InvalidArgument, query.ReasonCompileError, "42000", "40000"},
		{"SELECT * FROM default.no_such_table", codes.NotFound, query.ReasonNotFound, "42S02", "10001"},
		{"SELECT nope FROM default.employees", codes.InvalidArgument, query.ReasonCompileError, "42000", ""},
	} {
		res := f.execute(ctx, &hiveqv1.ExecuteRequest{Statement: c.stmt}, nil)
		info := errorInfo(t, res.err, c.code, c.reason)
		md := info.Metadata
		if md["sql_state"] != c.state || c.errNo != "" && md["error_code"] != c.errNo || md["server"] != s.Addr() || md["epoch"] != "1" || md["connector"] != conn || md["query_id"] == "" {
			t.Errorf("%s: metadata %v", c.stmt, md)
		}
		if last := res.last(); last.GetState() != hiveqv1.QueryState_QUERY_STATE_FAILED || last.Message == "" {
			t.Errorf("%s: last %v", c.stmt, last)
		}
	}
	s.FailQueries(true)
	res := f.execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM default.employees"}, nil)
	info := errorInfo(t, res.err, codes.Unknown, query.ReasonQueryFailed)
	if info.Metadata["sql_state"] != "08S01" {
		t.Errorf("metadata %v", info.Metadata)
	}
	s.FailQueries(false)

	// No route for the connector.
	f.route(nil, false)
	res = f.execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT 1"}, nil)
	errorInfo(t, res.err, codes.Unavailable, query.ReasonNoHS2)
	if msg := status.Convert(res.err).Message(); !strings.Contains(msg, conn) || !strings.Contains(msg, "no HiveServer2 registered in ZooKeeper") {
		t.Errorf("message %q", msg)
	}
	f.checkClean(t, s)
}

// rawCodec sends fixed bytes as the request, so a test can send what the
// proto library would refuse to encode (invalid UTF-8).
type rawCodec struct{ req []byte }

func (c rawCodec) Marshal(any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(c.req)}, nil
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(grpcproto.Name).Unmarshal(data, v)
}

func (rawCodec) Name() string { return grpcproto.Name }

func TestBadRequests(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	ctx := ctxT(t, 60*time.Second)
	for name, req := range map[string]*hiveqv1.ExecuteRequest{
		"empty":             {},
		"whitespace":        {Statement: "  \n\t "},
		"over 1 MiB":        {Statement: "SELECT '" + strings.Repeat("y", 1<<20) + "'"},
		"unknown connector": {Statement: "SELECT 1", Connector: "elsewhere"},
		"fetch -1":          {Statement: "SELECT 1", FetchSize: -1},
		"fetch 10001":       {Statement: "SELECT 1", FetchSize: 10001},
		"fetch max":         {Statement: "SELECT 1", FetchSize: math.MaxInt32},
		"fetch min":         {Statement: "SELECT 1", FetchSize: math.MinInt32},
		"max_rows":          {Statement: "SELECT 1", MaxRows: -1},
		"config empty key":  {Statement: "SELECT 1", Config: map[string]string{"": "v"}},
	} {
		res := f.execute(ctx, req, nil)
		errorInfo(t, res.err, codes.InvalidArgument, query.ReasonInvalidRequest)
		if len(res.msgs) != 0 {
			t.Errorf("%s: got %d messages", name, len(res.msgs))
		}
	}
	// Invalid UTF-8 cannot be encoded by protobuf libraries; send raw bytes.
	raw := func(fields ...[2]any) []byte {
		var b []byte
		for _, fl := range fields {
			b = protowire.AppendTag(b, protowire.Number(fl[0].(int)), protowire.BytesType)
			b = protowire.AppendBytes(b, fl[1].([]byte))
		}
		return b
	}
	entry := func(k, v string) []byte {
		return raw([2]any{1, []byte(k)}, [2]any{2, []byte(v)})
	}
	for name, body := range map[string][]byte{
		"statement": raw([2]any{1, []byte("SELECT '\xc3\x28'")}),
		"database":  raw([2]any{1, []byte("SELECT 1")}, [2]any{3, []byte("d\xff")}),
		"config":    raw([2]any{1, []byte("SELECT 1")}, [2]any{4, entry("k", "\xe2\x82")}),
		"query id":  raw([2]any{1, []byte("SELECT 1")}, [2]any{7, []byte("\xff")}),
	} {
		res := f.execute(ctx, &hiveqv1.ExecuteRequest{}, nil, grpc.ForceCodecV2(rawCodec{body}))
		info := errorInfo(t, res.err, codes.InvalidArgument, query.ReasonInvalidRequest)
		if info.Metadata["field"] == "" {
			t.Errorf("%s: metadata %v", name, info.Metadata)
		}
		if !strings.Contains(status.Convert(res.err).Message(), "UTF-8") {
			t.Errorf("%s: %v", name, res.err)
		}
	}
	// Cancel without an id.
	_, err := f.client.Cancel(ctx, &hiveqv1.CancelRequest{})
	errorInfo(t, err, codes.InvalidArgument, query.ReasonInvalidRequest)
	f.checkClean(t, s)
}

// cancelAtFirstBatch returns an onMsg that calls f at the first batch.
func atFirstBatch(f func()) func(*hiveqv1.ExecuteResponse) {
	var once sync.Once
	return func(m *hiveqv1.ExecuteResponse) {
		if m.GetBatch() != nil {
			once.Do(f)
		}
	}
}

func TestClientCancelMidResult(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	ctx, cancel := context.WithCancel(ctxT(t, 60*time.Second))
	var at time.Time
	res := f.execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_100000000", FetchSize: 1000,
		Config: map[string]string{"hs2sim.rows_per_second": "50000"}},
		atFirstBatch(func() {
			if n := s.Stats().OpenOperations; n != 1 {
				t.Errorf("%d open operations while streaming", n)
			}
			at = time.Now()
			cancel()
		}))
	if status.Code(res.err) != codes.Canceled {
		t.Fatalf("err %v", res.err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := s.Stats().OpenOperations; n != 0 {
			return fmt.Errorf("%d open operations", n)
		}
		return nil
	})
	if d := time.Since(at); d > time.Second {
		t.Fatalf("the operation was closed %v after the cancel", d)
	}
	f.checkClean(t, s)
}

func TestCancelRPC(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	ctx := ctxT(t, 60*time.Second)
	done := make(chan *stream, 1)
	go func() {
		done <- f.execute(ctx, &hiveqv1.ExecuteRequest{QueryId: "q-cancel", Statement: "SELECT * FROM default.employees",
			Config: map[string]string{"hs2sim.exec_delay_ms": "60000"}}, nil)
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if s.Stats().OpenOperations != 1 {
			return errors.New("not running yet")
		}
		return nil
	})
	resp, err := f.client.Cancel(ctx, &hiveqv1.CancelRequest{QueryId: "q-cancel"})
	if err != nil || resp.State != hiveqv1.QueryState_QUERY_STATE_CANCELED {
		t.Fatalf("Cancel: %v %v", resp, err)
	}
	res := <-done
	errorInfo(t, res.err, codes.Canceled, query.ReasonCancelled)
	if last := res.last(); last.State != hiveqv1.QueryState_QUERY_STATE_CANCELED {
		t.Fatalf("last %v", last)
	}
	_, err = f.client.Cancel(ctx, &hiveqv1.CancelRequest{QueryId: "q-cancel"})
	errorInfo(t, err, codes.NotFound, query.ReasonQueryNotFound)
	f.checkClean(t, s)
}

func TestDeadline(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	res := f.execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT 1", Config: map[string]string{"hs2sim.exec_delay_ms": "60000"}}, nil)
	if status.Code(res.err) != codes.DeadlineExceeded {
		t.Fatalf("err %v", res.err)
	}
	f.checkClean(t, s)
}

// A server found dead ends the stream that already sent rows: ABORTED,
// with the rows delivered (a route change alone would let it finish).
func TestFailoverAborts(t *testing.T) {
	a, b := startSim(t), startSim(t)
	f := newFixture(t, a, nil)
	res := f.execute(ctxT(t, 60*time.Second), &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_100000000", FetchSize: 1000,
		Config: map[string]string{"hs2sim.rows_per_second": "50000"}},
		atFirstBatch(func() { f.routeDead(b) }))
	info := errorInfo(t, res.err, codes.Aborted, query.ReasonHS2Lost)
	md := info.Metadata
	if md["server"] != a.Addr() || md["epoch"] != "1" || md["new_server"] != b.Addr() || md["new_epoch"] != "2" || md["rows_delivered"] == "" || md["rows_delivered"] == "0" {
		t.Fatalf("metadata %v", md)
	}
	want := fmt.Sprintf("HiveServer2 %s was replaced by %s at epoch 2; the query was lost: retry it", a.Addr(), b.Addr())
	if msg := status.Convert(res.err).Message(); msg != want {
		t.Fatalf("message %q", msg)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := a.Stats(); st.OpenSessions != 0 || st.OpenOperations != 0 {
			return fmt.Errorf("old server %+v", st)
		}
		return nil
	})
	f.checkClean(t, a, b)
}

func TestDrainCompletes(t *testing.T) {
	a, b := startSim(t), startSim(t)
	f := newFixture(t, a, nil)
	res := f.execute(ctxT(t, 60*time.Second), &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_20000", FetchSize: 1000,
		Config: map[string]string{"hs2sim.rows_per_second": "40000"}},
		atFirstBatch(func() { f.route(b, true) }))
	if res.err != nil {
		t.Fatal(res.err)
	}
	if last := res.last(); last.Rows != 20000 || last.Server != a.Addr() || last.State != hiveqv1.QueryState_QUERY_STATE_FINISHED {
		t.Fatalf("last %v", last)
	}
	// The next query runs on the new server.
	res = f.execute(ctxT(t, 60*time.Second), &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM default.employees"}, nil)
	if res.err != nil || res.last().Server != b.Addr() || res.last().Epoch != 2 {
		t.Fatalf("%v %v", res.err, res.last())
	}
	f.checkClean(t, a, b)
}

func TestHealthAndReflection(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := ctxT(t, 30*time.Second)
	hc := healthpb.NewHealthClient(f.cc)
	want := func(st healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, svc := range []string{"", service.QueryServiceName} {
				resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				if err != nil {
					return err
				}
				if resp.Status != st {
					return fmt.Errorf("%q: %v, want %v", svc, resp.Status, st)
				}
			}
			return nil
		})
	}
	want(healthpb.HealthCheckResponse_NOT_SERVING)
	s := startSim(t)
	f.route(s, false)
	want(healthpb.HealthCheckResponse_SERVING)
	f.route(nil, false)
	want(healthpb.HealthCheckResponse_NOT_SERVING)
	f.route(s, false)
	want(healthpb.HealthCheckResponse_SERVING)
	f.health.SetServing(false)
	want(healthpb.HealthCheckResponse_NOT_SERVING)
	f.health.SetServing(true)
	want(healthpb.HealthCheckResponse_SERVING)

	// Reflection lists the service.
	rc, err := reflectionpb.NewServerReflectionClient(f.cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.CloseSend()
	found := false
	for _, svc := range resp.GetListServicesResponse().GetService() {
		found = found || svc.Name == service.QueryServiceName
	}
	if !found {
		t.Fatalf("reflection: %v", resp)
	}
}
