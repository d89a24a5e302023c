package query

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hiveqd/hiveqd/hs2"
)

// Request is one statement to run.
type Request struct {
	// QueryID is the client's id for Cancel; generated when empty.
	QueryID   string
	Statement string
	// Connector is a configured HS2 cluster; empty selects the default.
	Connector string
	// Database is the session's database; empty is HS2's default.
	Database string
	// Config is the session's hiveconf overlay.
	Config map[string]string
	// FetchSize is rows per FetchResults, 1..10000; 0 picks
	// Limits.DefaultFetchSize.
	FetchSize int
	// MaxRows stops the stream after this many rows; 0 is no limit beyond
	// Limits.MaxRowsPerQuery.
	MaxRows int64
	// User is the authenticated caller; with impersonation on it becomes
	// hive.server2.proxy.user. It also keys Limits.MaxPerUser.
	User string
	// Frontend names the protocol the query came in by (FrontendHiveQ,
	// FrontendFlightSQL): observers label by it.
	Frontend string
	// Batch bounds the batches emitted for this front-end; zero fields
	// take the engine's Limits.
	Batch BatchLimits
	// Meta, when set, runs an HS2 metadata call instead of Statement,
	// with the same routing, pool, limits and life cycle.
	Meta *hs2.MetaRequest
	// DisableRerun turns transparent re-runs off for this query (rerun.go).
	DisableRerun bool
}

// BatchLimits is how a front-end sizes its batches: at most MaxRows rows
// and, by the engine's estimate of the encoded size, MaxBytes bytes.
type BatchLimits struct {
	MaxRows  int
	MaxBytes int
}

// batchLimits are the limits of q's batches.
func (q *queryRun) batchLimits() (rows, bytes int) {
	rows, bytes = min(q.e.limits.MaxBatchRows, q.req.FetchSize), q.e.limits.MaxBatchBytes
	if b := q.req.Batch; b.MaxRows > 0 {
		rows = min(b.MaxRows, q.req.FetchSize)
	}
	if b := q.req.Batch; b.MaxBytes > 0 {
		bytes = b.MaxBytes
	}
	return rows, bytes
}

// submit starts the request's operation on sess: the statement, or the
// metadata call.
func (q *queryRun) submit(ctx context.Context, sess *hs2.Session) (*hs2.Operation, error) {
	if m := q.req.Meta; m != nil {
		return sess.Metadata(ctx, *m)
	}
	return sess.Execute(ctx, q.req.Statement, nil)
}

// Request bounds.
const (
	DefaultFetchSize = hs2.MaxFetchRows
	maxQueryIDBytes  = 128
	maxDatabaseBytes = 128
	maxConfigEntries = 256
	maxConfigBytes   = 64 << 10 // all keys and values together
	maxUserBytes     = 256
)

// proxyUserKey is how HS2 impersonates; only the engine may set it.
const proxyUserKey = "hive.server2.proxy.user"

// validate checks req and fills its defaults. It does not look at routes.
func (e *Engine) validate(req *Request) *Error {
	if req.Meta != nil {
		if req.Statement == "" {
			req.Statement = req.Meta.Call.String()
		}
	}
	if !utf8.ValidString(req.Statement) {
		return invalid("statement", "statement is not valid UTF-8")
	}
	if strings.TrimSpace(req.Statement) == "" {
		return invalid("statement", "statement is empty")
	}
	if len(req.Statement) > e.limits.MaxStatementBytes {
		err := invalid("statement", "statement is %d bytes, more than the limit of %d", len(req.Statement), e.limits.MaxStatementBytes)
		err.Metadata[MetaLimit] = "max_statement_bytes"
		return err
	}
	if strings.IndexByte(req.Statement, 0) >= 0 {
		return invalid("statement", "statement contains a NUL character")
	}
	if err := checkText("query_id", req.QueryID, maxQueryIDBytes); err != nil {
		return err
	}
	if err := checkText("connector", req.Connector, maxQueryIDBytes); err != nil {
		return err
	}
	if err := checkText("user", req.User, maxUserBytes); err != nil {
		return err
	}
	if err := checkText("database", req.Database, maxDatabaseBytes); err != nil {
		return err
	}
	for _, r := range req.Database {
		// Hive database names are [A-Za-z0-9_]; anything else cannot exist
		// and must not reach HS2's "use:" handling.
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return invalid("database", "database %q is not a valid Hive database name", req.Database)
		}
	}
	if req.FetchSize < 0 || req.FetchSize > hs2.MaxFetchRows {
		return invalid("fetch_size", "fetch_size %d is outside 0..%d", req.FetchSize, hs2.MaxFetchRows)
	}
	if req.FetchSize == 0 {
		req.FetchSize = e.limits.DefaultFetchSize
	}
	if req.MaxRows < 0 {
		return invalid("max_rows", "max_rows %d is negative", req.MaxRows)
	}
	if len(req.Config) > maxConfigEntries {
		return invalid("config", "config has %d entries, more than %d", len(req.Config), maxConfigEntries)
	}
	total := 0
	for k, v := range req.Config {
		total += len(k) + len(v)
		if strings.TrimSpace(k) == "" {
			return invalid("config", "config has an empty key")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return invalid("config", "config entry %q is not valid UTF-8", strings.ToValidUTF8(k, "\uFFFD"))
		}
		if strings.ContainsFunc(k, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) || r == '=' }) {
			return invalid("config", "config key %q contains whitespace, control characters or '='", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return invalid("config", "config value of %q contains a NUL character", k)
		}
		if strings.EqualFold(k, proxyUserKey) {
			return invalid("config", "config key %q is reserved: impersonation follows the caller", k)
		}
	}
	if total > maxConfigBytes {
		return invalid("config", "config is %d bytes, more than %d", total, maxConfigBytes)
	}
	return nil
}

// checkText rejects invalid UTF-8, control characters and overlong values.
func checkText(field, s string, max int) *Error {
	if !utf8.ValidString(s) {
		return invalid(field, "%s is not valid UTF-8", field)
	}
	if len(s) > max {
		return invalid(field, "%s is %d bytes, more than %d", field, len(s), max)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return invalid(field, "%s contains control characters", field)
	}
	return nil
}

// newQueryID is a random UUID (version 4).
func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
