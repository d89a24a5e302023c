package service

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/query"
)

// ErrorDomain is google.rpc.ErrorInfo's domain on every error.
const ErrorDomain = "hiveqd.io"

// grpcCode maps the engine's codes. A statement that HS2 accepted and then
// failed is UNKNOWN: gRPC has no code for "your query failed at run time",
// and the ErrorInfo reason (HS2_QUERY_FAILED) with HS2's sql_state says
// what happened.
func grpcCode(c query.Code) codes.Code {
	switch c {
	case query.InvalidArgument:
		return codes.InvalidArgument
	case query.NotFound:
		return codes.NotFound
	case query.Unavailable:
		return codes.Unavailable
	case query.Aborted:
		return codes.Aborted
	case query.Canceled:
		return codes.Canceled
	case query.DeadlineExceeded:
		return codes.DeadlineExceeded
	case query.ResourceExhausted:
		return codes.ResourceExhausted
	case query.PermissionDenied:
		return codes.PermissionDenied
	case query.Failed:
		return codes.Unknown
	}
	return codes.Internal
}

// ToStatus converts an engine error to a gRPC status error with a
// google.rpc.ErrorInfo detail. Errors that already are gRPC statuses pass
// through; anything else is INTERNAL.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	var qe *query.Error
	if !errors.As(err, &qe) {
		if _, ok := status.FromError(err); ok {
			return err
		}
		qe = query.AsError(err)
	}
	st := status.New(grpcCode(qe.Code), validUTF8(qe.Message))
	info := &errdetails.ErrorInfo{Reason: qe.Reason, Domain: ErrorDomain, Metadata: make(map[string]string, len(qe.Metadata))}
	if info.Reason == "" {
		info.Reason = query.ReasonInternal
	}
	for k, v := range qe.Metadata {
		info.Metadata[validUTF8(k)] = validUTF8(v)
	}
	if withInfo, derr := st.WithDetails(info); derr == nil {
		st = withInfo
	}
	return st.Err()
}
