package hs2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beltran/gohive/hiveserver"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// gokrb5's acceptor starts one process-wide replay-cache sweeper (the
	// Kerberos tests accept tokens with it).
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.VerifyAPREQ.GetReplayCache.func1.1"))
}

func TestSASLPlainHandshakeBytes(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	done := make(chan error, 1)
	go func() { done <- saslHandshake(client, client, "srv:1", &plainMechanism{user: "alice", password: "pw"}) }()

	want := []byte{saslStart, 0, 0, 0, 5, 'P', 'L', 'A', 'I', 'N',
		saslOK, 0, 0, 0, 9, 0, 'a', 'l', 'i', 'c', 'e', 0, 'p', 'w'}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("client sent %q, want %q", got, want)
	}
	if _, err := server.Write([]byte{saslComplete, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSASLPlainHandshakeRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reply  []byte
		isAuth bool
		want   string
	}{
		{"bad", append([]byte{saslBad, 0, 0, 0, 4}, "nope"...), true, "nope"},
		{"error", append([]byte{saslError, 0, 0, 0, 3}, "err"...), false, "server error: err"},
		{"challenge", []byte{saslOK, 0, 0, 0, 0}, false, "unexpected challenge"},
		{"garbage status", []byte{9, 0, 0, 0, 0}, false, "status 9"},
		{"huge frame", []byte{saslComplete, 0xff, 0xff, 0xff, 0xff}, false, "negotiation frame"},
		{"eof", nil, false, "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				defer server.Close()
				_, _, _ = readSASLFrame(server)
				_, _, _ = readSASLFrame(server)
				server.Write(tc.reply)
			}()
			err := saslHandshake(client, client, "srv:1", &plainMechanism{user: "u", password: "p"})
			var ae *AuthError
			if errors.As(err, &ae) != tc.isAuth || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (auth %v), want %q auth=%v", err, errors.As(err, &ae), tc.want, tc.isAuth)
			}
		})
	}
}

func TestSASLTransportFraming(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	tr := newSASLTransport(client)

	// One Flush is one frame, whatever the write calls were.
	go func() {
		tr.Write([]byte("hel"))
		tr.WriteByte('l')
		tr.WriteString("o")
		tr.Flush(context.Background())
		tr.Flush(context.Background()) // nothing buffered: no empty frame
		tr.WriteString("x")
		tr.Flush(context.Background())
	}()
	got := make([]byte, 4+5+4+1)
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0, 1, 'x'}; !bytes.Equal(got, want) {
		t.Fatalf("frames %q, want %q", got, want)
	}

	// Reads cross frame boundaries, including empty frames.
	var in bytes.Buffer
	for _, f := range []string{"ab", "", "cde", "f"} {
		binary.Write(&in, binary.BigEndian, uint32(len(f)))
		in.WriteString(f)
	}
	go server.Write(in.Bytes())
	r := bufio.NewReader(readerFunc(tr.Read))
	b1, _ := tr.ReadByte()
	rest := make([]byte, 5)
	if _, err := io.ReadFull(r, rest); err != nil {
		t.Fatal(err)
	}
	if string(b1)+string(rest) != "abcdef" {
		t.Fatalf("read %q%q", b1, rest)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func testOpts() Options {
	return Options{User: "alice", Password: "secret", CallTimeout: 5 * time.Second}
}

func openFake(t *testing.T, srv *fakeServer, auth Auth, opts Options, sc SessionConfig) *Session {
	t.Helper()
	s, err := Open(context.Background(), srv.Endpoint(auth), opts, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestOpenSendsConfig(t *testing.T) {
	for _, auth := range []Auth{AuthNone, AuthNoSASL} {
		t.Run(string(auth), func(t *testing.T) {
			h := newFakeHS2()
			srv := startFake(t, h, auth)
			s := openFake(t, srv, auth, testOpts(), SessionConfig{ProxyUser: "bob", Database: "sales", Conf: map[string]string{"hive.exec.parallel": "true", "hivevar:lim": "5", "hiveconf:a.b": "c"}})
			want := map[string]string{"use:database": "sales", "hive.server2.proxy.user": "bob", "set:hiveconf:hive.exec.parallel": "true", "set:hivevar:lim": "5", "set:hiveconf:a.b": "c"}
			h.mu.Lock()
			conf, user := h.openConf, h.openUser
			h.mu.Unlock()
			if len(conf) != len(want) || user != "alice" {
				t.Fatalf("OpenSession conf %v user %q", conf, user)
			}
			for k, v := range want {
				if conf[k] != v {
					t.Errorf("conf[%q] = %q, want %q", k, conf[k], v)
				}
			}
			if s.ProtocolVersion() != 10 {
				t.Errorf("protocol %d", s.ProtocolVersion())
			}
			if auth == AuthNone && string(srv.saslSeen) != "\x00alice\x00secret" {
				t.Errorf("PLAIN response %q", srv.saslSeen)
			}
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal("second Close:", err)
			}
			if h.Calls("CloseSession") != 1 {
				t.Errorf("CloseSession calls %d", h.Calls("CloseSession"))
			}
			if err := s.Ping(context.Background()); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("Ping after Close = %v", err)
			}
		})
	}
}

func TestOpenOldProtocol(t *testing.T) {
	h := newFakeHS2()
	h.protocol = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V5
	srv := startFake(t, h, AuthNone)
	_, err := Open(context.Background(), srv.Endpoint(AuthNone), testOpts(), SessionConfig{})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "V5") {
		t.Fatalf("err = %v", err)
	}
	if h.Calls("CloseSession") != 1 {
		t.Errorf("the refused session was not closed")
	}

	h = newFakeHS2()
	h.protocol = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V6
	srv = startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	if s.ProtocolVersion() != 6 {
		t.Fatalf("protocol %d", s.ProtocolVersion())
	}
}

func TestOpenRejects(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, Endpoint{Host: "127.0.0.1", Port: 1, Auth: AuthKerberos}, Options{}, SessionConfig{})
	var kae *AuthError
	if !errors.As(err, &kae) || !strings.Contains(err.Error(), "no Kerberos identity is configured") {
		t.Errorf("kerberos without an identity: %v", err)
	}
	_, err = Open(ctx, Endpoint{Host: "127.0.0.1", Port: 1, Transport: "grpc"}, Options{}, SessionConfig{})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("transport: %v", err)
	}

	h := newFakeHS2()
	srv := startFake(t, h, AuthLDAP)
	srv.saslReply = saslBad
	_, err = Open(ctx, srv.Endpoint(AuthLDAP), testOpts(), SessionConfig{})
	var ae *AuthError
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "Error validating the login") {
		t.Errorf("bad login: %v", err)
	}
}

func TestInvalidSessionHandleBreaks(t *testing.T) {
	h := newFakeHS2()
	srv := startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	msg := "Invalid SessionHandle"
	h.getInfo = func() (*hiveserver.TGetInfoResp, error) {
		return &hiveserver.TGetInfoResp{Status: &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_INVALID_HANDLE_STATUS, ErrorMessage: &msg},
			InfoValue: &hiveserver.TGetInfoValue{StringValue: &msg}}, nil
	}
	err := s.Ping(context.Background())
	var se *ServerError
	if !errors.As(err, &se) || se.Message != msg || se.Call != "GetInfo" || se.Server != srv.Addr() {
		t.Fatalf("err = %#v", err)
	}
	if !s.Broken() {
		t.Error("session with an invalid handle not broken")
	}
}

func TestApplicationExceptionKeepsSession(t *testing.T) {
	h := newFakeHS2()
	srv := startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	h.getInfo = func() (*hiveserver.TGetInfoResp, error) { return nil, errors.New("boom") }
	err := s.Ping(context.Background())
	var se *ServerError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "boom") {
		t.Fatalf("err = %v", err)
	}
	if s.Broken() {
		t.Error("broken after a server exception")
	}
	h.getInfo = nil
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestExecuteError(t *testing.T) {
	h := newFakeHS2()
	srv := startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	state, msg, code := "42000", "Error while compiling statement: FAILED: ParseException", int32(40000)
	h.executeErr = &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_ERROR_STATUS, SqlState: &state, ErrorCode: &code, ErrorMessage: &msg}
	_, err := s.Execute(context.Background(), "SELEC 1", nil)
	var se *ServerError
	if !errors.As(err, &se) || se.SQLState != state || se.ErrorCode != code || se.Message != msg || se.Call != "ExecuteStatement" {
		t.Fatalf("err = %#v", err)
	}
	if s.Broken() {
		t.Error("compile error broke the session")
	}
}

func opState(s hiveserver.TOperationState, progress float64) *hiveserver.TGetOperationStatusResp {
	r := &hiveserver.TGetOperationStatusResp{Status: okStatus(), OperationState: &s}
	if progress >= 0 {
		r.ProgressUpdateResponse = &hiveserver.TProgressUpdateResp{ProgressedPercentage: progress, Status: hiveserver.TJobExecutionStatus_IN_PROGRESS}
	}
	return r
}

func TestWaitBacksOff(t *testing.T) {
	h := newFakeHS2()
	running := hiveserver.TOperationState_RUNNING_STATE
	var seq []*hiveserver.TGetOperationStatusResp
	for range 10 {
		seq = append(seq, opState(running, 0.1))
	}
	seq = append(seq, opState(running, 0.5), opState(running, 0.5), opState(running, 0.5))
	seq = append(seq, opState(hiveserver.TOperationState_FINISHED_STATE, 1))
	h.statusSeq = seq
	srv := startFake(t, h, AuthNone)
	clock := &fakeClock{now: time.Unix(1000, 0)}
	opts := testOpts()
	opts.Clock = clock
	s := openFake(t, srv, AuthNone, opts, SessionConfig{})
	op, err := s.Execute(context.Background(), "SELECT 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen []float64
	st, err := op.Wait(context.Background(), func(st Status) { seen = append(seen, st.Progress) })
	if err != nil || st.State != StateFinished || st.Progress != 1 {
		t.Fatalf("Wait = %+v, %v", st, err)
	}
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 500 * ms, 500 * ms, 500 * ms,
		5 * ms, 10 * ms, 20 * ms} // progress moved: back to 5ms
	if got := clock.Sleeps(); !slices.Equal(got, want) {
		t.Errorf("sleeps %v\nwant   %v", got, want)
	}
	if !slices.Equal(seen, []float64{0.1, 0.5, 1}) {
		t.Errorf("onStatus saw %v", seen)
	}
	if err := op.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := op.Close(context.Background()); err != nil || h.Calls("CloseOperation") != 1 {
		t.Fatalf("second Close: %v, %d calls", err, h.Calls("CloseOperation"))
	}
}

func TestWaitNoSleepAfterLongPoll(t *testing.T) {
	if d := nextPollDelay(maxPollDelay, false); d != maxPollDelay {
		t.Errorf("cap: %v", d)
	}
	if d := nextPollDelay(maxPollDelay, true); d != minPollDelay {
		t.Errorf("reset: %v", d)
	}
}

func TestWaitError(t *testing.T) {
	h := newFakeHS2()
	errState := hiveserver.TOperationState_ERROR_STATE
	state, msg, code := "08S01", "FAILED: Execution Error, return code 2", int32(2)
	h.statusSeq = []*hiveserver.TGetOperationStatusResp{{Status: okStatus(), OperationState: &errState, SqlState: &state, ErrorCode: &code, ErrorMessage: &msg}}
	srv := startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	op, err := s.Execute(context.Background(), "SELECT boom()", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := op.Wait(context.Background(), nil)
	var se *ServerError
	if !errors.As(err, &se) || st.State != StateError || st.Err != err || se.SQLState != state || se.ErrorCode != code || se.Message != msg {
		t.Fatalf("Wait = %+v, %#v", st, err)
	}
	if st.Progress != -1 {
		t.Errorf("progress %v, want -1 when HS2 reports none", st.Progress)
	}
}

func TestFetchMalformed(t *testing.T) {
	h := newFakeHS2()
	h.fetch = func(int) *hiveserver.TFetchResultsResp {
		return &hiveserver.TFetchResultsResp{Status: okStatus(), Results: &hiveserver.TRowSet{Columns: []*hiveserver.TColumn{
			{I32Val: &hiveserver.TI32Column{Values: []int32{1, 2}, Nulls: []byte{}}},
			{I32Val: &hiveserver.TI32Column{Values: []int32{1}, Nulls: []byte{}}},
		}}}
	}
	srv := startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	op, err := s.Execute(context.Background(), "SELECT 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = op.Fetch(context.Background(), 100)
	var se *ServerError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "column 2 has 1 values") {
		t.Fatalf("err = %v", err)
	}
	if s.Broken() {
		t.Error("malformed batch broke the session")
	}
	for _, n := range []int{0, -1, MaxFetchRows + 1} {
		if _, err := op.Fetch(context.Background(), n); err == nil {
			t.Errorf("Fetch(%d) accepted", n)
		}
	}
}

func TestFetchTracksRowsAndEnd(t *testing.T) {
	h := newFakeHS2()
	h.fetch = func(n int) *hiveserver.TFetchResultsResp {
		var vals []int64
		if n <= 2 {
			vals = []int64{1, 2, 3}
		}
		// HS2 says hasMoreRows=false on every batch.
		f := false
		return &hiveserver.TFetchResultsResp{Status: okStatus(), HasMoreRows: &f, Results: &hiveserver.TRowSet{Columns: []*hiveserver.TColumn{
			{I64Val: &hiveserver.TI64Column{Values: vals, Nulls: []byte{0x04}}}}}}
	}
	h.schema = &hiveserver.TTableSchema{Columns: []*hiveserver.TColumnDesc{{ColumnName: "t.x",
		TypeDesc: &hiveserver.TTypeDesc{Types: []*hiveserver.TTypeEntry{prim(hiveserver.TTypeId_BIGINT_TYPE, nil)}}, Position: 1}}}
	srv := startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	ctx := context.Background()
	op, err := s.Execute(ctx, "SELECT x FROM t", nil)
	if err != nil {
		t.Fatal(err)
	}
	sch, err := op.Schema(ctx)
	if err != nil || len(sch) != 1 || sch[0] != (ColumnDesc{Name: "t.x", Type: "bigint", Position: 1}) {
		t.Fatalf("schema %+v, %v", sch, err)
	}
	var starts []int64
	for {
		b, err := op.Fetch(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, b.StartRow)
		if b.Rows == 0 {
			break
		}
		if !b.Columns[0].IsNull(2) || b.Columns[0].IsNull(1) {
			t.Errorf("nulls %x", b.Columns[0].Nulls)
		}
	}
	if !slices.Equal(starts, []int64{0, 3, 6}) {
		t.Errorf("starts %v", starts)
	}
	// After the end no more calls go out.
	if b, err := op.Fetch(ctx, 3); err != nil || b.Rows != 0 || h.Calls("FetchResults") != 3 {
		t.Errorf("fetch after end: %+v %v, %d calls", b, err, h.Calls("FetchResults"))
	}
	if _, err := op.Schema(ctx); err != nil || h.Calls("GetResultSetMetadata") != 1 {
		t.Errorf("schema not cached")
	}
}

func TestCancelDuringHangingCall(t *testing.T) {
	for _, auth := range []Auth{AuthNone, AuthNoSASL} {
		t.Run(string(auth), func(t *testing.T) {
			h := newFakeHS2()
			h.hangStatus = true
			srv := startFake(t, h, auth)
			s := openFake(t, srv, auth, testOpts(), SessionConfig{})
			op, err := s.Execute(context.Background(), "SELECT 1", nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			_, err = op.Status(ctx)
			var te *TransportError
			if !errors.As(err, &te) || !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("cancel took %v", d)
			}
			if !s.Broken() {
				t.Error("not broken")
			}
			if _, err := s.Execute(context.Background(), "x", nil); !errors.Is(err, ErrBroken) {
				t.Errorf("call on broken session: %v", err)
			}
			if err := op.Close(context.Background()); err != nil {
				t.Errorf("op Close on broken session: %v", err)
			}
		})
	}
}

func TestCallTimeout(t *testing.T) {
	h := newFakeHS2()
	h.hangStatus = true
	srv := startFake(t, h, AuthNone)
	opts := testOpts()
	opts.CallTimeout = 100 * time.Millisecond
	s := openFake(t, srv, AuthNone, opts, SessionConfig{})
	op, err := s.Execute(context.Background(), "SELECT 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = op.Status(context.Background())
	var te *TransportError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || te.Call != "GetOperationStatus" {
		t.Fatalf("err = %v", err)
	}
}

func TestCloseAbortsCallInFlight(t *testing.T) {
	h := newFakeHS2()
	h.hangStatus = true
	srv := startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	op, err := s.Execute(context.Background(), "SELECT 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := op.Status(context.Background()); errc <- err }()
	// Wait until the status call is on the wire.
	deadline := time.Now().Add(5 * time.Second)
	for h.Calls("GetOperationStatus") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := <-errc; err == nil {
		t.Error("aborted call succeeded")
	}
}

func TestCtxDoneBeforeCallKeepsSession(t *testing.T) {
	h := newFakeHS2()
	srv := startFake(t, h, AuthNone)
	s := openFake(t, srv, AuthNone, testOpts(), SessionConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if s.Broken() || s.Ping(context.Background()) != nil {
		t.Fatal("session unusable after a call that never started")
	}
}

func TestTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, tc := range []struct {
		name string
		auth Auth
		http bool
	}{{"sasl", AuthNone, false}, {"nosasl", AuthNoSASL, false}, {"http", AuthNone, true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHS2()
			var srv *fakeServer
			if tc.http {
				srv = startFakeHTTP(t, h, serverTLS)
			} else {
				srv = startFakeTLS(t, h, tc.auth, serverTLS)
			}
			ep := srv.Endpoint(tc.auth)
			ep.TLS = true
			opts := testOpts()
			opts.TLSConfig = clientTLS
			s2, err := Open(context.Background(), ep, opts, SessionConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s2.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s2.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			// A client that does not trust the certificate fails to connect.
			opts.TLSConfig = nil
			_, err = Open(context.Background(), ep, opts, SessionConfig{})
			var te *TransportError
			if !errors.As(err, &te) {
				t.Fatalf("untrusted cert: %v", err)
			}
		})
	}
}

func TestHTTPCookie(t *testing.T) {
	h := newFakeHS2()
	srv := startFakeHTTP(t, h, nil)
	ep := srv.Endpoint(AuthLDAP)
	ep.Transport = TransportHTTP
	s, err := Open(context.Background(), ep, testOpts(), SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	auths, cookies := srv.httpAuths, srv.httpCookie
	srv.cookieGen++ // the server forgets the cookie: next call gets 401
	srv.mu.Unlock()
	if auths != 1 || cookies != 3 {
		t.Fatalf("basic auths %d cookie requests %d, want 1 and 3", auths, cookies)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	auths, cookies = srv.httpAuths, srv.httpCookie
	srv.mu.Unlock()
	if auths != 2 || cookies != 4 {
		t.Fatalf("after expiry: basic auths %d cookie requests %d, want 2 and 4", auths, cookies)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.Calls("CloseSession") != 1 {
		t.Error("no CloseSession")
	}

	opts := testOpts()
	opts.Password = "wrong"
	_, err = Open(context.Background(), ep, opts, SessionConfig{})
	var ae *AuthError
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "401") {
		t.Fatalf("bad password: %v", err)
	}
}

func TestOpenDeadServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	for _, tr := range []Transport{TransportBinary, TransportHTTP} {
		_, err = Open(context.Background(), Endpoint{Host: "127.0.0.1", Port: addr.Port, Transport: tr}, testOpts(), SessionConfig{})
		var te *TransportError
		if !errors.As(err, &te) {
			t.Errorf("%s: err = %v, want TransportError", tr, err)
		}
	}
}
