package hs2

import (
	"bufio"
	"context"
	"io"
	"math"
	"net"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

const ioBufSize = 64 << 10

// transport is a Thrift transport that can bound one call by a context.
// Implementations also provide the byte-level methods of
// thrift.TRichTransport so TBinaryProtocol does not wrap them again.
type transport interface {
	thrift.TTransport
	io.ByteReader
	io.ByteWriter
	WriteString(s string) (int, error)
	// arm makes the next call fail once ctx ends (its deadline passes or it
	// is cancelled); the returned func disarms it and must be called before
	// the next arm.
	arm(ctx context.Context) (disarm func())
	// survivesFailure reports whether a failed call leaves the transport
	// usable for the next one (HTTP: each call is its own request).
	survivesFailure() bool
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked I/O on a
// net.Conn return at once.
var aLongTimeAgo = time.Unix(1, 0)

// armConn bounds I/O on conn by ctx: its deadline up front, cancellation by
// moving the deadline into the past. That is how a long poll in flight is
// abandoned; the connection is unusable afterwards, and HS2 ends the
// session with it.
func armConn(ctx context.Context, conn net.Conn) func() {
	dl, _ := ctx.Deadline() // zero (none) when ctx has no deadline
	_ = conn.SetDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = conn.SetDeadline(aLongTimeAgo)
	})
	return func() {
		if !stop() {
			// The func runs or ran: wait so that its SetDeadline cannot
			// land after the next call's.
			<-fired
		}
	}
}

// rawTransport is NOSASL: TBinaryProtocol straight on the socket, buffered
// and unframed (HS2's plain TTransportFactory).
type rawTransport struct {
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	corked bool // Flush leaves the bytes in w for uncork (pipeline.go)
}

func newRawTransport(conn net.Conn) *rawTransport {
	return &rawTransport{conn: conn, r: bufio.NewReaderSize(conn, ioBufSize), w: bufio.NewWriterSize(conn, ioBufSize)}
}

func (t *rawTransport) Open() error                       { return nil }
func (t *rawTransport) IsOpen() bool                      { return true }
func (t *rawTransport) Close() error                      { return t.conn.Close() }
func (t *rawTransport) RemainingBytes() uint64            { return math.MaxUint64 } // unknown
func (t *rawTransport) Read(p []byte) (int, error)        { return t.r.Read(p) }
func (t *rawTransport) ReadByte() (byte, error)           { return t.r.ReadByte() }
func (t *rawTransport) Write(p []byte) (int, error)       { return t.w.Write(p) }
func (t *rawTransport) WriteByte(b byte) error            { return t.w.WriteByte(b) }
func (t *rawTransport) WriteString(s string) (int, error) { return t.w.WriteString(s) }
func (t *rawTransport) Flush(context.Context) error {
	if t.corked {
		return nil
	}
	return t.w.Flush()
}
func (t *rawTransport) cork() { t.corked = true }
func (t *rawTransport) uncork() error {
	t.corked = false
	return t.w.Flush()
}
func (t *rawTransport) arm(ctx context.Context) func() { return armConn(ctx, t.conn) }
func (t *rawTransport) survivesFailure() bool          { return false }
