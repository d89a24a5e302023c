package query_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/hs2sim/synth"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/routing"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const conn = "default"

// sim starts a simulator that is closed when the test ends, after the
// test's own checks.
func sim(t *testing.T) *hs2sim.Server {
	t.Helper()
	s, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func endpoint(s *hs2sim.Server) *hs2.Endpoint {
	return &hs2.Endpoint{Host: s.Host(), Port: s.Port()}
}

type env struct {
	t      *testing.T
	table  *routing.Table
	engine *query.Engine
	epoch  atomic.Uint64
	rep    *reporter
}

type reporter struct {
	mu      sync.Mutex
	reports []string
	onFail  func(connector string, epoch uint64, server string)
}

func (r *reporter) ReportFailure(connector string, epoch uint64, server string, err error) {
	r.mu.Lock()
	r.reports = append(r.reports, fmt.Sprintf("%s@%d %s: %v", connector, epoch, server, err))
	f := r.onFail
	r.mu.Unlock()
	if f != nil {
		f(connector, epoch, server)
	}
}

func (r *reporter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reports)
}

// newEnv builds an engine routed to s (nil: no route yet); mod adjusts
// the config. The engine is closed when the test ends, and every
// simulator passed to checkClean must then show no open operations.
func newEnv(t *testing.T, s *hs2sim.Server, mod func(*query.Config)) *env {
	t.Helper()
	e := &env{t: t, table: routing.NewTable(), rep: &reporter{}}
	if s != nil {
		e.route(s, false)
	}
	cfg := query.Config{
		ReplicaID:        "replica-1",
		Routes:           e.table,
		DefaultConnector: conn,
		Connectors:       map[string]query.Connector{conn: {MaxSessions: 8}},
		Reporter:         e.rep,
		Logger:           testLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	eng, err := query.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.engine = eng
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Close(ctx)
	})
	return e
}

func testLogger() *slog.Logger {
	if os.Getenv("QUERY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// route points the connector at s (nil: no server) with the next epoch.
func (e *env) route(s *hs2sim.Server, drain bool) uint64 {
	return e.routeTo(s, drain, false)
}

// routeTo is route; dead says the previous server was found dead.
func (e *env) routeTo(s *hs2sim.Server, drain, dead bool) uint64 {
	ep := e.epoch.Add(1)
	r := routing.Route{Connector: conn, Epoch: ep, Drain: drain, PrevDead: dead, Reason: "test", ChosenAt: time.Now()}
	if s != nil {
		r.Endpoint = endpoint(s)
	} else {
		r.Reason = "every HiveServer2 failed its health check"
	}
	e.table.Update(r)
	return ep
}

type result struct {
	events []query.Event
	err    error
}

func (r *result) statuses() []query.Status {
	var out []query.Status
	for _, ev := range r.events {
		if ev.Kind == query.EventStatus {
			out = append(out, ev.Status)
		}
	}
	return out
}

func (r *result) states() []query.State {
	var out []query.State
	for _, s := range r.statuses() {
		out = append(out, s.State)
	}
	return out
}

func (r *result) last() query.Status {
	st := r.statuses()
	if len(st) == 0 {
		return query.Status{}
	}
	return st[len(st)-1]
}

func (r *result) schema() hs2.Schema {
	for _, ev := range r.events {
		if ev.Kind == query.EventSchema {
			return ev.Schema
		}
	}
	return nil
}

func (r *result) batches() []*hs2.Batch {
	var out []*hs2.Batch
	for _, ev := range r.events {
		if ev.Kind == query.EventBatch {
			out = append(out, ev.Batch)
		}
	}
	return out
}

func (r *result) rows() int64 {
	var n int64
	for _, b := range r.batches() {
		n += int64(b.Rows)
	}
	return n
}

// run executes req and collects its events; onEvent (may be nil) sees each.
func (e *env) run(ctx context.Context, req query.Request, onEvent func(query.Event) error) *result {
	res := &result{}
	res.err = e.engine.Execute(ctx, req, func(ev query.Event) error {
		res.events = append(res.events, ev)
		if onEvent != nil {
			return onEvent(ev)
		}
		return nil
	})
	return res
}

// checkClean waits until s has no open operations and no sessions beyond
// the engine's pool.
func checkClean(t *testing.T, e *env, sims ...*hs2sim.Server) {
	t.Helper()
	for _, s := range sims {
		testenv.Eventually(t, 10*time.Second, func() error {
			st := s.Stats()
			pool := e.engine.PoolStats()
			if st.OpenOperations != 0 {
				return fmt.Errorf("%s: %d open operations", s.Addr(), st.OpenOperations)
			}
			if st.OpenSessions > pool.Open {
				return fmt.Errorf("%s: %d open sessions, the pools hold %d", s.Addr(), st.OpenSessions, pool.Open)
			}
			if pool.InUse != 0 {
				return fmt.Errorf("%d pooled sessions still lent out", pool.InUse)
			}
			return nil
		})
	}
}

func wantCode(t *testing.T, err error, code query.Code, reason string) *query.Error {
	t.Helper()
	var qe *query.Error
	if !errors.As(err, &qe) {
		t.Fatalf("error %v (%T) is not a *query.Error", err, err)
	}
	if qe.Code != code || reason != "" && qe.Reason != reason {
		t.Fatalf("error %q: code %v reason %s, want %v %s", qe.Error(), qe.Code, qe.Reason, code, reason)
	}
	return qe
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestAllTypes(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	res := e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT * FROM default.all_types ORDER BY id"}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	// Order: SUBMITTED, PENDING/RUNNING..., STREAMING, schema, batches, FINISHED.
	sts := res.statuses()
	if sts[0].State != query.StateSubmitted || sts[0].Server != s.Addr() || sts[0].Epoch != 1 || sts[0].ReplicaID != "replica-1" || sts[0].Connector != conn || sts[0].QueryID == "" {
		t.Fatalf("first status %+v", sts[0])
	}
	kinds := ""
	for _, ev := range res.events {
		switch ev.Kind {
		case query.EventStatus:
			kinds += ev.Status.State.String()[:2]
		case query.EventSchema:
			kinds += "sc"
		case query.EventBatch:
			kinds += "b"
		}
	}
	if !strings.HasPrefix(kinds, "SU") || !strings.Contains(kinds, "STscb") || !strings.HasSuffix(kinds, "bFI") {
		t.Fatalf("event order %s", kinds)
	}
	last := res.last()
	if last.State != query.StateFinished || last.Rows != 4 || last.Elapsed <= 0 {
		t.Fatalf("last status %+v", last)
	}
	wantTypes := []string{"int", "boolean", "tinyint", "smallint", "int", "bigint", "float", "double",
		"decimal(10,2)", "string", "varchar(20)", "char(5)", "date", "timestamp", "binary"}
	sch := res.schema()
	if len(sch) != len(wantTypes) {
		t.Fatalf("schema %+v", sch)
	}
	for i, c := range sch {
		if c.Type != wantTypes[i] || c.Position != i+1 {
			t.Errorf("column %d: %+v, want type %s", i+1, c, wantTypes[i])
		}
	}
	bs := res.batches()
	if len(bs) != 1 || bs[0].Rows != 4 {
		t.Fatalf("batches %+v", bs)
	}
	b := bs[0]
	for i, c := range b.Columns {
		if c.Kind != query.KindOf(sch[i].Type) {
			t.Errorf("column %s: kind %v, schema says %v", sch[i].Name, c.Kind, query.KindOf(sch[i].Type))
		}
	}
	// Row 3 (index 2) is NULL everywhere but id.
	for i := 1; i < len(b.Columns); i++ {
		if !b.Columns[i].IsNull(2) || b.Columns[i].IsNull(0) {
			t.Errorf("column %s: NULL flags wrong", sch[i].Name)
		}
	}
	check := func(col int, row int, want any) {
		t.Helper()
		if got := b.Columns[col].Value(row); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s row %d = %v (%T), want %v", sch[col].Name, row, got, got, want)
		}
	}
	check(1, 0, true)
	check(2, 1, int32(-128))
	check(3, 1, int32(-32768))
	check(4, 1, int32(-2147483648))
	check(5, 1, int64(-9223372036854775808))
	check(6, 0, 1.5)
	check(7, 1, -1e10)
	check(8, 0, "12.50")
	check(9, 3, "unicode ✓ é")
	check(10, 0, "varchar one")
	check(12, 0, "2024-01-15")
	check(14, 0, []byte{1, 2, 0xff})
	checkClean(t, e, s)
}

// checkSynth verifies rows of synth.rows_N against the generator.
func checkSynth(t *testing.T, bs []*hs2.Batch) int64 {
	t.Helper()
	next := int64(0)
	for _, b := range bs {
		if b.StartRow != next {
			t.Fatalf("batch starts at %d, want %d", b.StartRow, next)
		}
		for i := 0; i < b.Rows; i++ {
			r := next + int64(i)
			c := b.Columns
			if c[0].Int64s[i] != synth.ID(r) {
				t.Fatalf("row %d: id %d", r, c[0].Int64s[i])
			}
			if c[1].IsNull(i) != synth.INull(r) || !synth.INull(r) && c[1].Int32s[i] != synth.I(r) {
				t.Fatalf("row %d: i %v", r, c[1].Value(i))
			}
			if c[2].IsNull(i) != synth.DNull(r) || !synth.DNull(r) && c[2].Doubles[i] != synth.D(r) {
				t.Fatalf("row %d: d %v", r, c[2].Value(i))
			}
			if c[3].IsNull(i) != synth.SNull(r) || !synth.SNull(r) && c[3].Str(i) != synth.S(r) {
				t.Fatalf("row %d: s %v", r, c[3].Value(i))
			}
			if c[4].IsNull(i) != synth.BNull(r) || !synth.BNull(r) && c[4].Bools[i] != synth.B(r) {
				t.Fatalf("row %d: b %v", r, c[4].Value(i))
			}
		}
		next += int64(b.Rows)
	}
	return next
}

func TestSynthStreaming(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, func(c *query.Config) { c.Limits.MaxBatchRows = 700 })
	res := e.run(ctxT(t, 60*time.Second), query.Request{Statement: "SELECT * FROM synth.rows_25000", FetchSize: 3000}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if n := checkSynth(t, res.batches()); n != 25000 {
		t.Fatalf("%d rows", n)
	}
	for _, b := range res.batches() {
		if b.Rows > 700 {
			t.Fatalf("batch of %d rows over MaxBatchRows", b.Rows)
		}
	}
	if last := res.last(); last.State != query.StateFinished || last.Rows != 25000 {
		t.Fatalf("last %+v", last)
	}
	checkClean(t, e, s)
}

func TestMaxRows(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, func(c *query.Config) { c.Limits.MaxRowsPerQuery = 50 })
	res := e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT * FROM synth.rows_100000", MaxRows: 13, FetchSize: 5}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if n := checkSynth(t, res.batches()); n != 13 || res.last().Rows != 13 || res.last().Message != "" {
		t.Fatalf("%d rows, last %+v", n, res.last())
	}
	// The replica's limit truncates and says so.
	res = e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT * FROM synth.rows_100000"}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if n := checkSynth(t, res.batches()); n != 50 || !strings.Contains(res.last().Message, "50") {
		t.Fatalf("%d rows, last %+v", n, res.last())
	}
	checkClean(t, e, s)
}

func TestNoResultSet(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	res := e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SET hive.exec.parallel=true"}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.schema() != nil || len(res.batches()) != 0 || res.last().State != query.StateFinished {
		t.Fatalf("states %v", res.states())
	}
	checkClean(t, e, s)
}

func TestHS2Errors(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	ctx := ctxT(t, 30*time.Second)
	for _, c := range []struct {
		stmt   string
		db     string
		code   query.Code
		reason string
		state  string
	}{
		{stmt: "SELEC 1", code: query.InvalidArgument, reason: query.ReasonCompileError, state: "42000"},
		{stmt: "SELECT * FROM default.no_such_table", code: query.NotFound, reason: query.ReasonNotFound, state: "42S02"},
		{stmt: "SELECT * FROM no_such_db.t", code: query.NotFound, reason: query.ReasonNotFound},
		{stmt: "SELECT no_such_column FROM default.employees", code: query.InvalidArgument, reason: query.ReasonCompileError, state: "42000"},
	} {
		res := e.run(ctx, query.Request{Statement: c.stmt, Database: c.db}, nil)
		qe := wantCode(t, res.err, c.code, c.reason)
		if c.state != "" && qe.Metadata[query.MetaSQLState] != c.state {
			t.Errorf("%s: metadata %v", c.stmt, qe.Metadata)
		}
		if qe.Metadata[query.MetaServer] != s.Addr() || qe.Metadata[query.MetaEpoch] != "1" || qe.Metadata[query.MetaConnector] != conn || qe.Metadata[query.MetaErrorCode] == "" {
			t.Errorf("%s: metadata %v", c.stmt, qe.Metadata)
		}
		if last := res.last(); last.State != query.StateFailed || last.Message == "" {
			t.Errorf("%s: last status %+v", c.stmt, last)
		}
	}
	// A runtime failure: HS2 accepted the statement, then failed it.
	s.FailQueries(true)
	res := e.run(ctx, query.Request{Statement: "SELECT * FROM default.employees"}, nil)
	qe := wantCode(t, res.err, query.Failed, query.ReasonQueryFailed)
	if qe.Metadata[query.MetaSQLState] != "08S01" {
		t.Errorf("metadata %v", qe.Metadata)
	}
	s.FailQueries(false)
	if e.rep.count() != 0 {
		t.Errorf("statement errors were reported as server failures: %v", e.rep.reports)
	}
	checkClean(t, e, s)
}

func TestInvalidRequests(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	ctx := ctxT(t, 30*time.Second)
	big := "SELECT '" + strings.Repeat("x", 1<<20) + "'"
	for name, req := range map[string]query.Request{
		"empty":          {Statement: ""},
		"whitespace":     {Statement: " \t\n "},
		"too big":        {Statement: big},
		"bad utf8":       {Statement: "SELECT '\xff'"},
		"bad utf8 db":    {Statement: "SELECT 1", Database: "d\xff"},
		"bad db":         {Statement: "SELECT 1", Database: "a;b"},
		"unknown conn":   {Statement: "SELECT 1", Connector: "nope"},
		"fetch negative": {Statement: "SELECT 1", FetchSize: -1},
		"fetch huge":     {Statement: "SELECT 1", FetchSize: 1 << 30},
		"max_rows":       {Statement: "SELECT 1", MaxRows: -5},
		"empty key":      {Statement: "SELECT 1", Config: map[string]string{"": "x"}},
		"nul value":      {Statement: "SELECT 1", Config: map[string]string{"k": "a\x00b"}},
		"proxy user":     {Statement: "SELECT 1", Config: map[string]string{"hive.server2.proxy.user": "root"}},
		"bad query id":   {Statement: "SELECT 1", QueryID: "a\nb"},
	} {
		res := e.run(ctx, req, nil)
		if len(res.events) != 0 {
			t.Errorf("%s: events %v", name, res.states())
		}
		qe := wantCode(t, res.err, query.InvalidArgument, query.ReasonInvalidRequest)
		if !strings.Contains(qe.Message, "") || qe.Metadata[query.MetaField] == "" {
			t.Errorf("%s: %v %v", name, qe, qe.Metadata)
		}
	}
	checkClean(t, e, s)
}

func TestNoRoute(t *testing.T) {
	e := newEnv(t, nil, nil)
	res := e.run(ctxT(t, 10*time.Second), query.Request{Statement: "SELECT 1"}, nil)
	qe := wantCode(t, res.err, query.Unavailable, query.ReasonNoHS2)
	if !strings.Contains(qe.Message, conn) {
		t.Fatalf("message %q", qe.Message)
	}
	e.route(nil, false)
	res = e.run(ctxT(t, 10*time.Second), query.Request{Statement: "SELECT 1"}, nil)
	qe = wantCode(t, res.err, query.Unavailable, query.ReasonNoHS2)
	if !strings.Contains(qe.Message, "every HiveServer2 failed its health check") || !strings.Contains(qe.Message, conn) {
		t.Fatalf("message %q", qe.Message)
	}
}

// firstBatch returns an onEvent that runs f once, at the first batch.
func firstBatch(f func()) func(query.Event) error {
	var once sync.Once
	return func(ev query.Event) error {
		if ev.Kind == query.EventBatch {
			once.Do(f)
		}
		return nil
	}
}

func TestClientCancelMidResult(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	ctx, cancel := context.WithCancel(ctxT(t, 30*time.Second))
	var cancelled time.Time
	req := query.Request{Statement: "SELECT * FROM synth.rows_10000000", FetchSize: 1000,
		Config: map[string]string{"hs2sim.rows_per_second": "20000"}}
	res := e.run(ctx, req, firstBatch(func() {
		if s.Stats().OpenOperations != 1 {
			t.Errorf("stats %+v", s.Stats())
		}
		cancelled = time.Now()
		cancel()
	}))
	wantCode(t, res.err, query.Canceled, query.ReasonCancelled)
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := s.Stats().OpenOperations; n != 0 {
			return fmt.Errorf("%d open operations", n)
		}
		return nil
	})
	if d := time.Since(cancelled); d > time.Second {
		t.Errorf("operation closed %v after the cancel", d)
	}
	if res.last().State != query.StateCanceled {
		t.Errorf("last %+v", res.last())
	}
	checkClean(t, e, s)
}

func TestCancelWhileRunning(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	ctx := ctxT(t, 30*time.Second)
	req := query.Request{QueryID: "q-running", Statement: "SELECT * FROM default.employees",
		Config: map[string]string{"hs2sim.exec_delay_ms": "60000"}}
	done := make(chan *result, 1)
	go func() {
		done <- e.run(ctx, req, nil)
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if s.Stats().OpenOperations != 1 {
			return errors.New("not running yet")
		}
		return nil
	})
	// A second query with the same id is refused while the first runs.
	dup := e.run(ctx, query.Request{QueryID: "q-running", Statement: "SELECT 1"}, nil)
	wantCode(t, dup.err, query.InvalidArgument, query.ReasonQueryIDInUse)

	start := time.Now()
	st, err := e.engine.Cancel(ctx, "q-running", query.Caller{Admin: true})
	if err != nil || st != query.StateCanceled {
		t.Fatalf("Cancel: %v %v", st, err)
	}
	res := <-done
	wantCode(t, res.err, query.Canceled, query.ReasonCancelled)
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancel took %v", d)
	}
	// HS2 holds a status call for up to its long poll (5s): the operation
	// is cancelled over another connection at once, and closed when that
	// poll returns CANCELED.
	testenv.Eventually(t, time.Second, func() error {
		if n := s.Stats().OpenOperations; n != 0 {
			return fmt.Errorf("%d open operations", n)
		}
		return nil
	})
	if _, err := e.engine.Cancel(ctx, "q-running", query.Caller{Admin: true}); err == nil {
		t.Fatal("Cancel of a finished query succeeded")
	} else {
		wantCode(t, err, query.NotFound, query.ReasonQueryNotFound)
	}
	checkClean(t, e, s)
}

func TestDeadline(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res := e.run(ctx, query.Request{Statement: "SELECT * FROM default.employees",
		Config: map[string]string{"hs2sim.exec_delay_ms": "60000"}}, nil)
	wantCode(t, res.err, query.DeadlineExceeded, query.ReasonDeadline)
	checkClean(t, e, s)
}

func TestDeadServerAbortsStreamingQuery(t *testing.T) {
	a, b := sim(t), sim(t)
	e := newEnv(t, a, nil)
	req := query.Request{Statement: "SELECT * FROM synth.rows_10000000", FetchSize: 1000,
		Config: map[string]string{"hs2sim.rows_per_second": "20000"}}
	res := e.run(ctxT(t, 30*time.Second), req, firstBatch(func() { e.routeTo(b, false, true) }))
	qe := wantCode(t, res.err, query.Aborted, query.ReasonHS2Lost)
	md := qe.Metadata
	if md[query.MetaServer] != a.Addr() || md[query.MetaEpoch] != "1" || md[query.MetaNewServer] != b.Addr() || md[query.MetaNewEpoch] != "2" {
		t.Fatalf("metadata %v", md)
	}
	if md[query.MetaRowsDelivered] != strconv.FormatInt(res.rows(), 10) || res.rows() == 0 {
		t.Fatalf("rows delivered %q, streamed %d", md[query.MetaRowsDelivered], res.rows())
	}
	want := fmt.Sprintf("HiveServer2 %s was replaced by %s at epoch 2; the query was lost: retry it", a.Addr(), b.Addr())
	if qe.Message != want {
		t.Fatalf("message %q, want %q", qe.Message, want)
	}
	if res.last().State != query.StateFailed || res.last().Reruns != 0 {
		t.Fatalf("last %+v", res.last())
	}
	// The old server's pool was reset: no sessions stay there.
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := a.Stats(); st.OpenSessions != 0 || st.OpenOperations != 0 {
			return fmt.Errorf("old server: %+v", st)
		}
		return nil
	})
	// New queries go to the new server.
	res = e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT * FROM default.employees"}, nil)
	if res.err != nil || res.last().Server != b.Addr() || res.last().Epoch != 2 {
		t.Fatalf("after failover: %v %+v", res.err, res.last())
	}
	checkClean(t, e, a, b)
}

// A switch for any reason but a dead server (probe timeouts, a manual
// failover) leaves the running query to finish where it runs.
func TestFailoverLetsQueryFinish(t *testing.T) {
	a, b := sim(t), sim(t)
	e := newEnv(t, a, nil)
	req := query.Request{Statement: "SELECT * FROM synth.rows_30000", FetchSize: 1000,
		Config: map[string]string{"hs2sim.rows_per_second": "60000"}}
	res := e.run(ctxT(t, 30*time.Second), req, firstBatch(func() { e.route(b, false) }))
	if res.err != nil {
		t.Fatal(res.err)
	}
	if n := checkSynth(t, res.batches()); n != 30000 || res.last().Server != a.Addr() {
		t.Fatalf("%d rows, last %+v", n, res.last())
	}
	checkClean(t, e, a, b)
}

func TestDrainLetsQueryFinish(t *testing.T) {
	a, b := sim(t), sim(t)
	e := newEnv(t, a, nil)
	req := query.Request{Statement: "SELECT * FROM synth.rows_30000", FetchSize: 1000,
		Config: map[string]string{"hs2sim.rows_per_second": "60000"}}
	res := e.run(ctxT(t, 30*time.Second), req, firstBatch(func() { e.route(b, true) }))
	if res.err != nil {
		t.Fatal(res.err)
	}
	if n := checkSynth(t, res.batches()); n != 30000 || res.last().Server != a.Addr() {
		t.Fatalf("%d rows, last %+v", n, res.last())
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := a.Stats(); st.OpenSessions != 0 || st.OpenOperations != 0 {
			return fmt.Errorf("old server: %+v", st)
		}
		return nil
	})
	checkClean(t, e, a, b)
}

func TestRetryOnNewRouteBeforeAccept(t *testing.T) {
	b := sim(t)
	// A port nobody listens on: the dial fails, nothing ran.
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, nil)
	e.table.Update(routing.Route{Connector: conn, Epoch: 1, Endpoint: &hs2.Endpoint{Host: "127.0.0.1", Port: port}})
	e.epoch.Store(1)
	// The "leader" reacts to the report by publishing another server.
	e.rep.onFail = func(string, uint64, string) {
		go e.route(b, false)
	}
	res := e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT * FROM default.employees"}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	sts := res.statuses()
	if sts[0].State != query.StateSubmitted || sts[0].Epoch != 1 || res.last().Server != b.Addr() || res.last().Epoch != 2 || res.rows() != 6 {
		t.Fatalf("statuses %+v", sts)
	}
	if e.rep.count() != 1 {
		t.Fatalf("reports %v", e.rep.reports)
	}
	checkClean(t, e, b)
}

func TestUnreachableWithoutNewRoute(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, func(c *query.Config) { c.RetryWait = 200 * time.Millisecond })
	e.table.Update(routing.Route{Connector: conn, Epoch: 1, Endpoint: &hs2.Endpoint{Host: "127.0.0.1", Port: port}})
	res := e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT 1"}, nil)
	qe := wantCode(t, res.err, query.Unavailable, query.ReasonNoHS2)
	if qe.Metadata[query.MetaServer] != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Fatalf("metadata %v", qe.Metadata)
	}
	if e.rep.count() != 1 {
		t.Fatalf("reports %v", e.rep.reports)
	}
}

func TestTransportFailureAfterAccept(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	s.DropAfterRows(2500)
	res := e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT * FROM synth.rows_100000", FetchSize: 1000}, nil)
	qe := wantCode(t, res.err, query.Aborted, query.ReasonHS2Lost)
	if qe.Metadata[query.MetaServer] != s.Addr() || e.rep.count() != 1 {
		t.Fatalf("metadata %v reports %v", qe.Metadata, e.rep.reports)
	}
	s.Heal()
	checkClean(t, e, s)
}

func TestStalePooledSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  query.Request
	}{
		{"statement", query.Request{Statement: "SELECT * FROM default.employees"}},
		{"metadata", query.Request{Meta: &hs2.MetaRequest{Call: hs2.MetaTables}}},
	} {
		t.Run(tc.name, func(t *testing.T) { testStalePooledSession(t, tc.req) })
	}
}

func testStalePooledSession(t *testing.T, req query.Request) {
	s := sim(t)
	p, err := testenv.NewProxy(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	e := newEnv(t, nil, nil)
	host, port := splitAddr(t, p.Addr())
	e.table.Update(routing.Route{Connector: conn, Epoch: 1, Endpoint: &hs2.Endpoint{Host: host, Port: port}})
	ctx := ctxT(t, 30*time.Second)
	if res := e.run(ctx, req, nil); res.err != nil {
		t.Fatal(res.err)
	}
	if st := e.engine.PoolStats(); st.Idle != 1 {
		t.Fatalf("pool %+v", st)
	}
	// The pooled session's connection dies while idle; the next request
	// must neither fail for it nor blame the server.
	p.SetMode(testenv.Refuse)
	p.SetMode(testenv.Pass)
	res := e.run(ctx, req, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if e.rep.count() != 0 {
		t.Fatalf("reports %v", e.rep.reports)
	}
	checkClean(t, e, s)
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

func TestLimits(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, func(c *query.Config) { c.Limits.MaxConcurrent = 2; c.Limits.MaxPerUser = 1 })
	ctx, cancel := context.WithCancel(ctxT(t, 30*time.Second))
	slow := map[string]string{"hs2sim.exec_delay_ms": "60000"}
	var wg sync.WaitGroup
	for _, u := range []string{"alice", "bob"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.run(ctx, query.Request{Statement: "SELECT 1", User: u, Config: slow}, nil)
		}()
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := e.engine.Running(); n != 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	res := e.run(ctx, query.Request{Statement: "SELECT 1", User: "carol"}, nil)
	wantCode(t, res.err, query.ResourceExhausted, query.ReasonLimitExceeded)
	cancel()
	wg.Wait()
	res = e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT 1", User: "alice"}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	// Per user.
	ctx, cancel = context.WithCancel(ctxT(t, 30*time.Second))
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.run(ctx, query.Request{Statement: "SELECT 1", User: "alice", Config: slow}, nil)
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := e.engine.Running(); n != 1 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	res = e.run(ctx, query.Request{Statement: "SELECT 1", User: "alice"}, nil)
	wantCode(t, res.err, query.ResourceExhausted, query.ReasonLimitExceeded)
	cancel()
	wg.Wait()
	checkClean(t, e, s)
}

func TestCloseCancelsRunningQueries(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	done := make(chan *result, 1)
	go func() {
		done <- e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT 1",
			Config: map[string]string{"hs2sim.exec_delay_ms": "60000"}}, nil)
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if s.Stats().OpenOperations != 1 {
			return errors.New("not running yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	e.engine.Close(ctx)
	res := <-done
	wantCode(t, res.err, query.Unavailable, query.ReasonShuttingDown)
	if res.last().State != query.StateCanceled {
		t.Fatalf("last %+v", res.last())
	}
	res = e.run(ctxT(t, 5*time.Second), query.Request{Statement: "SELECT 1"}, nil)
	wantCode(t, res.err, query.Unavailable, query.ReasonShuttingDown)
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := s.Stats(); st.OpenOperations != 0 || st.OpenSessions != 0 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
}

func TestEmitErrorEndsQuery(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	boom := errors.New("client went away")
	res := e.run(ctxT(t, 30*time.Second), query.Request{Statement: "SELECT * FROM synth.rows_100000", FetchSize: 100},
		func(ev query.Event) error {
			if ev.Kind == query.EventBatch {
				return boom
			}
			return nil
		})
	if !errors.Is(res.err, boom) {
		t.Fatalf("err %v", res.err)
	}
	checkClean(t, e, s)
}

func TestHTTPTransportAndCancel(t *testing.T) {
	s, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0", Transport: "http"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := newEnv(t, nil, nil)
	e.table.Update(routing.Route{Connector: conn, Epoch: 1, Endpoint: &hs2.Endpoint{Host: s.Host(), Port: s.Port(), Transport: hs2.TransportHTTP}})
	ctx := ctxT(t, 60*time.Second)
	res := e.run(ctx, query.Request{Statement: "SELECT * FROM synth.rows_5000", FetchSize: 999}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if n := checkSynth(t, res.batches()); n != 5000 {
		t.Fatalf("%d rows", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	var at time.Time
	res = e.run(cctx, query.Request{Statement: "SELECT * FROM synth.rows_10000000", FetchSize: 1000,
		Config: map[string]string{"hs2sim.rows_per_second": "20000"}}, firstBatch(func() { at = time.Now(); cancel() }))
	wantCode(t, res.err, query.Canceled, query.ReasonCancelled)
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := s.Stats().OpenOperations; n != 0 {
			return fmt.Errorf("%d open operations", n)
		}
		return nil
	})
	if d := time.Since(at); d > time.Second {
		t.Errorf("operation closed %v after the cancel", d)
	}
	checkClean(t, e, s)
}

func TestImpersonationAndDatabase(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, func(c *query.Config) {
		c.Connectors["imp"] = query.Connector{Impersonate: true}
	})
	e.table.Update(routing.Route{Connector: "imp", Epoch: 1, Endpoint: endpoint(s)})
	ctx := ctxT(t, 30*time.Second)
	value := func(res *result) any {
		t.Helper()
		if res.err != nil {
			t.Fatal(res.err)
		}
		bs := res.batches()
		if len(bs) != 1 || bs[0].Rows != 1 {
			t.Fatalf("batches %+v", bs)
		}
		return bs[0].Columns[0].Value(0)
	}
	if v := value(e.run(ctx, query.Request{Statement: "SELECT current_user()", Connector: "imp", User: "bob"}, nil)); v != "bob" {
		t.Fatalf("impersonated user %v", v)
	}
	if v := value(e.run(ctx, query.Request{Statement: "SELECT current_user()", User: "bob"}, nil)); v == "bob" {
		t.Fatalf("user %v without impersonation", v)
	}
	if v := value(e.run(ctx, query.Request{Statement: "SELECT current_database()", Database: "sales"}, nil)); v != "sales" {
		t.Fatalf("database %v", v)
	}
	res := e.run(ctx, query.Request{Statement: "SELECT 1", Database: "no_such_db"}, nil)
	wantCode(t, res.err, query.NotFound, "")
	checkClean(t, e, s)
}

// A small result's STREAMING and schema wait for its rows (they leave
// together), but a slow first fetch does not hold the schema back: it goes
// out after at most a few milliseconds. The events are the same either way,
// and the operation is closed at the end (CloseLater's answer is read by
// the pooled session's next call).
func TestSchemaHeldForTheFirstBatch(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	ctx := context.Background()
	res := e.run(ctx, query.Request{Statement: "SELECT 1"}, nil)
	if res.err != nil {
		t.Fatal(res.err)
	}
	var kinds []query.EventKind
	for _, ev := range res.events {
		kinds = append(kinds, ev.Kind)
	}
	want := []query.EventKind{query.EventStatus, query.EventStatus, query.EventSchema, query.EventBatch, query.EventStatus}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if st := res.statuses(); st[1].State != query.StateStreaming || st[2].State != query.StateFinished {
		t.Fatalf("states %v", res.states())
	}

	// A first fetch that takes long: the schema goes out long before it
	// ends (after schemaHold, a few milliseconds).
	const delay = 2 * time.Second
	s.SetFetchDelay(delay)
	defer s.SetFetchDelay(0)
	var schemaAt, batchAt time.Time
	res = e.run(ctx, query.Request{Statement: "SELECT * FROM synth.rows_10"}, func(ev query.Event) error {
		switch {
		case ev.Kind == query.EventSchema:
			schemaAt = time.Now()
		case ev.Kind == query.EventBatch && batchAt.IsZero():
			batchAt = time.Now()
		}
		return nil
	})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if schemaAt.IsZero() || batchAt.Sub(schemaAt) < delay/2 {
		t.Errorf("schema at %v, first batch %v after it: the schema waited for the fetch", schemaAt, batchAt.Sub(schemaAt))
	}
	checkClean(t, e, s)
}
