package hs2sim

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive"
	"github.com/beltran/gohive/hiveserver"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer starts a simulator for t and, when t ends, checks that no
// session or operation is left open before closing it.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.LongPoll == 0 {
		cfg.LongPoll = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		waitFor(t, 10*time.Second, func() error {
			if st := s.Stats(); st.OpenSessions != 0 || st.OpenOperations != 0 {
				return fmt.Errorf("leaked: %+v", st)
			}
			return nil
		})
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// waitFor polls cond until it returns nil, failing t after timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// rawClient is a bare TCLIService client, for checking protocol shapes.
type rawClient struct {
	t     testing.TB
	trans thrift.TTransport
	http  *http.Client
	*hiveserver.TCLIServiceClient
}

type dialOpts struct {
	mode      string // sasl (default) | nosasl | http
	user      string
	password  string
	tls       *tls.Config
	maxLength uint32
	authz     string // http: the Authorization header (default Basic user:password)
}

func dialRaw(t testing.TB, s *Server, o dialOpts) *rawClient {
	t.Helper()
	if o.user == "" {
		o.user = "tester"
	}
	if o.password == "" {
		o.password = "secret"
	}
	if o.maxLength == 0 {
		o.maxLength = 1 << 30
	}
	c := &rawClient{t: t}
	conf := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 60 * time.Second, TLSConfig: o.tls}
	switch o.mode {
	case "http":
		scheme := "http"
		tr := &http.Transport{}
		if o.tls != nil {
			scheme = "https"
			tr.TLSClientConfig = o.tls
		}
		jar, _ := cookiejar.New(nil)
		c.http = &http.Client{Transport: tr, Jar: jar, Timeout: 60 * time.Second}
		ht, err := thrift.NewTHttpClientWithOptions(scheme+"://"+s.Addr()+"/"+s.cfg.HTTPPath, thrift.THttpClientOptions{Client: c.http})
		if err != nil {
			t.Fatal(err)
		}
		authz := o.authz
		if authz == "" {
			authz = "Basic " + base64.StdEncoding.EncodeToString([]byte(o.user+":"+o.password))
		}
		ht.(*thrift.THttpClient).SetHeader("Authorization", authz)
		c.trans = ht
	default:
		var sock thrift.TTransport
		if o.tls != nil {
			sock = thrift.NewTSSLSocketConf(s.Addr(), conf)
		} else {
			sock = thrift.NewTSocketConf(s.Addr(), conf)
		}
		if err := sock.Open(); err != nil {
			t.Fatalf("dial: %v", err)
		}
		if o.mode == "nosasl" {
			c.trans = thrift.NewTBufferedTransport(sock, 64<<10)
		} else {
			st, err := gohive.NewTSaslTransport(sock, s.Host(), "PLAIN", map[string]string{"username": o.user, "password": o.password}, o.maxLength)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Open(); err != nil {
				sock.Close()
				t.Fatalf("sasl: %v", err)
			}
			c.trans = st
		}
	}
	c.TCLIServiceClient = hiveserver.NewTCLIServiceClientFactory(c.trans, thrift.NewTBinaryProtocolFactoryConf(conf))
	t.Cleanup(c.close)
	return c
}

func (c *rawClient) close() {
	c.trans.Close()
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ok(t testing.TB, st *hiveserver.TStatus) {
	t.Helper()
	if st == nil || (st.StatusCode != hiveserver.TStatusCode_SUCCESS_STATUS && st.StatusCode != hiveserver.TStatusCode_SUCCESS_WITH_INFO_STATUS) {
		t.Fatalf("status: %v", st)
	}
}

// open opens a session with protocol V10 unless proto says otherwise.
func (c *rawClient) open(conf map[string]string, proto ...hiveserver.TProtocolVersion) *hiveserver.TSessionHandle {
	c.t.Helper()
	req := &hiveserver.TOpenSessionReq{ClientProtocol: hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V10, Configuration: conf}
	if len(proto) > 0 {
		req.ClientProtocol = proto[0]
	}
	resp, err := c.OpenSession(ctxT(c.t), req)
	if err != nil {
		c.t.Fatalf("OpenSession: %v", err)
	}
	ok(c.t, resp.Status)
	return resp.SessionHandle
}

func (c *rawClient) closeSession(h *hiveserver.TSessionHandle) {
	c.t.Helper()
	resp, err := c.CloseSession(ctxT(c.t), &hiveserver.TCloseSessionReq{SessionHandle: h})
	if err != nil {
		c.t.Fatalf("CloseSession: %v", err)
	}
	ok(c.t, resp.Status)
}

func (c *rawClient) exec(h *hiveserver.TSessionHandle, stmt string, async bool) *hiveserver.TExecuteStatementResp {
	c.t.Helper()
	resp, err := c.ExecuteStatement(ctxT(c.t), &hiveserver.TExecuteStatementReq{SessionHandle: h, Statement: stmt, RunAsync: async})
	if err != nil {
		c.t.Fatalf("ExecuteStatement: %v", err)
	}
	return resp
}

// run executes stmt and waits for it to end; it returns the handle and
// the final status.
func (c *rawClient) run(h *hiveserver.TSessionHandle, stmt string) (*hiveserver.TOperationHandle, *hiveserver.TGetOperationStatusResp) {
	c.t.Helper()
	resp := c.exec(h, stmt, true)
	ok(c.t, resp.Status)
	return resp.OperationHandle, c.wait(resp.OperationHandle)
}

func (c *rawClient) wait(op *hiveserver.TOperationHandle) *hiveserver.TGetOperationStatusResp {
	c.t.Helper()
	for {
		st, err := c.GetOperationStatus(ctxT(c.t), &hiveserver.TGetOperationStatusReq{OperationHandle: op})
		if err != nil {
			c.t.Fatalf("GetOperationStatus: %v", err)
		}
		ok(c.t, st.Status)
		if terminal(*st.OperationState) {
			return st
		}
	}
}

func (c *rawClient) fetch(op *hiveserver.TOperationHandle, n int64, orient hiveserver.TFetchOrientation) *hiveserver.TFetchResultsResp {
	c.t.Helper()
	resp, err := c.FetchResults(ctxT(c.t), &hiveserver.TFetchResultsReq{OperationHandle: op, Orientation: orient, MaxRows: n})
	if err != nil {
		c.t.Fatalf("FetchResults: %v", err)
	}
	return resp
}

func (c *rawClient) closeOp(op *hiveserver.TOperationHandle) {
	c.t.Helper()
	resp, err := c.CloseOperation(ctxT(c.t), &hiveserver.TCloseOperationReq{OperationHandle: op})
	if err != nil {
		c.t.Fatalf("CloseOperation: %v", err)
	}
	ok(c.t, resp.Status)
}

// query runs stmt, fetches every row in batches of batch and returns the
// rows as strings (NULL as "NULL"), closing the operation.
func (c *rawClient) query(h *hiveserver.TSessionHandle, stmt string) [][]string {
	c.t.Helper()
	op, st := c.run(h, stmt)
	defer c.closeOp(op)
	if *st.OperationState != hiveserver.TOperationState_FINISHED_STATE {
		c.t.Fatalf("%s: state %v: %v", stmt, st.OperationState, st.GetErrorMessage())
	}
	var rows [][]string
	for {
		resp := c.fetch(op, 1000, hiveserver.TFetchOrientation_FETCH_NEXT)
		ok(c.t, resp.Status)
		n := 0
		for r := 0; ; r++ {
			row, more := rowStrings(resp.Results.Columns, r)
			if !more {
				break
			}
			rows = append(rows, row)
			n++
		}
		if n == 0 {
			return rows
		}
	}
}

// rowStrings renders row r of a columnar batch; false past the end.
func rowStrings(cols []*hiveserver.TColumn, r int) ([]string, bool) {
	var out []string
	for _, c := range cols {
		var s string
		switch {
		case c.BoolVal != nil:
			if r >= len(c.BoolVal.Values) {
				return nil, false
			}
			s = strconv.FormatBool(c.BoolVal.Values[r])
			if isNullAt(c.BoolVal.Nulls, r) {
				s = "NULL"
			}
		case c.ByteVal != nil:
			if r >= len(c.ByteVal.Values) {
				return nil, false
			}
			s = strconv.Itoa(int(c.ByteVal.Values[r]))
			if isNullAt(c.ByteVal.Nulls, r) {
				s = "NULL"
			}
		case c.I16Val != nil:
			if r >= len(c.I16Val.Values) {
				return nil, false
			}
			s = strconv.Itoa(int(c.I16Val.Values[r]))
			if isNullAt(c.I16Val.Nulls, r) {
				s = "NULL"
			}
		case c.I32Val != nil:
			if r >= len(c.I32Val.Values) {
				return nil, false
			}
			s = strconv.Itoa(int(c.I32Val.Values[r]))
			if isNullAt(c.I32Val.Nulls, r) {
				s = "NULL"
			}
		case c.I64Val != nil:
			if r >= len(c.I64Val.Values) {
				return nil, false
			}
			s = strconv.FormatInt(c.I64Val.Values[r], 10)
			if isNullAt(c.I64Val.Nulls, r) {
				s = "NULL"
			}
		case c.DoubleVal != nil:
			if r >= len(c.DoubleVal.Values) {
				return nil, false
			}
			s = strconv.FormatFloat(c.DoubleVal.Values[r], 'g', -1, 64)
			if isNullAt(c.DoubleVal.Nulls, r) {
				s = "NULL"
			}
		case c.StringVal != nil:
			if r >= len(c.StringVal.Values) {
				return nil, false
			}
			s = c.StringVal.Values[r]
			if isNullAt(c.StringVal.Nulls, r) {
				s = "NULL"
			}
		case c.BinaryVal != nil:
			if r >= len(c.BinaryVal.Values) {
				return nil, false
			}
			s = fmt.Sprintf("%x", c.BinaryVal.Values[r])
			if isNullAt(c.BinaryVal.Nulls, r) {
				s = "NULL"
			}
		}
		out = append(out, s)
	}
	return out, len(cols) > 0
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
