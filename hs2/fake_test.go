package hs2

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// fakeHS2 is a scriptable TCLIService handler for unit tests that need
// answers the simulator would not give (old protocol, malformed batches,
// instant status answers, hangs). Methods the tests do not use are left
// to the embedded nil interface.
type fakeHS2 struct {
	hiveserver.TCLIService

	stop chan struct{} // closed by the server's Close: releases hangs

	mu         sync.Mutex
	calls      map[string]int
	protocol   hiveserver.TProtocolVersion
	openConf   map[string]string
	openUser   string
	getInfo    func() (*hiveserver.TGetInfoResp, error)
	statusSeq  []*hiveserver.TGetOperationStatusResp // answered in turn; the last repeats
	hangStatus bool
	fetch      func(n int) *hiveserver.TFetchResultsResp
	schema     *hiveserver.TTableSchema
	executeErr *hiveserver.TStatus
	openGate   chan struct{} // when set, OpenSession waits for it to close
}

func newFakeHS2() *fakeHS2 {
	return &fakeHS2{
		stop:     make(chan struct{}),
		calls:    map[string]int{},
		protocol: hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V10,
	}
}

func okStatus() *hiveserver.TStatus {
	return &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_SUCCESS_STATUS}
}

func handleID() *hiveserver.THandleIdentifier {
	return &hiveserver.THandleIdentifier{GUID: make([]byte, 16), Secret: make([]byte, 16)}
}

func (f *fakeHS2) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	return f.calls[name]
}

func (f *fakeHS2) Calls(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeHS2) OpenSession(_ context.Context, req *hiveserver.TOpenSessionReq) (*hiveserver.TOpenSessionResp, error) {
	f.count("OpenSession")
	f.mu.Lock()
	gate := f.openGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-f.stop:
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.openConf = req.Configuration
	f.openUser = req.GetUsername()
	return &hiveserver.TOpenSessionResp{Status: okStatus(), ServerProtocolVersion: min(f.protocol, req.ClientProtocol),
		SessionHandle: &hiveserver.TSessionHandle{SessionId: handleID()}}, nil
}

func (f *fakeHS2) CloseSession(context.Context, *hiveserver.TCloseSessionReq) (*hiveserver.TCloseSessionResp, error) {
	f.count("CloseSession")
	return &hiveserver.TCloseSessionResp{Status: okStatus()}, nil
}

func (f *fakeHS2) GetInfo(context.Context, *hiveserver.TGetInfoReq) (*hiveserver.TGetInfoResp, error) {
	f.count("GetInfo")
	f.mu.Lock()
	fn := f.getInfo
	f.mu.Unlock()
	if fn != nil {
		return fn()
	}
	name := "Hive"
	return &hiveserver.TGetInfoResp{Status: okStatus(), InfoValue: &hiveserver.TGetInfoValue{StringValue: &name}}, nil
}

func (f *fakeHS2) ExecuteStatement(context.Context, *hiveserver.TExecuteStatementReq) (*hiveserver.TExecuteStatementResp, error) {
	f.count("ExecuteStatement")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.executeErr != nil {
		return &hiveserver.TExecuteStatementResp{Status: f.executeErr}, nil
	}
	return &hiveserver.TExecuteStatementResp{Status: okStatus(), OperationHandle: &hiveserver.TOperationHandle{
		OperationId: handleID(), OperationType: hiveserver.TOperationType_EXECUTE_STATEMENT, HasResultSet: true}}, nil
}

func (f *fakeHS2) GetOperationStatus(ctx context.Context, _ *hiveserver.TGetOperationStatusReq) (*hiveserver.TGetOperationStatusResp, error) {
	n := f.count("GetOperationStatus")
	f.mu.Lock()
	hang := f.hangStatus
	seq := f.statusSeq
	f.mu.Unlock()
	if hang {
		select {
		case <-f.stop:
		case <-ctx.Done():
		}
		return nil, errors.New("fake: hang released")
	}
	if len(seq) == 0 {
		st := hiveserver.TOperationState_FINISHED_STATE
		return &hiveserver.TGetOperationStatusResp{Status: okStatus(), OperationState: &st}, nil
	}
	return seq[min(n, len(seq))-1], nil
}

func (f *fakeHS2) CancelOperation(context.Context, *hiveserver.TCancelOperationReq) (*hiveserver.TCancelOperationResp, error) {
	f.count("CancelOperation")
	return &hiveserver.TCancelOperationResp{Status: okStatus()}, nil
}

func (f *fakeHS2) CloseOperation(context.Context, *hiveserver.TCloseOperationReq) (*hiveserver.TCloseOperationResp, error) {
	f.count("CloseOperation")
	return &hiveserver.TCloseOperationResp{Status: okStatus()}, nil
}

func (f *fakeHS2) GetResultSetMetadata(context.Context, *hiveserver.TGetResultSetMetadataReq) (*hiveserver.TGetResultSetMetadataResp, error) {
	f.count("GetResultSetMetadata")
	f.mu.Lock()
	defer f.mu.Unlock()
	return &hiveserver.TGetResultSetMetadataResp{Status: okStatus(), Schema: f.schema}, nil
}

func (f *fakeHS2) FetchResults(context.Context, *hiveserver.TFetchResultsReq) (*hiveserver.TFetchResultsResp, error) {
	n := f.count("FetchResults")
	f.mu.Lock()
	fn := f.fetch
	f.mu.Unlock()
	if fn != nil {
		return fn(n), nil
	}
	return &hiveserver.TFetchResultsResp{Status: okStatus(), Results: &hiveserver.TRowSet{}}, nil
}

// fakeServer serves a fakeHS2 on loopback over binary SASL PLAIN, binary
// NOSASL or HTTP.
type fakeServer struct {
	h    *fakeHS2
	ln   net.Listener
	http *httptest.Server
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	// SASL peer behaviour.
	saslReply  byte   // status answered to the PLAIN response (default COMPLETE)
	saslSeen   []byte // the PLAIN response received
	httpAuths  int    // HTTP requests that carried Basic credentials
	httpCookie int    // HTTP requests that carried the auth cookie
	cookieGen  int
}

func (s *fakeServer) Addr() string { return s.ln.Addr().String() }

func (s *fakeServer) Endpoint(auth Auth) Endpoint {
	host, port, _ := net.SplitHostPort(s.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	ep := Endpoint{Host: host, Port: p, Auth: auth}
	if s.http != nil {
		ep.Transport = TransportHTTP
	}
	return ep
}

func startFake(t *testing.T, h *fakeHS2, mode Auth) *fakeServer {
	return startFakeTLS(t, h, mode, nil)
}

// startFakeTLS is startFake behind TLS when tc is not nil.
func startFakeTLS(t *testing.T, h *fakeHS2, mode Auth, tc *tls.Config) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	s := &fakeServer{h: h, ln: ln, conns: map[net.Conn]struct{}{}, saslReply: saslComplete}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				s.serveConn(c, mode)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *fakeServer) Close() {
	select {
	case <-s.h.stop:
	default:
		close(s.h.stop)
	}
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) serveConn(c net.Conn, mode Auth) {
	var tr thrift.TTransport = thrift.NewTBufferedTransport(thrift.NewStreamTransportRW(c), 4096)
	if mode != AuthNoSASL {
		st, mech, err := readSASLFrame(c)
		if err != nil || st != saslStart || string(mech) != "PLAIN" {
			return
		}
		st, resp, err := readSASLFrame(c)
		if err != nil || st != saslOK {
			return
		}
		s.mu.Lock()
		s.saslSeen = resp
		reply := s.saslReply
		s.mu.Unlock()
		var msg []byte
		if reply != saslComplete {
			msg = []byte("Error validating the login")
		}
		if writeSASLFrame(c, reply, msg) != nil || reply != saslComplete {
			return
		}
		// After negotiation HS2's TSaslTransport frames exactly like
		// TFramedTransport: independent check of our framing.
		tr = thrift.NewTFramedTransportConf(thrift.NewStreamTransportRW(c), nil)
	}
	proto := thrift.NewTBinaryProtocolConf(tr, nil)
	proc := hiveserver.NewTCLIServiceProcessor(s.h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.h.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	for {
		if ok, _ := proc.Process(ctx, proto, proto); !ok {
			return
		}
	}
}

// startFakeHTTP serves h over HS2's HTTP transport at /cliservice: Basic
// auth (password "secret"), setting and honouring the auth cookie.
func startFakeHTTP(t *testing.T, h *fakeHS2, tc *tls.Config) *fakeServer {
	t.Helper()
	s := &fakeServer{h: h, conns: map[net.Conn]struct{}{}}
	proc := hiveserver.NewTCLIServiceProcessor(h)
	s.http = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cliservice" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-thrift" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		valid := "v" + strconv.Itoa(s.cookieGen)
		c, err := r.Cookie(authCookie)
		switch {
		case err == nil && c.Value == valid:
			s.httpCookie++
		case strings.HasPrefix(r.Header.Get("Authorization"), "Basic "):
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Authorization"), "Basic "))
			user, pw, _ := strings.Cut(string(raw), ":")
			if pw != "secret" || user == "" {
				s.mu.Unlock()
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			s.httpAuths++
			http.SetCookie(w, &http.Cookie{Name: authCookie, Value: valid, MaxAge: 86400, Secure: true, HttpOnly: true})
		default:
			s.mu.Unlock()
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		s.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		in := thrift.NewTMemoryBuffer()
		in.Write(body)
		out := thrift.NewTMemoryBuffer()
		if _, err := proc.Process(r.Context(), thrift.NewTBinaryProtocolConf(in, nil), thrift.NewTBinaryProtocolConf(out, nil)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-thrift")
		w.Write(out.Bytes())
	}))
	s.http.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	if tc != nil {
		s.http.TLS = tc
		s.http.StartTLS()
	} else {
		s.http.Start()
	}
	s.ln = fakeAddr{s.http.Listener}
	t.Cleanup(func() {
		select {
		case <-h.stop:
		default:
			close(h.stop)
		}
		s.http.Close()
	})
	return s
}

// fakeAddr lets an httptest server answer Addr like the binary fake.
type fakeAddr struct{ net.Listener }

// fakeClock is a Clock whose After returns at once, advancing time and
// recording the wait.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}
