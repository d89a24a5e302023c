package flightsql_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-adbc/go/adbc"
	adbcfsql "github.com/apache/arrow-adbc/go/adbc/driver/flightsql"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	fsqlclient "github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/authn"
	"github.com/hiveqd/hiveqd/flightsql"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/routing"
	"github.com/hiveqd/hiveqd/tlsutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	conn  = "hive"
	token = "s3cret-token-for-alice"
)

// fixture serves Flight SQL on a loopback port, on an engine routed to a
// simulator, with a token file ("s3cret-token-for-alice alice").
type fixture struct {
	addr   string
	table  *routing.Table
	engine *query.Engine
	srv    *flightsql.Server
	users  *userEngine
	epoch  uint64
}

func testLogger() *slog.Logger {
	if os.Getenv("FLIGHTSQL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
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

func newFixture(t testing.TB, s *hs2sim.Server, mod func(*flightsql.Config)) *fixture {
	return newFixtureTLS(t, s, mod, nil)
}

// userEngine records the user of each query.
type userEngine struct {
	*query.Engine
	mu    sync.Mutex
	users []string
	conf  map[string]string // when set, every request's HS2 session settings
}

func (e *userEngine) Execute(ctx context.Context, req query.Request, emit func(query.Event) error) error {
	e.mu.Lock()
	e.users = append(e.users, req.User)
	if e.conf != nil {
		req.Config = e.conf
	}
	e.mu.Unlock()
	return e.Engine.Execute(ctx, req, emit)
}

// newFixtureTLS serves over TLS with the PKI's server certificate and,
// accepting its client certificates as identities (mTLS), when pki is set.
func newFixtureTLS(t testing.TB, s *hs2sim.Server, mod func(*flightsql.Config), pki *tlsutil.TestPKI) *fixture {
	t.Helper()
	f := &fixture{table: routing.NewTable()}
	f.route(s, false)
	eng, err := query.New(query.Config{
		ReplicaID: "replica-1", Routes: f.table, DefaultConnector: conn,
		Connectors: map[string]query.Connector{conn: {MaxSessions: 8}},
		RetryWait:  5 * time.Second, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = eng
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(token+" alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := authn.New(authn.Options{TokenFile: tokens, MTLS: pki != nil, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f.users = &userEngine{Engine: eng}
	cfg := flightsql.Config{
		Engine: f.users, Version: "test",
		UserFromContext: func(ctx context.Context) string { p, _ := authn.FromContext(ctx); return p.Name },
		Logger:          testLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := flightsql.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	opts := flightsql.ServerOptions(a)
	if pki != nil {
		tc, err := tlsutil.ServerConfig(pki.Server.CertFile, pki.Server.KeyFile, pki.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	gs := grpc.NewServer(opts...)
	srv.Register(gs)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Close(ctx)
	})
	return f
}

func (f *fixture) route(s *hs2sim.Server, prevDead bool) {
	f.epoch++
	f.table.Update(routing.Route{Connector: conn, Epoch: f.epoch, PrevDead: prevDead, Reason: "test", ChosenAt: time.Now(),
		Endpoint: &hs2.Endpoint{Host: s.Host(), Port: s.Port()}})
}

// checkClean waits until s has no open operations and no session beyond
// the engine's pool.
func (f *fixture) checkClean(t *testing.T, s *hs2sim.Server) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, func() error {
		st, pool := s.Stats(), f.engine.PoolStats()
		if st.OpenOperations != 0 {
			return fmt.Errorf("%d open operations", st.OpenOperations)
		}
		if st.OpenSessions > pool.Open || pool.InUse != 0 {
			return fmt.Errorf("%d sessions open, pools %+v", st.OpenSessions, pool)
		}
		return nil
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// adbcConn opens an ADBC Flight SQL connection with opts added.
func (f *fixture) adbcConn(t *testing.T, opts map[string]string) adbc.Connection {
	t.Helper()
	o := map[string]string{adbc.OptionKeyURI: "grpc://" + f.addr}
	for k, v := range opts {
		o[k] = v
	}
	db, err := adbcfsql.NewDriver(memory.DefaultAllocator).NewDatabase(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cn, err := db.Open(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cn.Close() })
	return cn
}

func bearer() map[string]string {
	return map[string]string{adbcfsql.OptionAuthorizationHeader: "Bearer " + token}
}

// client is arrow-go's own Flight SQL client with the token.
func (f *fixture) client(t *testing.T) (*fsqlclient.Client, context.Context) {
	t.Helper()
	cl, err := fsqlclient.NewClient(f.addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	ctx := metadata.AppendToOutgoingContext(ctxT(t, 60*time.Second), "authorization", "Bearer "+token)
	return cl, ctx
}

// executeAndGet runs stmt through arrow-go's Flight SQL client and opens
// the stream of its one endpoint.
func executeAndGet(ctx context.Context, t *testing.T, cl *fsqlclient.Client, stmt string) (*flight.FlightInfo, *flight.Reader) {
	t.Helper()
	info, err := cl.Execute(ctx, stmt)
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	return info, rdr
}

// readAll reads every record of an ADBC reader, retained.
func readAll(t *testing.T, rdr array.RecordReader) (*arrow.Schema, []arrow.RecordBatch) {
	t.Helper()
	defer rdr.Release()
	var recs []arrow.RecordBatch
	for rdr.Next() {
		r := rdr.RecordBatch()
		r.Retain()
		recs = append(recs, r)
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	return rdr.Schema(), recs
}

func adbcQuery(t *testing.T, cn adbc.Connection, q string) (*arrow.Schema, []arrow.RecordBatch, error) {
	t.Helper()
	st, err := cn.NewStatement()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetSqlQuery(q); err != nil {
		t.Fatal(err)
	}
	rdr, _, err := st.ExecuteQuery(ctxT(t, 60*time.Second))
	if err != nil {
		return nil, nil, err
	}
	defer rdr.Release()
	var recs []arrow.RecordBatch
	for rdr.Next() {
		r := rdr.RecordBatch()
		r.Retain()
		recs = append(recs, r)
	}
	t.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	return rdr.Schema(), recs, rdr.Err()
}

func TestAllTypesADBC(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	cn := f.adbcConn(t, bearer())
	schema, recs, err := adbcQuery(t, cn, "SELECT * FROM default.all_types")
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := map[string]arrow.DataType{
		"id": arrow.PrimitiveTypes.Int32, "c_boolean": arrow.FixedWidthTypes.Boolean, "c_tinyint": arrow.PrimitiveTypes.Int8,
		"c_smallint": arrow.PrimitiveTypes.Int16, "c_int": arrow.PrimitiveTypes.Int32, "c_bigint": arrow.PrimitiveTypes.Int64,
		"c_float": arrow.PrimitiveTypes.Float32, "c_double": arrow.PrimitiveTypes.Float64,
		"c_decimal": &arrow.Decimal128Type{Precision: 10, Scale: 2}, "c_string": arrow.BinaryTypes.String,
		"c_varchar": arrow.BinaryTypes.String, "c_char": arrow.BinaryTypes.String, "c_date": arrow.FixedWidthTypes.Date32,
		"c_timestamp": &arrow.TimestampType{Unit: arrow.Microsecond}, "c_binary": arrow.BinaryTypes.Binary,
	}
	if len(schema.Fields()) != len(wantTypes) {
		t.Fatalf("schema %v", schema)
	}
	col := map[string]int{}
	for i, fld := range schema.Fields() {
		name := fld.Name[strings.LastIndexByte(fld.Name, '.')+1:]
		col[name] = i
		if !arrow.TypeEqual(fld.Type, wantTypes[name]) {
			t.Errorf("%s: type %s, want %s", fld.Name, fld.Type, wantTypes[name])
		}
		if v, ok := fld.Metadata.GetValue(flightsql.MetaHiveType); !ok || v == "" {
			t.Errorf("%s: no %s metadata: %v", fld.Name, flightsql.MetaHiveType, fld.Metadata)
		}
	}
	if v, _ := schema.Field(col["c_decimal"]).Metadata.GetValue(flightsql.MetaHiveType); v != "decimal(10,2)" {
		t.Errorf("c_decimal hive type %q", v)
	}
	rows := 0
	for _, r := range recs {
		rows += int(r.NumRows())
	}
	if rows != 4 || len(recs) != 1 {
		t.Fatalf("%d rows in %d records", rows, len(recs))
	}
	r := recs[0]
	get := func(name string) arrow.Array { return r.Column(col[name]) }
	// Row 3 (index 2) is all NULLs but its id.
	for name := range wantTypes {
		a := get(name)
		if name == "id" {
			if a.NullN() != 0 {
				t.Errorf("id has NULLs")
			}
			continue
		}
		if !a.IsNull(2) || a.NullN() != 1 {
			t.Errorf("%s: NULLs %d, row 2 null %v", name, a.NullN(), a.IsNull(2))
		}
	}
	checks := []struct {
		name string
		row  int
		want string
	}{
		{"c_boolean", 0, "true"}, {"c_tinyint", 1, "-128"}, {"c_smallint", 1, "-32768"}, {"c_int", 3, "2147483647"},
		{"c_bigint", 1, "-9223372036854775808"}, {"c_float", 0, "1.5"}, {"c_double", 1, "-1e+10"},
		{"c_decimal", 1, "-99999999.99"}, {"c_decimal", 3, "0.01"}, {"c_string", 3, "unicode ✓ é"},
		{"c_char", 0, "ab   "}, {"c_date", 0, "2024-01-15"}, {"c_date", 1, "1970-01-01"},
		{"c_timestamp", 1, "1970-01-01 00:00:00.123"}, {"c_timestamp", 3, "2099-12-31 23:59:59.999999"},
		{"c_binary", 0, "\x01\x02\xff"},
	}
	for _, c := range checks {
		if got := render(get(c.name), c.row); got != c.want {
			t.Errorf("%s[%d] = %q, want %q", c.name, c.row, got, c.want)
		}
	}
	f.checkClean(t, s)
}

// render shows one value as Hive would print it.
func render(a arrow.Array, i int) string {
	switch a := a.(type) {
	case *array.Boolean:
		return fmt.Sprint(a.Value(i))
	case *array.Int8:
		return fmt.Sprint(a.Value(i))
	case *array.Int16:
		return fmt.Sprint(a.Value(i))
	case *array.Int32:
		return fmt.Sprint(a.Value(i))
	case *array.Int64:
		return fmt.Sprint(a.Value(i))
	case *array.Float32:
		return fmt.Sprint(a.Value(i))
	case *array.Float64:
		return fmt.Sprint(a.Value(i))
	case *array.Decimal128:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	case *array.Date32:
		return a.Value(i).ToTime().Format("2006-01-02")
	case *array.Timestamp:
		tm := time.UnixMicro(int64(a.Value(i))).UTC()
		s := tm.Format("2006-01-02 15:04:05.999999")
		return s
	}
	return a.ValueStr(i)
}

func TestSynthRowsArrowClient(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	cl, ctx := f.client(t)
	info, rdr := executeAndGet(ctx, t, cl, "SELECT * FROM synth.rows_100000")
	defer rdr.Release()
	rows, batches := int64(0), 0
	for rdr.Next() {
		rows += rdr.RecordBatch().NumRows()
		batches++
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
	if rows != 100000 || batches < 10 {
		t.Fatalf("%d rows in %d batches", rows, batches)
	}
	// A ticket is read once.
	rdr2, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err == nil {
		for rdr2.Next() {
		}
		err = rdr2.Err()
		rdr2.Release()
	}
	if status.Code(err) != codes.NotFound {
		t.Fatalf("second DoGet: %v", err)
	}
	f.checkClean(t, s)
}

// sqlState is the ErrorInfo sql_state of a gRPC error.
func errorInfo(err error) (*errdetails.ErrorInfo, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info, true
		}
	}
	return nil, false
}

func TestErrors(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	cl, ctx := f.client(t)
	_, err := cl.Execute(ctx, "SELECT * FROM no_such_table")
	if status.Code(err) != codes.NotFound {
		t.Fatalf("missing table: %v", err)
	}
	info, ok := errorInfo(err)
	if !ok || info.Reason != query.ReasonNotFound || info.Metadata["sql_state"] != "42S02" || info.Domain != "hiveqd.io" {
		t.Fatalf("ErrorInfo %v", info)
	}
	if !strings.Contains(status.Convert(err).Message(), "no_such_table") {
		t.Fatalf("message %q", status.Convert(err).Message())
	}
	_, err = cl.Execute(ctx, "SELEC 1")
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("syntax error: %v", err)
	}
	_, err = cl.Execute(ctx, "")
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty statement: %v", err)
	}

	// ADBC hears the same: the status code and HS2's SQLSTATE.
	cn := f.adbcConn(t, bearer())
	_, _, err = adbcQuery(t, cn, "SELECT * FROM no_such_table")
	var ae adbc.Error
	if !errors.As(err, &ae) || ae.Code != adbc.StatusNotFound || !strings.Contains(ae.Msg, "Table not found") {
		t.Fatalf("ADBC error %#v", err)
	}
	sqlState := false // the ErrorInfo detail, as ADBC hands it on
	for _, d := range ae.Details {
		if b, err := d.Serialize(); err == nil && strings.Contains(string(b), "42S02") {
			sqlState = true
		}
	}
	if !sqlState {
		t.Fatalf("ADBC error details carry no SQLSTATE: %#v", ae.Details)
	}

	// A query HS2 fails at run time.
	s.FailQueries(true)
	_, err = cl.Execute(ctx, "SELECT * FROM default.employees")
	s.FailQueries(false)
	if status.Code(err) != codes.Unknown {
		t.Fatalf("failed query: %v", err)
	}
	f.checkClean(t, s)
}

func TestGetObjectsADBC(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	cn := f.adbcConn(t, bearer())
	rdr, err := cn.GetObjects(ctxT(t, 30*time.Second), adbc.ObjectDepthTables, nil, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, recs := readAll(t, rdr)
	found := map[string]string{}
	for _, r := range recs {
		schemas := r.Column(1).(*array.List)
		sv := schemas.ListValues().(*array.Struct)
		names := sv.Field(0).(*array.String)
		tables := sv.Field(1).(*array.List)
		tv := tables.ListValues().(*array.Struct)
		tnames, ttypes := tv.Field(0).(*array.String), tv.Field(1).(*array.String)
		for i := 0; i < names.Len(); i++ {
			start, end := tables.ValueOffsets(i)
			for j := start; j < end; j++ {
				found[names.Value(i)+"."+tnames.Value(int(j))] = ttypes.Value(int(j))
			}
		}
	}
	for _, want := range []string{"default.all_types", "default.employees", "sales.orders", "sales.customers"} {
		if found[want] != "TABLE" {
			t.Errorf("GetObjects has no TABLE %s: %v", want, found)
		}
	}
	// A table's Arrow schema comes from HS2's GetColumns.
	sc, err := cn.GetTableSchema(ctxT(t, 30*time.Second), nil, ptr("sales"), "orders")
	if err != nil {
		t.Fatal(err)
	}
	if sc.NumFields() != 8 || !arrow.TypeEqual(sc.Field(3).Type, &arrow.Decimal128Type{Precision: 10, Scale: 2}) ||
		!arrow.TypeEqual(sc.Field(0).Type, arrow.PrimitiveTypes.Int64) {
		t.Fatalf("orders schema %v", sc)
	}
	types, err := cn.GetTableTypes(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_, trecs := readAll(t, types)
	var tt []string
	for _, r := range trecs {
		for i := 0; i < int(r.NumRows()); i++ {
			tt = append(tt, r.Column(0).(*array.String).Value(i))
		}
	}
	if strings.Join(tt, ",") != "TABLE,VIEW,MATERIALIZED_VIEW" {
		t.Fatalf("table types %v", tt)
	}
	f.checkClean(t, s)
}

func ptr[T any](v T) *T { return &v }

func TestSqlInfoAndPrepared(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	cl, ctx := f.client(t)
	info, err := cl.GetSqlInfo(ctx, []fsqlclient.SqlInfo{fsqlclient.SqlInfoFlightSqlServerName, fsqlclient.SqlInfoFlightSqlServerVersion, fsqlclient.SqlInfoFlightSqlServerReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint32]string{}
	for rdr.Next() {
		r := rdr.RecordBatch()
		for i := 0; i < int(r.NumRows()); i++ {
			got[r.Column(0).(*array.Uint32).Value(i)] = r.Column(1).ValueStr(i)
		}
	}
	rdr.Release()
	if !strings.Contains(got[uint32(fsqlclient.SqlInfoFlightSqlServerName)], "hiveqd") ||
		!strings.Contains(got[uint32(fsqlclient.SqlInfoFlightSqlServerVersion)], "test") {
		t.Fatalf("sql info %v", got)
	}

	// Prepared statements run like statements; parameters are refused.
	cn := f.adbcConn(t, bearer())
	st, err := cn.NewStatement()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetSqlQuery("SELECT name FROM default.employees"); err != nil {
		t.Fatal(err)
	}
	if err := st.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	prdr, _, err := st.ExecuteQuery(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, recs := readAll(t, prdr)
	if len(recs) != 1 || recs[0].NumRows() != 6 {
		t.Fatalf("prepared: %v", recs)
	}
	st2, _ := cn.NewStatement()
	defer st2.Close()
	_ = st2.SetSqlQuery("SELECT name FROM default.employees WHERE id = ?")
	err = st2.Prepare(ctx)
	var ae adbc.Error
	if !errors.As(err, &ae) || ae.Code != adbc.StatusNotImplemented || !strings.Contains(ae.Msg, "parameters") {
		t.Fatalf("prepare with a parameter: %#v", err)
	}
	f.checkClean(t, s)
}

func TestPollFlightInfo(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, func(c *flightsql.Config) { c.PollWait = 50 * time.Millisecond })
	cl, ctx := f.client(t)
	s.SetSlow(300 * time.Millisecond) // HS2 takes a while
	defer s.SetSlow(0)
	pi, err := cl.ExecutePoll(ctx, "SELECT * FROM default.employees", nil)
	if err != nil {
		t.Fatal(err)
	}
	polls := 1
	for pi.GetFlightDescriptor() != nil {
		if pi, err = cl.ExecutePoll(ctx, "SELECT * FROM default.employees", pi.GetFlightDescriptor()); err != nil {
			t.Fatal(err)
		}
		polls++
		if polls > 1000 {
			t.Fatal("never finished")
		}
	}
	info := pi.GetInfo()
	if len(info.Endpoint) != 1 {
		t.Fatalf("final info %v", info)
	}
	rdr, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	rows := int64(0)
	for rdr.Next() {
		rows += rdr.RecordBatch().NumRows()
	}
	rdr.Release()
	if rows != 6 {
		t.Fatalf("%d rows after %d polls", rows, polls)
	}
	f.checkClean(t, s)
}

func TestCancelFlightInfo(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	cl, ctx := f.client(t)
	info, rdr := executeAndGet(ctx, t, cl, "SELECT * FROM synth.rows_100000000")
	defer rdr.Release()
	if !rdr.Next() {
		t.Fatalf("no first batch: %v", rdr.Err())
	}
	res, err := cl.CancelFlightInfo(ctx, &flight.CancelFlightInfoRequest{Info: info})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != flight.CancelStatusCancelled {
		t.Fatalf("cancel: %v", res.Status)
	}
	for rdr.Next() {
	}
	if status.Code(rdr.Err()) != codes.Canceled {
		t.Fatalf("read after cancel: %v", rdr.Err())
	}
	f.checkClean(t, s)
}

func TestTokensAndBasicHandshake(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	cl, err := fsqlclient.NewClient(f.addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxT(t, 30*time.Second)
	if _, err := cl.Execute(ctx, "SELECT 1"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong")
	if _, err := cl.Execute(bad, "SELECT 1"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := cl.Client.AuthenticateBasicToken(ctx, "anyone", "wrong"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Basic with a wrong token: %v", err)
	}
	authed, err := cl.Client.AuthenticateBasicToken(ctx, "anyone", token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Execute(authed, "SELECT 1"); err != nil {
		t.Fatalf("after the handshake: %v", err)
	}
	// ADBC with a user name and the token as password: the Basic handshake.
	cn := f.adbcConn(t, map[string]string{adbc.OptionKeyUsername: "bob", adbc.OptionKeyPassword: token})
	if _, recs, err := adbcQuery(t, cn, "SELECT * FROM default.employees"); err != nil || recs[0].NumRows() != 6 {
		t.Fatalf("ADBC with Basic: %v", err)
	}
	f.checkClean(t, s)
}

// TestMutualTLS: a client certificate identifies the caller as on the
// gRPC port, a token sent with it decides, and a client without a
// certificate is refused.
func TestMutualTLS(t *testing.T) {
	pki, err := tlsutil.GenerateTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := startSim(t)
	f := newFixtureTLS(t, s, nil, pki)
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	base := map[string]string{adbc.OptionKeyURI: "grpc+tls://" + f.addr, adbcfsql.OptionSSLRootCerts: read(pki.CAFile)}
	withCert := map[string]string{adbcfsql.OptionMTLSCertChain: read(pki.Client.CertFile), adbcfsql.OptionMTLSPrivateKey: read(pki.Client.KeyFile)}
	for k, v := range base {
		withCert[k] = v
	}
	cn := f.adbcConn(t, withCert)
	if _, _, err := adbcQuery(t, cn, "SELECT * FROM default.employees"); err != nil {
		t.Fatal(err)
	}
	// A token, when sent, decides (as on the gRPC port).
	tok := map[string]string{adbcfsql.OptionAuthorizationHeader: "Bearer " + token}
	for k, v := range withCert {
		tok[k] = v
	}
	if _, _, err := adbcQuery(t, f.adbcConn(t, tok), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	f.users.mu.Lock()
	users := strings.Join(f.users.users, ",")
	f.users.mu.Unlock()
	if users != "client,alice" {
		t.Fatalf("users %q, want the certificate's name, then the token's", users)
	}
	o := map[string]string{}
	for k, v := range base {
		o[k] = v
	}
	db, err := adbcfsql.NewDriver(memory.DefaultAllocator).NewDatabase(o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bare, err := db.Open(ctxT(t, 30*time.Second))
	if err == nil {
		defer bare.Close()
		_, _, err = adbcQuery(t, bare, "SELECT 1")
	}
	// TLS 1.3 refuses the missing certificate after the client's
	// handshake: the client sees the alert or a broken connection.
	var ae adbc.Error
	if !errors.As(err, &ae) || ae.Code != adbc.StatusIO && ae.Code != adbc.StatusUnauthenticated {
		t.Fatalf("no client certificate: %v", err)
	}
	f.checkClean(t, s)
}

func TestFailoverMidStream(t *testing.T) {
	a, b := startSim(t), startSim(t)
	f := newFixture(t, a, nil)
	cl, ctx := f.client(t)
	a.DropAfterRows(50000)
	_, rdr := executeAndGet(ctx, t, cl, "SELECT * FROM synth.rows_1000000")
	defer rdr.Release()
	rows := int64(0)
	for rdr.Next() {
		rows += rdr.RecordBatch().NumRows()
		if rows >= 10000 && f.epoch == 1 {
			f.route(b, true) // the leader found a dead and chose b
		}
	}
	err := rdr.Err()
	if status.Code(err) != codes.Aborted || !strings.Contains(status.Convert(err).Message(), "retry") {
		t.Fatalf("read cut mid-stream after %d rows: %v", rows, err)
	}
	if info, ok := errorInfo(err); !ok || info.Reason != query.ReasonHS2Lost {
		t.Fatalf("ErrorInfo %v", info)
	}
	// The next query runs on b.
	if _, err := cl.Execute(ctx, "SELECT * FROM default.employees"); err != nil {
		t.Fatal(err)
	}
}

// TestRerunBeforeFirstRow: HS2 accepted the read, then crashed before its
// schema was known; the engine re-runs it on the new server and the Flight
// SQL client never sees the failure.
func TestRerunBeforeFirstRow(t *testing.T) {
	a, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0", LongPoll: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := startSim(t)
	f := newFixture(t, a, nil)
	f.users.mu.Lock()
	f.users.conf = map[string]string{"hs2sim.exec_delay_ms": "3000"}
	f.users.mu.Unlock()
	cl, ctx := f.client(t)
	type result struct {
		info *flight.FlightInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := cl.Execute(ctx, "SELECT * FROM default.employees")
		done <- result{info, err}
	}()
	testenv.Eventually(t, 20*time.Second, func() error {
		if n := a.Stats().OpenOperations; n < 1 {
			return fmt.Errorf("%d operations on the first server", n)
		}
		return nil
	})
	a.Crash()
	f.route(b, true) // the leader found a dead and chose b
	r := <-done
	if r.err != nil {
		t.Fatalf("a read that sent nothing failed instead of being re-run: %v", r.err)
	}
	rdr, err := cl.DoGet(ctx, r.info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	rows := int64(0)
	for rdr.Next() {
		rows += rdr.RecordBatch().NumRows()
	}
	if err := rdr.Err(); err != nil || rows != 6 {
		t.Fatalf("re-run read %d rows, err %v; want 6", rows, err)
	}
	if n := b.Stats().OperationsOpened; n < 1 {
		t.Fatalf("the second server ran %d operations", n)
	}
	f.checkClean(t, b)
}

var _ = io.EOF
