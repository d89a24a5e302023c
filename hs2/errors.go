package hs2

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

var (
	// ErrPoolClosed is wrapped by Pool.Get after CloseAll.
	ErrPoolClosed = errors.New("hs2: pool closed")
	// ErrSessionClosed is returned by calls on a closed Session.
	ErrSessionClosed = errors.New("hs2: session closed")
	// ErrBroken is wrapped (in a *TransportError) by calls on a session whose
	// connection already failed.
	ErrBroken = errors.New("hs2: session broken by an earlier transport failure")
	// ErrUnsupported is wrapped when an endpoint needs something this client
	// does not speak (Kerberos, a protocol older than V6).
	ErrUnsupported = errors.New("hs2: unsupported")
)

// AuthError is HS2 refusing our credentials: a SASL BAD/ERROR answer on the
// binary transport or HTTP 401/403. It is neither a transport nor a Thrift
// failure; retrying with the same credentials will not help.
type AuthError struct {
	Server  string
	Message string // the server's reason, when it gave one
	// Err is our side's cause, when authentication failed before the
	// server could answer (a Kerberos ticket, a mutual-auth check).
	Err error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("hs2 %s: authentication failed: %s", e.Server, e.Message)
}

func (e *AuthError) Unwrap() error { return e.Err }

// statusError turns a non-success TStatus into a *ServerError (nil for
// SUCCESS and SUCCESS_WITH_INFO).
func statusError(server, call string, st *hiveserver.TStatus) error {
	if st == nil {
		return &ServerError{Server: server, Call: call, Message: "response without status"}
	}
	switch st.StatusCode {
	case hiveserver.TStatusCode_SUCCESS_STATUS, hiveserver.TStatusCode_SUCCESS_WITH_INFO_STATUS,
		hiveserver.TStatusCode_STILL_EXECUTING_STATUS:
		return nil
	}
	e := &ServerError{Server: server, Call: call, SQLState: st.GetSqlState(), ErrorCode: st.GetErrorCode(), Message: st.GetErrorMessage()}
	if e.Message == "" {
		e.Message = st.StatusCode.String()
	}
	return e
}

// callError classifies an error from a generated client call. It reports
// whether the connection is out of sync (broken) as well.
func callError(ctx context.Context, server, call string, err error) (out error, broken bool) {
	var auth *AuthError
	if errors.As(err, &auth) {
		return auth, true
	}
	var appErr thrift.TApplicationException
	if errors.As(err, &appErr) {
		switch appErr.TypeId() {
		case thrift.WRONG_METHOD_NAME, thrift.BAD_SEQUENCE_ID, thrift.INVALID_MESSAGE_TYPE_EXCEPTION:
			// Generated locally when the reply does not match the call:
			// the stream is out of step.
		default:
			// The server answered with an exception; the connection is
			// still in step.
			return &ServerError{Server: server, Call: call, Message: appErr.Error()}, false
		}
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	return &TransportError{Server: server, Call: call, Err: err}, true
}
