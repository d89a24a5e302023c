// Package hs2 is hiveqd's HiveServer2 client: Thrift transports (binary
// SASL, binary NOSASL, HTTP, each with optional TLS), authentication
// mechanisms behind one seam (Authenticator: SASL PLAIN and HTTP Basic,
// Kerberos as SASL GSSAPI with every QOP and as HTTP SPNEGO), sessions,
// operations, columnar result batches and a session pool.
//
// FetchResults answers are decoded by hand (decode.go), not by the
// generated Thrift code: straight into columnar buffers (numbers swapped in
// bulk, strings as one buffer plus offsets), because per-value decoding was
// most of hiveqd's CPU on large results.
//
// One Session is one connection: HS2 ties a session to its TCP connection and
// drops it with the connection, and a connection carries one call at a time.
package hs2

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Transport is HS2's hive.server2.transport.mode.
type Transport string

const (
	TransportBinary Transport = "binary"
	TransportHTTP   Transport = "http"
)

// Auth is HS2's hive.server2.authentication as it matters to a client.
// NONE, LDAP and CUSTOM all speak SASL PLAIN on the binary transport and
// Basic auth on HTTP; NOSASL is the raw binary protocol.
type Auth string

const (
	AuthNone     Auth = "NONE"
	AuthNoSASL   Auth = "NOSASL"
	AuthLDAP     Auth = "LDAP"
	AuthCustom   Auth = "CUSTOM"
	AuthKerberos Auth = "KERBEROS" // SASL GSSAPI on binary, SPNEGO on HTTP
)

// DefaultHTTPPath is hive.server2.thrift.http.path's default.
const DefaultHTTPPath = "cliservice"

// Endpoint is one HS2 server and how to speak to it; discovery fills it from
// the ZooKeeper znode data, a static config from flags.
type Endpoint struct {
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	Transport Transport `json:"transport,omitempty"` // default binary
	HTTPPath  string    `json:"http_path,omitempty"` // default cliservice
	Auth      Auth      `json:"auth,omitempty"`      // default NONE
	TLS       bool      `json:"tls,omitempty"`
	// Principal is the server's Kerberos principal as it publishes it
	// (hive.server2.authentication.kerberos.principal, hive/_HOST@REALM).
	Principal string `json:"principal,omitempty"`
	// SASLQOP is its hive.server2.thrift.sasl.qop (auth, auth-int,
	// auth-conf); empty is auth.
	SASLQOP string `json:"sasl_qop,omitempty"`
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

func (e Endpoint) String() string { return e.Addr() }

// Options are how this process dials HS2: its own credentials, TLS, timeouts.
type Options struct {
	User     string // HS2 login (SASL PLAIN / Basic auth); default "anonymous"
	Password string // default "anonymous"; HS2 NONE accepts anything non-empty
	// TLSConfig is used when Endpoint.TLS is set; nil means system roots.
	TLSConfig *tls.Config
	// DialContext replaces net.Dialer for tests and fault proxies.
	DialContext    func(ctx context.Context, network, addr string) (net.Conn, error)
	ConnectTimeout time.Duration // default 5s
	// CallTimeout bounds each Thrift call that has no earlier ctx deadline;
	// it must exceed HS2's long-poll (5s). Default 30s.
	CallTimeout time.Duration
	// Clock paces Operation.Wait's back-off and HTTP cookie expiry; nil is
	// the real clock.
	Clock Clock
	// Kerberos is hiveqd's identity for KERBEROS servers; nil refuses them.
	Kerberos *Kerberos
	// Authenticator, when set, replaces the mechanism Endpoint.Auth selects.
	Authenticator Authenticator
	// Observe, when set, sees every Thrift call (metrics, trace spans);
	// nil costs nothing.
	Observe ObserveFunc
}

// SessionConfig is what makes sessions different; the pool keys on it.
type SessionConfig struct {
	ProxyUser string            // hive.server2.proxy.user (impersonation); "" for none
	Database  string            // "use:database"; "" for default
	Conf      map[string]string // "set:hiveconf:k" overlay
}

// OpState mirrors TOperationState.
type OpState int

const (
	StateInitialized OpState = iota
	StateRunning
	StateFinished
	StateCanceled
	StateClosed
	StateError
	StateUnknown
	StatePending
	StateTimedOut
)

var opStateNames = [...]string{"INITIALIZED", "RUNNING", "FINISHED", "CANCELED", "CLOSED", "ERROR", "UNKNOWN", "PENDING", "TIMEDOUT"}

func (s OpState) String() string {
	if s >= 0 && int(s) < len(opStateNames) {
		return opStateNames[s]
	}
	return "OpState(" + strconv.Itoa(int(s)) + ")"
}

// Terminal reports whether the operation can no longer change state.
func (s OpState) Terminal() bool {
	switch s {
	case StateFinished, StateCanceled, StateClosed, StateError, StateTimedOut, StateUnknown:
		return true
	}
	return false
}

// Status is one GetOperationStatus answer.
type Status struct {
	State        OpState
	Progress     float64 // 0..1, or -1 when HS2 reports none
	TaskStatus   string
	HasResultSet bool
	// Err is a *ServerError when State is StateError.
	Err error
}

// ColumnDesc is one result column from GetResultSetMetadata.
type ColumnDesc struct {
	Name     string // as HS2 reports it, e.g. "t.id" for SELECT *
	Type     string // Hive type text with qualifiers: "int", "decimal(10,2)", "varchar(20)"
	Position int    // 1-based
	Comment  string
}

// Schema is a result set's columns in order.
type Schema []ColumnDesc

// Kind is which typed slice of a Vector is set. HS2 sends tinyint and
// smallint as byte/i16 columns; they widen to Int32. Float widens to Double.
// Decimal, date, timestamp, interval, char/varchar and complex types arrive as
// strings, as HS2 sends them.
type Kind uint8

const (
	KindBool Kind = iota + 1
	KindInt32
	KindInt64
	KindDouble
	KindString
	KindBytes
)

var kindNames = [...]string{"", "bool", "int32", "int64", "double", "string", "bytes"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k > 0 {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Vector is one column of a batch. Only the fields for Kind are set, and
// they hold the batch's row count of values. String and bytes values are
// Arrow's variable-width layout: value i is Data[Offsets[i]:Offsets[i+1]],
// with len(Offsets) = rows+1 (Offsets[0] need not be 0 in a slice of a
// batch). The decoder fills every buffer once per FetchResults answer and
// never reuses it, so a batch may be kept, sliced and aliased freely (the
// gRPC codec and the Arrow writer send the buffers without copying values).
type Vector struct {
	Kind Kind
	// Nulls is HS2's bitmap: row i is NULL when bit 1<<(i%8) of byte i/8 is
	// set. It is normalised to exactly (rows+7)/8 bytes, or nil when the
	// batch has no NULLs in this column.
	Nulls   []byte
	Bools   []bool
	Int32s  []int32
	Int64s  []int64
	Doubles []float64
	// KindString, KindBytes: the values' bytes end to end, and rows+1
	// offsets into them.
	Data    []byte
	Offsets []int32
}

// StringVector builds a KindString vector from Go strings (for tests and
// small results; the decoder builds Data and Offsets directly).
func StringVector(ss []string, nulls []byte) Vector {
	v := Vector{Kind: KindString, Nulls: nulls, Offsets: make([]int32, len(ss)+1)}
	for i, s := range ss {
		v.Data = append(v.Data, s...)
		v.Offsets[i+1] = int32(len(v.Data))
	}
	return v
}

// BytesVector builds a KindBytes vector from byte slices.
func BytesVector(bs [][]byte, nulls []byte) Vector {
	v := Vector{Kind: KindBytes, Nulls: nulls, Offsets: make([]int32, len(bs)+1)}
	for i, b := range bs {
		v.Data = append(v.Data, b...)
		v.Offsets[i+1] = int32(len(v.Data))
	}
	return v
}

// At is value i of a string or bytes vector, aliasing Data.
func (v *Vector) At(i int) []byte { return v.Data[v.Offsets[i]:v.Offsets[i+1]:v.Offsets[i+1]] }

// Str is value i of a string or bytes vector as a string (a copy).
func (v *Vector) Str(i int) string { return string(v.At(i)) }

// Strings returns every value of a string or bytes vector as a Go string
// (copies; for tests and printing, not for the data path).
func (v *Vector) Strings() []string {
	out := make([]string, v.Len())
	for i := range out {
		out[i] = v.Str(i)
	}
	return out
}

// ValueBytes is the size of the values of a string or bytes vector.
func (v *Vector) ValueBytes() int {
	if len(v.Offsets) == 0 {
		return 0
	}
	return int(v.Offsets[len(v.Offsets)-1] - v.Offsets[0])
}

// Len is the number of rows in v.
func (v *Vector) Len() int {
	switch v.Kind {
	case KindBool:
		return len(v.Bools)
	case KindInt32:
		return len(v.Int32s)
	case KindInt64:
		return len(v.Int64s)
	case KindDouble:
		return len(v.Doubles)
	case KindString, KindBytes:
		return max(len(v.Offsets)-1, 0)
	}
	return 0
}

// IsNull reports whether row i is NULL.
func (v *Vector) IsNull(i int) bool {
	b := i / 8
	return b < len(v.Nulls) && v.Nulls[b]&(1<<(uint(i)%8)) != 0
}

// Value returns row i as a Go value (nil for NULL); for tests and printing,
// not for the data path.
func (v *Vector) Value(i int) any {
	if v.IsNull(i) {
		return nil
	}
	switch v.Kind {
	case KindBool:
		return v.Bools[i]
	case KindInt32:
		return v.Int32s[i]
	case KindInt64:
		return v.Int64s[i]
	case KindDouble:
		return v.Doubles[i]
	case KindString:
		return v.Str(i)
	case KindBytes:
		return append([]byte{}, v.At(i)...)
	}
	return nil
}

// Batch is one FetchResults answer in columnar form.
type Batch struct {
	StartRow int64 // index of the first row in the whole result
	Rows     int
	Columns  []Vector
}

// ServerError is an error status from HS2: a failed call or an operation in
// ERROR_STATE. It keeps HS2's SQLSTATE, error code and message.
type ServerError struct {
	Server    string // host:port that answered
	Call      string // Thrift method, e.g. "ExecuteStatement"
	SQLState  string
	ErrorCode int32
	Message   string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("hs2 %s %s: %s (SQLState %s, error code %d)", e.Server, e.Call, e.Message, e.SQLState, e.ErrorCode)
}

// TransportError is a failure to reach HS2 or to finish a call on the
// connection (refused, reset, EOF, timeout, broken framing). The session it
// happened on is unusable.
type TransportError struct {
	Server string
	Call   string
	Err    error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("hs2 %s %s: transport: %v", e.Server, e.Call, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }
