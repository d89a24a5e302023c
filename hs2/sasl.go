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

// saslHandshake runs the client side of Thrift SASL negotiation
// (TSaslClientTransport.open) with mech: START with the mechanism's name,
// then the initial response (COMPLETE if the mechanism is already done
// and OK otherwise, except PLAIN, sent with OK as HS2's clients do), then
// challenges and responses until the server says COMPLETE.
func saslHandshake(w io.Writer, r io.Reader, server string, mech SASLMechanism) error {
	initial, done, err := mech.Start()
	if err != nil {
		return err
	}
	if err := writeSASLFrame(w, saslStart, []byte(mech.Name())); err != nil {
		return err
	}
	status := saslOK
	if done && mech.Name() != "PLAIN" {
		status = saslComplete
	}
	if err := writeSASLFrame(w, status, initial); err != nil {
		return err
	}
	for {
		status, payload, err := readSASLFrame(r)
		if err != nil {
			return err
		}
		switch status {
		case saslOK, saslComplete:
		case saslBad:
			// HS2 answers BAD when the authenticator rejects the login.
			msg := string(payload)
			if h, ok := mech.(interface{ refusalHint() string }); ok {
				msg += h.refusalHint()
			}
			return &AuthError{Server: server, Message: msg}
		case saslError:
			return fmt.Errorf("sasl: server error: %s", payload)
		default:
			return fmt.Errorf("%w: status %d", errSASLProtocol, status)
		}
		if status == saslComplete && done {
			return nil
		}
		if status == saslComplete {
			// The server is done; the mechanism still checks its last
			// word (the JDK client evaluates it, then stops).
			if _, _, err := mech.Step(payload); err != nil {
				return err
			}
			return nil
		}
		if done {
			return fmt.Errorf("%w: unexpected challenge after the %s response", errSASLProtocol, mech.Name())
		}
		var resp []byte
		if resp, done, err = mech.Step(payload); err != nil {
			return err
		}
		next := saslOK
		if done {
			next = saslComplete
		}
		if err := writeSASLFrame(w, next, resp); err != nil {
			return err
		}
	}
}

// saslTransport carries Thrift messages after SASL negotiation: every
// message goes out as one frame, a 4-byte big-endian length and the bytes.
// Without a security layer (QOP auth) reads stream frame by frame without
// buffering a whole frame; with one (auth-int, auth-conf) each frame's
// payload is one wrapped token, unwrapped whole.
type saslTransport struct {
	conn net.Conn
	r    *bufio.Reader
	wbuf bytes.Buffer // the frame being built; first 4 bytes are its header
	left uint32       // bytes left in the frame being read (no layer)

	sec   SecurityLayer // nil: no security layer
	plain bytes.Reader  // the unwrapped frame being read (with a layer)

	// corked: Flush queues finished frames in out instead of writing
	// them; uncork writes them all at once (pipeline.go).
	corked bool
	out    []byte
}

// maxWrappedFrame bounds a wrapped frame: a whole Thrift message plus the
// token's overhead.
const maxWrappedFrame = maxMessageSize + 1<<10

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

// nextWrapped reads and unwraps frames until one has bytes.
func (t *saslTransport) nextWrapped() error {
	for t.plain.Len() == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(t.r, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxWrappedFrame {
			return fmt.Errorf("sasl: wrapped frame of %d bytes exceeds %d", n, maxWrappedFrame)
		}
		tok := make([]byte, n)
		if _, err := io.ReadFull(t.r, tok); err != nil {
			return err
		}
		p, err := t.sec.Unwrap(tok)
		if err != nil {
			return fmt.Errorf("sasl: unwrap frame: %w", err)
		}
		t.plain.Reset(p)
	}
	return nil
}

func (t *saslTransport) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if t.sec != nil {
		if err := t.nextWrapped(); err != nil {
			return 0, err
		}
		return t.plain.Read(p)
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
	if t.sec != nil {
		if err := t.nextWrapped(); err != nil {
			return 0, err
		}
		return t.plain.ReadByte()
	}
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
	if t.sec != nil {
		return t.flushWrapped(b[4:])
	}
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-4))
	if t.corked {
		t.out = append(t.out, b...)
		t.wbuf.Truncate(4)
		return nil
	}
	_, err := t.conn.Write(b)
	t.wbuf.Truncate(4)
	return err
}

// cork makes Flush queue whole frames (each message stays its own frame,
// as HS2's TSaslServerTransport expects) until uncork writes them with one
// write.
func (t *saslTransport) cork() { t.corked = true }

func (t *saslTransport) uncork() error {
	t.corked = false
	if len(t.out) == 0 {
		return nil
	}
	_, err := t.conn.Write(t.out)
	t.out = t.out[:0]
	return err
}

// flushWrapped sends the message as one wrapped token, as Thrift's
// TSaslTransport.flush does.
func (t *saslTransport) flushWrapped(msg []byte) error {
	defer t.wbuf.Truncate(4)
	tok, err := t.sec.Wrap(msg)
	if err != nil {
		return fmt.Errorf("sasl: wrap frame: %w", err)
	}
	frame := make([]byte, 4+len(tok))
	binary.BigEndian.PutUint32(frame, uint32(len(tok)))
	copy(frame[4:], tok)
	if t.corked {
		t.out = append(t.out, frame...)
		return nil
	}
	_, err = t.conn.Write(frame)
	return err
}
