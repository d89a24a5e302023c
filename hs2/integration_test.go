package hs2_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/hs2sim/synth"
)

// Integration tests run the client against the HS2 simulator on loopback.

var users = map[string]string{"alice": "secret", "bob": "hunter2"}

type sim struct {
	*hs2sim.Server
	cfg hs2sim.Config
}

// startSim starts a simulator and, at cleanup, checks that the test left no
// session or operation open on it.
func startSim(t testing.TB, cfg hs2sim.Config) *sim {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Users == nil {
		cfg.Users = users
	}
	srv, err := hs2sim.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer srv.Close()
		// HS2 notices a dropped connection asynchronously.
		waitFor(t, "no open sessions or operations", func() bool {
			st := srv.Stats()
			return st.OpenSessions == 0 && st.OpenOperations == 0
		})
	})
	return &sim{Server: srv, cfg: cfg}
}

func (s *sim) endpoint(t testing.TB) hs2.Endpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	ep := hs2.Endpoint{Host: host, Port: p, Transport: hs2.TransportBinary, Auth: hs2.AuthNone, TLS: s.cfg.TLS != nil}
	switch s.cfg.Transport {
	case "http":
		ep.Transport = hs2.TransportHTTP
	}
	switch s.cfg.Auth {
	case "nosasl":
		ep.Auth = hs2.AuthNoSASL
	case "ldap":
		ep.Auth = hs2.AuthLDAP
	}
	return ep
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func aliceOpts() hs2.Options {
	return hs2.Options{User: "alice", Password: "secret", CallTimeout: 20 * time.Second}
}

func open(t testing.TB, s *sim, opts hs2.Options, sc hs2.SessionConfig) *hs2.Session {
	t.Helper()
	sess, err := hs2.Open(context.Background(), s.endpoint(t), opts, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close(context.Background()) })
	return sess
}

// query runs stmt to completion and returns its schema and batches.
func query(t testing.TB, sess *hs2.Session, stmt string, fetch int) (hs2.Schema, []*hs2.Batch) {
	t.Helper()
	ctx := context.Background()
	op, err := sess.Execute(ctx, stmt, nil)
	if err != nil {
		t.Fatalf("Execute(%q): %v", stmt, err)
	}
	defer func() {
		if err := op.Close(ctx); err != nil {
			t.Errorf("op Close: %v", err)
		}
	}()
	st, err := op.Wait(ctx, nil)
	if err != nil || st.State != hs2.StateFinished {
		t.Fatalf("Wait(%q) = %+v, %v", stmt, st, err)
	}
	if !op.HasResultSet() {
		return nil, nil
	}
	sch, err := op.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*hs2.Batch
	for {
		b, err := op.Fetch(ctx, fetch)
		if err != nil {
			t.Fatal(err)
		}
		if b.Rows == 0 {
			return sch, out
		}
		if len(b.Columns) != len(sch) {
			t.Fatalf("batch has %d columns, schema %d", len(b.Columns), len(sch))
		}
		out = append(out, b)
	}
}

// checkSynthRows verifies batches of SELECT * FROM synth.rows_<n>.
func checkSynthRows(t testing.TB, batches []*hs2.Batch, n int64) {
	t.Helper()
	var next int64
	for _, b := range batches {
		if b.StartRow != next {
			t.Fatalf("batch starts at %d, want %d", b.StartRow, next)
		}
		for i := range b.Rows {
			r := next + int64(i)
			want := synth.RowAt(r)
			c := b.Columns
			if c[0].Value(i) != want.ID {
				t.Fatalf("row %d id = %v", r, c[0].Value(i))
			}
			if (want.I == nil) != c[1].IsNull(i) || want.I != nil && c[1].Int32s[i] != *want.I {
				t.Fatalf("row %d i = %v, want %v", r, c[1].Value(i), want.I)
			}
			if (want.D == nil) != c[2].IsNull(i) || want.D != nil && c[2].Doubles[i] != *want.D {
				t.Fatalf("row %d d = %v", r, c[2].Value(i))
			}
			if (want.S == nil) != c[3].IsNull(i) || want.S != nil && c[3].Str(i) != *want.S {
				t.Fatalf("row %d s = %v", r, c[3].Value(i))
			}
			if (want.B == nil) != c[4].IsNull(i) || want.B != nil && c[4].Bools[i] != *want.B {
				t.Fatalf("row %d b = %v", r, c[4].Value(i))
			}
		}
		next += int64(b.Rows)
	}
	if next != n {
		t.Fatalf("got %d rows, want %d", next, n)
	}
}

func TestTransportsAndAuth(t *testing.T) {
	serverTLS, clientTLS := hs2.SelfSignedTLS(t)
	for _, tc := range []struct {
		name, transport, auth string
		tls                   bool
	}{
		{"binary/none", "binary", "none", false},
		{"binary/nosasl", "binary", "nosasl", false},
		{"binary/ldap", "binary", "ldap", false},
		{"binary/ldap/tls", "binary", "ldap", true},
		{"binary/nosasl/tls", "binary", "nosasl", true},
		{"http/none", "http", "none", false},
		{"http/ldap", "http", "ldap", false},
		{"http/ldap/tls", "http", "ldap", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hs2sim.Config{Transport: tc.transport, Auth: tc.auth}
			opts := aliceOpts()
			if tc.tls {
				cfg.TLS = serverTLS
				opts.TLSConfig = clientTLS
			}
			s := startSim(t, cfg)
			sess := open(t, s, opts, hs2.SessionConfig{})
			if err := sess.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			if v := sess.ProtocolVersion(); v < 6 || v > 10 {
				t.Errorf("protocol version %d", v)
			}
			sch, batches := query(t, sess, "SELECT * FROM synth.rows_2500", 1000)
			if len(sch) != 5 || sch[0].Type != "bigint" || sch[3].Type != "string" || sch[4].Type != "boolean" {
				t.Errorf("schema %+v", sch)
			}
			checkSynthRows(t, batches, 2500)
			if len(batches) != 3 {
				t.Errorf("%d batches", len(batches))
			}
			if err := sess.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if sess.Broken() {
				t.Error("broken after a clean close")
			}
		})
	}
}

// headerCounter counts, in what a client writes, HTTP requests that carry
// Basic credentials and requests that carry the auth cookie.
type headerCounter struct {
	mu             sync.Mutex
	basic, cookies int
}

func (h *headerCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, h: h}, nil
}

func (h *headerCounter) counts() (basic, cookies int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.basic, h.cookies
}

type countingConn struct {
	net.Conn
	h *headerCounter
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.h.mu.Lock()
	c.h.basic += bytes.Count(p, []byte("\r\nAuthorization: Basic "))
	c.h.cookies += bytes.Count(p, []byte("\r\nCookie: hive.server2.auth="))
	c.h.mu.Unlock()
	return c.Conn.Write(p)
}

func TestHTTPCookieReuse(t *testing.T) {
	s := startSim(t, hs2sim.Config{Transport: "http", Auth: "ldap"})
	var hc headerCounter
	opts := aliceOpts()
	opts.DialContext = hc.dial
	sess := open(t, s, opts, hs2.SessionConfig{})
	for range 5 {
		if err := sess.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// OpenSession authenticated with Basic; the 5 pings rode the cookie.
	if basic, cookies := hc.counts(); basic != 1 || cookies != 5 {
		t.Fatalf("requests with Basic auth %d, with the cookie %d; want 1 and 5", basic, cookies)
	}
	if err := sess.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBadPassword(t *testing.T) {
	for _, transport := range []string{"binary", "http"} {
		t.Run(transport, func(t *testing.T) {
			s := startSim(t, hs2sim.Config{Transport: transport, Auth: "ldap"})
			opts := aliceOpts()
			opts.Password = "wrong"
			_, err := hs2.Open(context.Background(), s.endpoint(t), opts, hs2.SessionConfig{})
			var ae *hs2.AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *AuthError", err, err)
			}
		})
	}
}

func TestAllTypesAndNulls(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
	sch, batches := query(t, sess, "SELECT * FROM default.all_types ORDER BY id", 100)
	wantTypes := []string{"int", "boolean", "tinyint", "smallint", "int", "bigint", "float", "double",
		"decimal(10,2)", "string", "varchar(20)", "char(5)", "date", "timestamp", "binary"}
	if len(sch) != len(wantTypes) {
		t.Fatalf("schema %+v", sch)
	}
	for i, c := range sch {
		if c.Type != wantTypes[i] || c.Position != i+1 {
			t.Errorf("column %d %+v, want type %s", i, c, wantTypes[i])
		}
	}
	if len(batches) != 1 || batches[0].Rows != 4 {
		t.Fatalf("batches %v", batches)
	}
	b := batches[0]
	wantKinds := []hs2.Kind{hs2.KindInt32, hs2.KindBool, hs2.KindInt32, hs2.KindInt32, hs2.KindInt32, hs2.KindInt64,
		hs2.KindDouble, hs2.KindDouble, hs2.KindString, hs2.KindString, hs2.KindString, hs2.KindString,
		hs2.KindString, hs2.KindString, hs2.KindBytes}
	for i, v := range b.Columns {
		if v.Kind != wantKinds[i] || v.Len() != 4 {
			t.Errorf("column %s kind %v len %d, want %v", sch[i].Name, v.Kind, v.Len(), wantKinds[i])
		}
		// Row 3 (index 2) is NULL everywhere but id.
		if v.IsNull(2) != (i != 0) {
			t.Errorf("column %s row 3 null = %v", sch[i].Name, v.IsNull(2))
		}
		if v.IsNull(0) || v.IsNull(1) || v.IsNull(3) {
			t.Errorf("column %s: unexpected NULL", sch[i].Name)
		}
		if v.Nulls != nil && len(v.Nulls) != 1 {
			t.Errorf("column %s bitmap %x", sch[i].Name, v.Nulls)
		}
	}
	want := []any{int32(1), true, int32(1), int32(100), int32(1000), int64(10000000000), 1.5, 2.25,
		"12.50", "hello", "varchar one", "ab   ", "2024-01-15", "2024-01-15 10:30:00", []byte{1, 2, 0xff}}
	for i, w := range want {
		got := b.Columns[i].Value(0)
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s row 1 = %#v, want %#v", sch[i].Name, got, w)
		}
	}
	ext := []any{int32(2), false, int32(-128), int32(-32768), int32(-2147483648), int64(-9223372036854775808)}
	for i, w := range ext {
		if got := b.Columns[i].Value(1); got != w {
			t.Errorf("%s row 2 = %#v, want %#v", sch[i].Name, got, w)
		}
	}
}

func TestSessionConfig(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{Database: "sales", Conf: map[string]string{"hive.exec.parallel": "true"}})
	_, batches := query(t, sess, "SELECT count(*) FROM orders", 10)
	if len(batches) != 1 || fmt.Sprint(batches[0].Columns[0].Value(0)) != "8" {
		t.Fatalf("count from the session database: %v", batches)
	}
	_, batches = query(t, sess, "SET hive.exec.parallel", 10)
	if len(batches) != 1 || batches[0].Columns[0].Value(0) != "hive.exec.parallel=true" {
		t.Fatalf("session conf: %+v", batches)
	}
	if got := sess.Config(); got.Database != "sales" || sess.Endpoint().Addr() != s.Addr() {
		t.Errorf("config %+v endpoint %v", got, sess.Endpoint())
	}

	// Impersonation: the session runs as the proxy user.
	sess2 := open(t, s, aliceOpts(), hs2.SessionConfig{ProxyUser: "bob"})
	_, batches = query(t, sess2, "SELECT current_user()", 10)
	if len(batches) != 1 || batches[0].Columns[0].Value(0) != "bob" {
		t.Fatalf("current_user under proxy: %+v", batches)
	}
}

func TestErrors(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
	ctx := context.Background()

	// HS2 compiles synchronously: syntax and semantic errors come from
	// ExecuteStatement.
	for _, stmt := range []string{"SELEC 1", "SELECT * FROM no_such_table"} {
		_, err := sess.Execute(ctx, stmt, nil)
		var se *hs2.ServerError
		if !errors.As(err, &se) || se.SQLState == "" || se.ErrorCode == 0 || se.Call != "ExecuteStatement" || se.Server != s.Addr() {
			t.Errorf("Execute(%q) = %#v", stmt, err)
		}
	}

	// A runtime failure (the simulator's injected job failure) ends in
	// ERROR_STATE.
	s.FailQueries(true)
	op, err := sess.Execute(ctx, "SELECT * FROM default.all_types", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := op.Wait(ctx, nil)
	var se *hs2.ServerError
	if !errors.As(err, &se) || st.State != hs2.StateError || se.Message == "" || se.SQLState != "08S01" || se.Call != "GetOperationStatus" {
		t.Fatalf("Wait = %+v, %#v", st, err)
	}
	s.FailQueries(false)
	if err := op.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if sess.Broken() {
		t.Fatal("statement errors broke the session")
	}
	if err := sess.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFetchToEndAndBatchSizes(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
	_, batches := query(t, sess, "SELECT * FROM synth.rows_25000", hs2.MaxFetchRows)
	checkSynthRows(t, batches, 25000)
	if len(batches) != 3 || batches[0].Rows != 10000 || batches[2].Rows != 5000 {
		t.Errorf("batch sizes %d", len(batches))
	}
	_, batches = query(t, sess, "SELECT * FROM synth.rows_0", 10)
	if len(batches) != 0 {
		t.Errorf("empty table gave %d batches", len(batches))
	}
	// A statement without a result set.
	op, err := sess.Execute(context.Background(), "SET x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close(context.Background())
	if _, err := op.Wait(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestCancel(t *testing.T) {
	// A short long-poll: the first status call waits it out.
	s := startSim(t, hs2sim.Config{LongPoll: 100 * time.Millisecond})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
	ctx := context.Background()
	// The simulator's knob for a statement that runs a minute.
	op, err := sess.Execute(ctx, "SELECT * FROM synth.rows_10", map[string]string{"hs2sim.exec_delay_ms": "60000"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := op.Status(ctx)
	if err != nil || st.State.Terminal() {
		t.Fatalf("status %+v, %v", st, err)
	}
	if err := op.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = op.Wait(ctx, nil)
	if err != nil || st.State != hs2.StateCanceled {
		t.Fatalf("after cancel %+v, %v", st, err)
	}
	if err := op.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := op.Close(ctx); err != nil {
		t.Fatal("second close:", err)
	}
}

func TestHangAndContextCancel(t *testing.T) {
	for _, transport := range []string{"binary", "http"} {
		t.Run(transport, func(t *testing.T) {
			s := startSim(t, hs2sim.Config{Transport: transport})
			sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
			s.Hang()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			err := sess.Ping(ctx)
			var te *hs2.TransportError
			if !errors.As(err, &te) || !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("cancel took %v", d)
			}
			if !sess.Broken() {
				t.Error("not broken")
			}
			s.Heal()
			if err := sess.Close(context.Background()); err != nil && transport == "binary" {
				t.Errorf("close: %v", err)
			}
		})
	}
}

func TestDeadServer(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
	s.Crash()
	err := sess.Ping(context.Background())
	var te *hs2.TransportError
	if !errors.As(err, &te) || !sess.Broken() {
		t.Fatalf("err = %v broken=%v", err, sess.Broken())
	}
	if err := sess.Close(context.Background()); err != nil {
		t.Errorf("close of broken session: %v", err)
	}
	_, err = hs2.Open(context.Background(), s.endpoint(t), aliceOpts(), hs2.SessionConfig{})
	if !errors.As(err, &te) {
		t.Fatalf("Open on a crashed server: %v", err)
	}
	s.Heal()
}

func TestDropMidFetch(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
	s.DropAfterRows(1500)
	ctx := context.Background()
	op, err := sess.Execute(ctx, "SELECT * FROM synth.rows_5000", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var fetchErr error
	for range 10 {
		b, err := op.Fetch(ctx, 1000)
		if err != nil {
			fetchErr = err
			break
		}
		if b.Rows == 0 {
			break
		}
	}
	var te *hs2.TransportError
	if !errors.As(fetchErr, &te) || !sess.Broken() {
		t.Fatalf("fetch err = %v", fetchErr)
	}
	op.Close(ctx)
}

func TestPoolAgainstSimulator(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	p := hs2.NewPool(s.endpoint(t), hs2.PoolConfig{Options: aliceOpts(), MaxSessions: 3, ValidateAfter: time.Nanosecond})
	ctx := context.Background()

	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := hs2.SessionConfig{Database: []string{"default", "sales"}[i%2]}
			sess, err := p.Get(ctx, sc)
			if err != nil {
				t.Error(err)
				return
			}
			defer p.Put(sess)
			if st := p.Stats(); st.Open > 3 {
				t.Errorf("pool over its bound: %+v", st)
			}
			op, err := sess.Execute(ctx, "SELECT * FROM synth.rows_100", nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer op.Close(ctx)
			if _, err := op.Wait(ctx, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if st := p.Stats(); st.InUse != 0 || st.Open > 3 || st.Open == 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := s.Stats().OpenSessions; n != p.Stats().Open {
		t.Errorf("simulator has %d sessions, pool %d", n, p.Stats().Open)
	}

	// A crash kills the idle sessions; validation replaces them.
	s.Crash()
	s.Heal()
	sess, err := p.Get(ctx, hs2.SessionConfig{Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Ping(ctx); err != nil {
		t.Fatal("pool lent a dead session:", err)
	}
	p.CloseAll(ctx)
	if _, err := p.Get(ctx, hs2.SessionConfig{}); !errors.Is(err, hs2.ErrPoolClosed) {
		t.Fatalf("Get after CloseAll: %v", err)
	}
	p.Put(sess)
	if st := p.Stats(); st != (hs2.PoolStats{}) {
		t.Fatalf("stats after CloseAll %+v", st)
	}
}

func BenchmarkFetch(b *testing.B) {
	s := startSim(b, hs2sim.Config{})
	sess := open(b, s, aliceOpts(), hs2.SessionConfig{})
	ctx := context.Background()
	const rows = 200_000
	b.ResetTimer()
	var total int64
	for b.Loop() {
		op, err := sess.Execute(ctx, fmt.Sprintf("SELECT * FROM synth.rows_%d", rows), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := op.Wait(ctx, nil); err != nil {
			b.Fatal(err)
		}
		for {
			batch, err := op.Fetch(ctx, hs2.MaxFetchRows)
			if err != nil {
				b.Fatal(err)
			}
			if batch.Rows == 0 {
				break
			}
			total += int64(batch.Rows)
		}
		op.Close(ctx)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
}
