package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hiveqd/hiveqd/hs2"
)

// Code classifies an Error; the gRPC layer maps each to a status code.
type Code int

const (
	// Internal is a bug or an unexpected condition (the zero value, so an
	// Error without a code is never mistaken for a client error).
	Internal Code = iota
	InvalidArgument
	NotFound
	Unavailable
	Aborted
	Canceled
	DeadlineExceeded
	ResourceExhausted
	// Failed is a statement HS2 accepted and then failed at run time.
	Failed
	// PermissionDenied: the caller may not act on what it named.
	PermissionDenied
)

var codeNames = [...]string{"Internal", "InvalidArgument", "NotFound", "Unavailable", "Aborted", "Canceled", "DeadlineExceeded", "ResourceExhausted", "Failed", "PermissionDenied"}

func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Code(" + strconv.Itoa(int(c)) + ")"
}

// Reasons name the cause of an Error in a machine-readable way; the gRPC
// layer puts them in google.rpc.ErrorInfo.
const (
	ReasonInvalidRequest = "INVALID_REQUEST"
	ReasonCompileError   = "HS2_COMPILE_ERROR"
	ReasonNotFound       = "HS2_NOT_FOUND"
	ReasonQueryFailed    = "HS2_QUERY_FAILED"
	ReasonNoHS2          = "NO_HS2_AVAILABLE"
	ReasonHS2Lost        = "HS2_LOST"
	ReasonAuthFailed     = "HS2_AUTH_FAILED"
	ReasonCancelled      = "QUERY_CANCELLED"
	ReasonDeadline       = "DEADLINE_EXCEEDED"
	ReasonLimitExceeded  = "LIMIT_EXCEEDED"
	ReasonQueryNotFound  = "QUERY_NOT_FOUND"
	ReasonQueryIDInUse   = "QUERY_ID_IN_USE"
	ReasonShuttingDown   = "SHUTTING_DOWN"
	ReasonInternal       = "INTERNAL"
	ReasonUnsupportedHS2 = "HS2_UNSUPPORTED"
)

// Metadata keys of an Error.
const (
	MetaSQLState  = "sql_state"
	MetaErrorCode = "error_code"
	MetaServer    = "server"
	MetaConnector = "connector"
	MetaEpoch     = "epoch"
	MetaNewServer = "new_server"
	MetaNewEpoch  = "new_epoch"
	MetaQueryID   = "query_id"
	MetaField     = "field"
	MetaLimit     = "limit"
	// MetaRowsDelivered is how many rows reached the client before its
	// query was lost (HS2_LOST).
	MetaRowsDelivered = "rows_delivered"
)

// Error is the one error type the engine returns. Message is meant for the
// client and is valid UTF-8; Err keeps the cause for errors.As/Is.
type Error struct {
	Code     Code
	Reason   string
	Message  string
	Metadata map[string]string
	Err      error
}

func (e *Error) Error() string {
	if e.Err != nil && !strings.Contains(e.Message, e.Err.Error()) {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// AsError returns err as an *Error, wrapping anything else as Internal.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var qe *Error
	if errors.As(err, &qe) {
		return qe
	}
	return &Error{Code: Internal, Reason: ReasonInternal, Message: err.Error(), Err: err}
}

func newError(code Code, reason string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...), Metadata: map[string]string{}, Err: err}
}

func invalid(field, format string, args ...any) *Error {
	e := newError(InvalidArgument, ReasonInvalidRequest, nil, format, args...)
	if field != "" {
		e.Metadata[MetaField] = field
	}
	return e
}

// Hive's ErrorMsg codes the mapping singles out. Hive partitions its codes:
// 10000–19999 are compile-time (semantic analysis) errors.
const (
	hiveInvalidTable   = 10001 // Table not found (SQLSTATE 42S02)
	hiveDatabaseAbsent = 10072 // Database does not exist (42000)
	hiveCompileMin     = 10000
	hiveCompileMax     = 19999
)

// classifyServer maps an HS2 error status to a Code and a reason: the
// caller's statement is wrong (class 42 or a compile-time Hive code), names
// something that does not exist, or failed while running.
func classifyServer(se *hs2.ServerError) (Code, string) {
	switch {
	case se.SQLState == "42S02" || se.ErrorCode == hiveInvalidTable || se.ErrorCode == hiveDatabaseAbsent:
		return NotFound, ReasonNotFound
	case strings.HasPrefix(se.SQLState, "42"),
		se.ErrorCode >= hiveCompileMin && se.ErrorCode <= hiveCompileMax:
		return InvalidArgument, ReasonCompileError
	}
	return Failed, ReasonQueryFailed
}

// fromServerError builds the Error for an HS2 error status.
func fromServerError(se *hs2.ServerError, meta map[string]string) *Error {
	code, reason := classifyServer(se)
	e := &Error{Code: code, Reason: reason, Message: "HiveServer2 " + se.Server + ": " + se.Message, Metadata: meta, Err: se}
	if se.SQLState != "" {
		e.Metadata[MetaSQLState] = se.SQLState
	}
	if se.ErrorCode != 0 {
		e.Metadata[MetaErrorCode] = strconv.Itoa(int(se.ErrorCode))
	}
	return e
}
