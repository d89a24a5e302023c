package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// rawCodec sends bytes as they are, so a test can put invalid UTF-8 in a
// proto3 string field, as a buggy client in another language might.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	e := start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, field := range []string{"statement", "database", "config"} {
		t.Run(field, func(t *testing.T) {
			req := &hiveqv1.ExecuteRequest{Statement: "SELECT 1"}
			switch field {
			case "statement":
				req.Statement = "SELECT 'MARK'"
			case "database":
				req.Database = "MARK"
			case "config":
				req.Config = map[string]string{"k": "MARK"}
			}
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, []byte("MARK"), []byte{'M', 0xff, 0xfe, 'K'}, 1)
			conn, err := grpc.NewClient(e.hiveqd.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/hiveq.v1.QueryService/Execute", grpc.ForceCodec(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.SendMsg(&b); err != nil {
				t.Fatal(err)
			}
			_ = stream.CloseSend()
			var resp []byte
			for err == nil {
				err = stream.RecvMsg(&resp)
			}
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got %v, want INVALID_ARGUMENT", err)
			}
			var reason string
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok {
					reason = info.Reason
				}
			}
			if reason != "INVALID_REQUEST" {
				t.Errorf("ErrorInfo reason %q", reason)
			}
		})
	}
}
