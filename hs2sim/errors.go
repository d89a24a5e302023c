package hs2sim

import (
	"fmt"
	"strings"

	"github.com/beltran/gohive/hiveserver"
)

// hiveError is an error as HS2 reports it in a TStatus: SQLSTATE, vendor
// error code and message, plus the exception class chain HS2 lists in
// infoMessages.
type hiveError struct {
	sqlState string // "" is sent as no SQLSTATE (HiveSQLException(String))
	code     int32
	msg      string
	// frames are HS2-like "class:method:file:line" entries; cause is the
	// root exception ("class:message"), both for infoMessages only.
	frames []string
	cause  string
}

func (e *hiveError) Error() string { return e.msg }

func (e *hiveError) status() *hiveserver.TStatus {
	st := &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_ERROR_STATUS}
	msg, code := e.msg, e.code
	st.ErrorMessage = &msg
	st.ErrorCode = &code
	if e.sqlState != "" {
		s := e.sqlState
		st.SqlState = &s
	}
	frames := e.frames
	if len(frames) == 0 {
		frames = []string{"org.apache.hive.service.cli.session.HiveSessionImpl:executeStatementInternal:HiveSessionImpl.java:558"}
	}
	info := []string{fmt.Sprintf("*org.apache.hive.service.cli.HiveSQLException:%s:%d:%d", e.msg, len(frames)+11, len(frames)-1)}
	info = append(info, frames...)
	if e.cause != "" {
		info = append(info, "*"+e.cause+":0:-1")
	}
	st.InfoMessages = info
	return st
}

// plainError is HiveSQLException(String): no SQLSTATE, code 0.
func plainError(format string, args ...any) *hiveError {
	return &hiveError{msg: fmt.Sprintf(format, args...)}
}

var compileFrames = []string{
	"org.apache.hive.service.cli.operation.Operation:toSQLException:Operation.java:335",
	"org.apache.hive.service.cli.operation.SQLOperation:prepare:SQLOperation.java:199",
	"org.apache.hive.service.cli.operation.SQLOperation:runInternal:SQLOperation.java:262",
}

// parseError is a ParseException at (line, col) with up to three tokens of
// context, as Hive's parser reports an unexpected token.
func parseError(line, col int, near []string) *hiveError {
	q := make([]string, 3)
	for i := range q {
		q[i] = "'<EOF>'"
		if i < len(near) {
			q[i] = "'" + near[i] + "'"
		}
	}
	detail := fmt.Sprintf("line %d:%d cannot recognize input near %s", line, col, strings.Join(q, " "))
	return &hiveError{
		sqlState: "42000", code: 40000,
		msg:    "Error while compiling statement: FAILED: ParseException " + detail,
		frames: compileFrames,
		cause:  "org.apache.hadoop.hive.ql.parse.ParseException:" + detail,
	}
}

// parseErrorText is a ParseException with a ready-made detail, e.g.
// "line 1:8 extraneous input ';' expecting EOF near '<EOF>'".
func parseErrorText(detail string) *hiveError {
	return &hiveError{
		sqlState: "42000", code: 40000,
		msg:    "Error while compiling statement: FAILED: ParseException " + detail,
		frames: compileFrames,
		cause:  "org.apache.hadoop.hive.ql.parse.ParseException:" + detail,
	}
}

// Hive ErrorMsg codes used here, with their SQLSTATEs.
const (
	errInvalidTable    = 10001 // 42S02 "Table not found"
	errInvalidColumn   = 10002 // 42000 "Invalid column reference"
	errInvalidTabAlias = 10004 // 42000 "Invalid table alias or column reference"
	errInvalidFunction = 10011 // 42000 "Invalid function"
	errDatabaseMissing = 10072 // 42000 "Database does not exist:"
	errGeneric         = 40000 // 42000 generic compile error
)

// semanticError is a SemanticException carrying Hive ErrorMsg code.
func semanticError(code int32, detail string) *hiveError {
	state := "42000"
	if code == errInvalidTable {
		state = "42S02"
	}
	text := fmt.Sprintf("SemanticException [Error %d]: %s", code, detail)
	if code == errGeneric {
		text = "SemanticException " + detail
	}
	return &hiveError{
		sqlState: state, code: code,
		msg:    "Error while compiling statement: FAILED: " + text,
		frames: compileFrames,
		cause:  "org.apache.hadoop.hive.ql.parse.SemanticException:" + detail,
	}
}

// runtimeError is how a failed job surfaces: the operation goes to
// ERROR_STATE with SQLSTATE 08S01 and the task's return code.
func runtimeError(detail string) *hiveError {
	if detail == "" {
		detail = "Execution Error, return code 2 from org.apache.hadoop.hive.ql.exec.mr.MapRedTask"
	}
	return &hiveError{
		sqlState: "08S01", code: 2,
		msg: "Error while processing statement: FAILED: " + detail,
		frames: []string{
			"org.apache.hive.service.cli.operation.Operation:toSQLException:Operation.java:335",
			"org.apache.hive.service.cli.operation.SQLOperation:runQuery:SQLOperation.java:226",
			"org.apache.hive.service.cli.operation.SQLOperation$BackgroundWork$1:run:SQLOperation.java:316",
		},
	}
}

func okStatus() *hiveserver.TStatus {
	return &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_SUCCESS_STATUS}
}
