package service

import (
	"errors"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hiveqd/hiveqd/query"
)

func TestToStatus(t *testing.T) {
	for code, want := range map[query.Code]codes.Code{
		query.InvalidArgument:   codes.InvalidArgument,
		query.NotFound:          codes.NotFound,
		query.Unavailable:       codes.Unavailable,
		query.Aborted:           codes.Aborted,
		query.Canceled:          codes.Canceled,
		query.DeadlineExceeded:  codes.DeadlineExceeded,
		query.ResourceExhausted: codes.ResourceExhausted,
		query.Failed:            codes.Unknown,
		query.Internal:          codes.Internal,
	} {
		err := ToStatus(&query.Error{Code: code, Reason: "R", Message: "bad \xff text", Metadata: map[string]string{"server": "h:1\xfe"}})
		st := status.Convert(err)
		if st.Code() != want || !utf8.ValidString(st.Message()) {
			t.Errorf("%v: %v %q", code, st.Code(), st.Message())
		}
		info := st.Details()[0].(*errdetails.ErrorInfo)
		if info.Domain != ErrorDomain || info.Reason != "R" || !utf8.ValidString(info.Metadata["server"]) {
			t.Errorf("%v: %v", code, info)
		}
		// The status must survive the wire.
		if _, err := proto.Marshal(st.Proto()); err != nil {
			t.Errorf("%v: %v", code, err)
		}
	}
	st := status.Convert(ToStatus(errors.New("boom")))
	if st.Code() != codes.Internal || st.Details()[0].(*errdetails.ErrorInfo).Reason != query.ReasonInternal {
		t.Fatalf("plain error: %v", st)
	}
	if ToStatus(nil) != nil {
		t.Fatal("nil error")
	}
}

func TestValidStrings(t *testing.T) {
	ok := []string{"a", "é"}
	if got := validStrings(ok); &got[0] != &ok[0] {
		t.Fatal("valid strings were copied")
	}
	got := validStrings([]string{"a", "b\xff", "c"})
	if got[0] != "a" || got[1] != "b\uFFFD" || got[2] != "c" {
		t.Fatalf("%q", got)
	}
}
