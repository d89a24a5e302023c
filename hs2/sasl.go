package hs2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
)

// Thrift SASL negotiation status bytes (TSaslTransport.NegotiationStatus).
const (
	saslStart    byte = 1
	saslOK       byte = 2
	saslBad      byte = 3
	saslError    byte = 4
	saslComplete byte = 5
)

// maxSASLPayload bounds a negotiation frame; PLAIN's are tiny.
const maxSASLPayload = 64 << 10

var errSASLProtocol = errors.New("sasl: protocol violation")

// writeSASLFrame writes one negotiation frame: status, 4-byte big-endian
// payload length, payload, in a single Write.
func writeSASLFrame(w io.Writer, status byte, payload []byte) error {
	buf := make([]byte, 5+len(payload))
	buf[0] = status
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

func readSASLFrame(r io.Reader) (status byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxSASLPayload {
		return 0, nil, fmt.Errorf("%w: negotiation frame of %d bytes", errSASLProtocol, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0], payload, nil
}

// saslPlainHandshake runs the client side of Thrift SASL negotiation with
// mechanism PLAIN: START "PLAIN", then OK with the initial response
// "\x00user\x00password" (authzid empty), then the server's COMPLETE.
func saslPlainHandshake(w io.Writer, r io.Reader, server, user, password string) error {
	if err := writeSASLFrame(w, saslStart, []byte("PLAIN")); err != nil {
		return err
	}
	resp := make([]byte, 0, 2+len(user)+len(password))
	resp = append(resp, 0)
	resp = append(resp, user...)
	resp = append(resp, 0)
	resp = append(resp, password...)
	if err := writeSASLFrame(w, saslOK, resp); err != nil {
		return err
	}
	status, payload, err := readSASLFrame(r)
	if err != nil {
		return err
	}
	switch status {
	case saslComplete:
		return nil
	case saslBad:
		// HS2 answers BAD when the authenticator rejects the login.
		return &AuthError{Server: server, Message: string(payload)}
	case saslError:
		return fmt.Errorf("sasl: server error: %s", payload)
	case saslOK:
		return fmt.Errorf("%w: unexpected challenge after PLAIN response", errSASLProtocol)
	default:
		return fmt.Errorf("%w: status %d", errSASLProtocol, status)
	}
}

// saslTransport carries Thrift messages after a PLAIN negotiation: every
// message goes out as one frame, a 4-byte big-endian length and the bytes
// (no QOP wrapping: PLAIN negotiates auth only). Reads stream frame by
// frame without buffering a whole frame.
type saslTransport struct {
	conn net.Conn
	r    *bufio.Reader
	wbuf bytes.Buffer // the frame being built; first 4 bytes are its header
	left uint32       // bytes left in the frame being read
}

func newSASLTransport(conn net.Conn) *saslTransport {
	t := &saslTransport{conn: conn, r: bufio.NewReaderSize(conn, ioBufSize)}
	t.wbuf.Grow(ioBufSize)
	t.wbuf.Write(make([]byte, 4))
	return t
}

func (t *saslTransport) Open() error                    { return nil }
func (t *saslTransport) IsOpen() bool                   { return true }
func (t *saslTransport) Close() error                   { return t.conn.Close() }
func (t *saslTransport) RemainingBytes() uint64         { return math.MaxUint64 } // a message may span frames
func (t *saslTransport) arm(ctx context.Context) func() { return armConn(ctx, t.conn) }
func (t *saslTransport) survivesFailure() bool          { return false }

// nextFrame makes sure the current read frame has bytes left.
func (t *saslTransport) nextFrame() error {
	for t.left == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(t.r, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > math.MaxInt32 {
			return fmt.Errorf("sasl: frame length %d out of range", n)
		}
		t.left = n
	}
	return nil
}

func (t *saslTransport) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := t.nextFrame(); err != nil {
		return 0, err
	}
	if uint32(len(p)) > t.left {
		p = p[:t.left]
	}
	n, err := t.r.Read(p)
	t.left -= uint32(n)
	return n, err
}

func (t *saslTransport) ReadByte() (byte, error) {
	if err := t.nextFrame(); err != nil {
		return 0, err
	}
	b, err := t.r.ReadByte()
	if err == nil {
		t.left--
	}
	return b, err
}

func (t *saslTransport) Write(p []byte) (int, error)       { return t.wbuf.Write(p) }
func (t *saslTransport) WriteByte(b byte) error            { return t.wbuf.WriteByte(b) }
func (t *saslTransport) WriteString(s string) (int, error) { return t.wbuf.WriteString(s) }

func (t *saslTransport) Flush(context.Context) error {
	b := t.wbuf.Bytes()
	if len(b) == 4 {
		return nil
	}
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-4))
	_, err := t.conn.Write(b)
	t.wbuf.Truncate(4)
	return err
}
