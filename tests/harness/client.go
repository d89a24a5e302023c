package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// Client is a plaintext gRPC connection to one replica with both services.
type Client struct {
	Addr    string
	Conn    *grpc.ClientConn
	Query   hiveqv1.QueryServiceClient
	Cluster hiveqv1.ClusterServiceClient
}

// Dial connects to a replica (lazily, as grpc.NewClient does).
func Dial(addr string) (*Client, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &Client{Addr: addr, Conn: conn, Query: hiveqv1.NewQueryServiceClient(conn), Cluster: hiveqv1.NewClusterServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// Result is what one Execute stream delivered.
type Result struct {
	First    *hiveqv1.QueryStatus // the first status event
	Last     *hiveqv1.QueryStatus // the last status event
	Schema   *hiveqv1.ResultSchema
	Rows     int64
	Batches  int
	Err      error // the stream's final error (nil: it ended with io.EOF)
	Started  time.Time
	Finished time.Time
}

// Server is the HS2 server the first status names ("" without one).
func (r Result) Server() string {
	if r.First == nil {
		return ""
	}
	return r.First.GetServer()
}

// Code is the gRPC code of Err (OK when nil).
func (r Result) Code() codes.Code { return status.Code(r.Err) }

// Execute runs req and drains the stream. onBatch, when set, sees every
// batch (a non-nil error ends the call with that error); onEvent, when set,
// sees every event first (for tests that react to progress).
func (c *Client) Execute(ctx context.Context, req *hiveqv1.ExecuteRequest, onBatch func(*hiveqv1.RowBatch) error, onEvent func(*hiveqv1.ExecuteResponse)) Result {
	res := Result{Started: time.Now()}
	defer func() { res.Finished = time.Now() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Query.Execute(ctx, req)
	if err != nil {
		res.Err = err
		res.Finished = time.Now()
		return res
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.Err = err
			break
		}
		if onEvent != nil {
			onEvent(ev)
		}
		switch e := ev.GetEvent().(type) {
		case *hiveqv1.ExecuteResponse_Status:
			if res.First == nil {
				res.First = e.Status
			}
			res.Last = e.Status
		case *hiveqv1.ExecuteResponse_Schema:
			res.Schema = e.Schema
		case *hiveqv1.ExecuteResponse_Batch:
			if e.Batch.GetStartRow() != res.Rows {
				res.Err = fmt.Errorf("batch starts at row %d, %d rows came before", e.Batch.GetStartRow(), res.Rows)
				return res
			}
			res.Batches++
			if onBatch != nil {
				if err := onBatch(e.Batch); err != nil {
					res.Err = err
					return res
				}
			}
			res.Rows += int64(e.Batch.GetRowCount())
		}
	}
	res.Finished = time.Now()
	return res
}

// ErrorInfo returns err's code and google.rpc.ErrorInfo (nil when absent).
func ErrorInfo(err error) (codes.Code, *errdetails.ErrorInfo) {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), info
		}
	}
	return st.Code(), nil
}

// Topology is GetTopology's answer.
func (c *Client) Topology(ctx context.Context) (*hiveqv1.Topology, error) {
	r, err := c.Cluster.GetTopology(ctx, &hiveqv1.GetTopologyRequest{})
	if err != nil {
		return nil, err
	}
	return r.GetTopology(), nil
}

// ConnectorState finds a connector in t (nil when absent).
func ConnectorState(t *hiveqv1.Topology, name string) *hiveqv1.ConnectorState {
	for _, c := range t.GetConnectors() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// ServerAddr is host:port of s ("" for nil).
func ServerAddr(s *hiveqv1.Server) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", s.GetHost(), s.GetPort())
}

// Route is one connector's server and epoch as a replica sees them.
type Route struct {
	Server string // "" when none
	Epoch  uint64
}

// RouteOf reads connector's route from the replica's topology.
func (c *Client) RouteOf(ctx context.Context, connector string) (Route, *hiveqv1.Topology, error) {
	t, err := c.Topology(ctx)
	if err != nil {
		return Route{}, nil, err
	}
	cs := ConnectorState(t, connector)
	if cs == nil {
		return Route{}, t, fmt.Errorf("%s: connector %q not in the topology", c.Addr, connector)
	}
	return Route{Server: ServerAddr(cs.GetServer()), Epoch: cs.GetEpoch()}, t, nil
}

// LeaderID is the leader's id in t ("" while none is known).
func LeaderID(t *hiveqv1.Topology) string { return t.GetLeader().GetId() }
