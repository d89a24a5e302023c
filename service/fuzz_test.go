package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/query"
)

// FuzzExecuteRequest sends arbitrary bytes as the ExecuteRequest body over
// the real gRPC stack (bufconn) to a service routed to an in-process
// simulator. Whatever arrives, the stream must end — within its deadline —
// with a code hiveqd documents: never INTERNAL, UNKNOWN only for a
// statement HS2 ran and failed (HS2_QUERY_FAILED), and no panic.
//
//	go test -run '^$' -fuzz FuzzExecuteRequest -fuzztime 60s ./service/
func FuzzExecuteRequest(f *testing.F) {
	tag := func(b []byte, num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	seed := func(req *hiveqv1.ExecuteRequest) {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_10"})
	seed(&hiveqv1.ExecuteRequest{Statement: "SELECT 1", FetchSize: 1, MaxRows: 1})
	seed(&hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_100", FetchSize: 10000, MaxRows: 1 << 62})
	seed(&hiveqv1.ExecuteRequest{Statement: "SELECT * FROM nosuch", Database: "nodb", Connector: "elsewhere"})
	seed(&hiveqv1.ExecuteRequest{Statement: "SELECT 1", Config: map[string]string{"hive.exec.parallel": "true", "": ""}})
	seed(&hiveqv1.ExecuteRequest{Statement: "SELECT 1", QueryId: "q-1"})
	f.Add(tag(nil, 1, []byte("SELECT '\xc3\x28'")))
	f.Add(tag(tag(nil, 1, []byte("SELECT 1")), 4, tag(tag(nil, 1, []byte("k")), 2, []byte("\xe2\x82"))))
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a length beyond the body
	f.Add([]byte{0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})

	s := startSim(f)
	fx := newFixture(f, s, func(c *query.Config) {
		// Fuzzed statements run on the simulator: keep them short.
		c.Limits.MaxRowsPerQuery = 10000
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		const deadline = 10 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		res := fx.execute(ctx, &hiveqv1.ExecuteRequest{}, nil, grpc.ForceCodecV2(rawCodec{body}))
		if took := time.Since(start); took > deadline+5*time.Second {
			t.Errorf("stream took %v, deadline %v", took, deadline)
		}
		st := status.Convert(res.err)
		switch st.Code() {
		case codes.OK, codes.InvalidArgument, codes.NotFound, codes.Unavailable, codes.Aborted,
			codes.DeadlineExceeded, codes.ResourceExhausted, codes.AlreadyExists:
		case codes.Unknown:
			if reason(st) != query.ReasonQueryFailed {
				t.Errorf("UNKNOWN without %s: %v", query.ReasonQueryFailed, res.err)
			}
		default:
			if st.Code() == codes.Internal && strings.HasPrefix(st.Message(), "grpc: failed to unmarshal") &&
				proto.Unmarshal(body, &hiveqv1.ExecuteRequest{}) != nil {
				// gRPC itself answers INTERNAL for a body that is no
				// protobuf (even leniently, without UTF-8 checks), before
				// any hiveqd handler runs.
				return
			}
			t.Errorf("code %v: %v (body %q)", st.Code(), res.err, body)
		}
	})
}

func reason(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}
