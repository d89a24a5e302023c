package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive"
	"github.com/beltran/gohive/hiveserver"
)

// thriftClient is the textbook direct HS2 client: Apache Thrift's Go
// library with the generated TCLIService code (TBinaryProtocol over SASL
// PLAIN), fetching columnar TRowSets and decoding them as the generated
// code does, into a []string / []int64 ... per column. It is the reference
// for "a direct Thrift client" independent of the hs2 package, which
// hiveqd itself uses and whose decoder (hs2/decode.go) the bench's direct
// client shares.
type thriftClient struct {
	tr      thrift.TTransport
	client  *hiveserver.TCLIServiceClient
	session *hiveserver.TSessionHandle
}

func openThrift(ctx context.Context, addr string) (*thriftClient, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	sock := thrift.NewTSocketConf(addr, &thrift.TConfiguration{ConnectTimeout: 10 * time.Second, SocketTimeout: time.Minute})
	if err := sock.Open(); err != nil {
		return nil, err
	}
	tr, err := gohive.NewTSaslTransport(sock, host, "PLAIN", map[string]string{"username": "bench", "password": "x"}, gohive.DEFAULT_MAX_LENGTH)
	if err != nil {
		sock.Close()
		return nil, err
	}
	if err := tr.Open(); err != nil {
		sock.Close()
		return nil, err
	}
	proto := thrift.NewTBinaryProtocolConf(tr, &thrift.TConfiguration{MaxMessageSize: 1 << 30})
	c := &thriftClient{tr: tr, client: hiveserver.NewTCLIServiceClient(thrift.NewTStandardClient(proto, proto))}
	resp, err := c.client.OpenSession(ctx, &hiveserver.TOpenSessionReq{ClientProtocol: hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V10})
	if err == nil {
		err = thriftStatus(resp.Status)
	}
	if err != nil {
		tr.Close()
		return nil, err
	}
	c.session = resp.SessionHandle
	return c, nil
}

func thriftStatus(s *hiveserver.TStatus) error {
	if s == nil || s.StatusCode == hiveserver.TStatusCode_SUCCESS_STATUS || s.StatusCode == hiveserver.TStatusCode_SUCCESS_WITH_INFO_STATUS {
		return nil
	}
	return fmt.Errorf("hs2: %v %s", s.StatusCode, s.GetErrorMessage())
}

// run executes stmt, waits for it, fetches every row and closes the
// operation; it returns the rows, counting each column's values.
func (c *thriftClient) run(ctx context.Context, stmt string, fetch int) (int64, error) {
	ex, err := c.client.ExecuteStatement(ctx, &hiveserver.TExecuteStatementReq{SessionHandle: c.session, Statement: stmt, RunAsync: true})
	if err == nil {
		err = thriftStatus(ex.Status)
	}
	if err != nil {
		return 0, err
	}
	op := ex.OperationHandle
	defer c.client.CloseOperation(context.WithoutCancel(ctx), &hiveserver.TCloseOperationReq{OperationHandle: op})
	for {
		st, err := c.client.GetOperationStatus(ctx, &hiveserver.TGetOperationStatusReq{OperationHandle: op})
		if err == nil {
			err = thriftStatus(st.Status)
		}
		if err != nil {
			return 0, err
		}
		if s := st.GetOperationState(); s == hiveserver.TOperationState_FINISHED_STATE {
			break
		} else if s != hiveserver.TOperationState_RUNNING_STATE && s != hiveserver.TOperationState_PENDING_STATE && s != hiveserver.TOperationState_INITIALIZED_STATE {
			return 0, fmt.Errorf("hs2: operation %v: %s", s, st.GetErrorMessage())
		}
	}
	if _, err := c.client.GetResultSetMetadata(ctx, &hiveserver.TGetResultSetMetadataReq{OperationHandle: op}); err != nil {
		return 0, err
	}
	var rows int64
	for {
		resp, err := c.client.FetchResults(ctx, &hiveserver.TFetchResultsReq{OperationHandle: op, Orientation: hiveserver.TFetchOrientation_FETCH_NEXT, MaxRows: int64(fetch)})
		if err == nil {
			err = thriftStatus(resp.Status)
		}
		if err != nil {
			return rows, err
		}
		n := 0
		if rs := resp.Results; rs != nil && len(rs.Columns) > 0 {
			n = columnLen(rs.Columns[0])
		}
		if n == 0 {
			return rows, nil
		}
		rows += int64(n)
	}
}

func columnLen(c *hiveserver.TColumn) int {
	switch {
	case c.BoolVal != nil:
		return len(c.BoolVal.Values)
	case c.ByteVal != nil:
		return len(c.ByteVal.Values)
	case c.I16Val != nil:
		return len(c.I16Val.Values)
	case c.I32Val != nil:
		return len(c.I32Val.Values)
	case c.I64Val != nil:
		return len(c.I64Val.Values)
	case c.DoubleVal != nil:
		return len(c.DoubleVal.Values)
	case c.StringVal != nil:
		return len(c.StringVal.Values)
	case c.BinaryVal != nil:
		return len(c.BinaryVal.Values)
	}
	return 0
}

// thrift runs a statement with the worker's reused generated-code client.
func (w *worker) thrift(ctx context.Context, req workerRequest) (int64, error) {
	c := w.thrifts[req.Addr]
	if c == nil {
		var err error
		if c, err = openThrift(ctx, req.Addr); err != nil {
			return 0, err
		}
		w.thrifts[req.Addr] = c
	}
	if req.FetchSize == 0 {
		req.FetchSize = 10000
	}
	return c.run(ctx, req.Stmt, req.FetchSize)
}
