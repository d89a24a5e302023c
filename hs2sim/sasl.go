package hs2sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"
)

// SASL negotiation status bytes (TSaslTransport.NegotiationStatus).
const (
	saslStart    = 1
	saslOK       = 2
	saslBad      = 3
	saslError    = 4
	saslComplete = 5
)

// maxSASLMessage bounds a negotiation message; PLAIN needs a few bytes.
const maxSASLMessage = 64 << 10

// errAuth is a failed login (the client was sent BAD).
var errAuth = errors.New("hs2sim: authentication failed")

// saslHandshake runs the server side of Thrift's SASL negotiation for
// PLAIN and returns the authenticated user. check validates the password
// (nil accepts any, as HS2's NONE authentication does). wait blocks the
// reply while the server hangs.
func saslHandshake(r *bufio.Reader, w io.Writer, check func(user, pass string) bool, wait func() error) (string, error) {
	status, mech, err := readSASL(r)
	if err != nil {
		return "", err
	}
	if status != saslStart {
		_ = writeSASL(w, saslError, fmt.Sprintf("Expecting START status, received %d", status))
		return "", fmt.Errorf("hs2sim: sasl: expected START, got %d", status)
	}
	if string(mech) != "PLAIN" {
		_ = writeSASL(w, saslBad, "Unsupported mechanism type "+string(mech))
		return "", fmt.Errorf("hs2sim: sasl: unsupported mechanism %q", mech)
	}
	// The initial response: status OK, or COMPLETE from Java clients whose
	// SASL client is already complete after it.
	status, resp, err := readSASL(r)
	if err != nil {
		return "", err
	}
	if status != saslOK && status != saslComplete {
		_ = writeSASL(w, saslError, fmt.Sprintf("Expecting OK or COMPLETE status, received %d", status))
		return "", fmt.Errorf("hs2sim: sasl: unexpected status %d", status)
	}
	// PLAIN: [authzid] NUL authcid NUL passwd
	parts := strings.Split(string(resp), "\x00")
	if len(parts) < 2 || len(parts) > 3 {
		_ = writeSASL(w, saslBad, "Invalid message format")
		return "", errAuth
	}
	pass := parts[len(parts)-1]
	user := parts[len(parts)-2]
	if user == "" {
		_ = writeSASL(w, saslBad, "No user name provided")
		return "", errAuth
	}
	if err := wait(); err != nil {
		return "", err
	}
	if check != nil && !check(user, pass) {
		_ = writeSASL(w, saslBad, "Error validating the login")
		return "", errAuth
	}
	if err := writeSASL(w, saslComplete, ""); err != nil {
		return "", err
	}
	return user, nil
}

func readSASL(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxSASLMessage {
		return 0, nil, fmt.Errorf("hs2sim: sasl message of %d bytes", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0], payload, nil
}

func writeSASL(w io.Writer, status byte, payload string) error {
	buf := make([]byte, 5+len(payload))
	buf[0] = status
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// framedTransport is the transport after SASL negotiation (auth-only QOP):
// every Thrift message travels in frames of a 4-byte big-endian length and
// the payload. It implements TRichTransport so TBinaryProtocol writes
// straight into its buffer.
type framedTransport struct {
	sock     *thrift.TSocket // for IsOpen's connectivity check and Close
	conn     net.Conn
	r        *bufio.Reader
	frame    bytes.Buffer // unread part of the current frame
	out      []byte       // the reply being written, after 4 bytes for its length
	maxFrame uint32
	layer    *gssLayer // GSSAPI auth-int/auth-conf: every frame is a wrap token
}

var _ thrift.TRichTransport = (*framedTransport)(nil)

func (t *framedTransport) Open() error  { return nil }
func (t *framedTransport) IsOpen() bool { return t.sock.IsOpen() }
func (t *framedTransport) Close() error { return t.sock.Close() }

func (t *framedTransport) nextFrame() error {
	for t.frame.Len() == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(t.r, hdr[:]); err != nil {
			return thrift.NewTTransportExceptionFromError(err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > t.maxFrame {
			return thrift.NewTTransportException(thrift.UNKNOWN_TRANSPORT_EXCEPTION,
				fmt.Sprintf("hs2sim: frame of %d bytes exceeds the %d limit", n, t.maxFrame))
		}
		t.frame.Reset()
		// Grow as bytes arrive: a bogus length can't make us allocate it.
		if _, err := io.CopyN(&t.frame, t.r, int64(n)); err != nil {
			return thrift.NewTTransportExceptionFromError(err)
		}
		if t.layer != nil {
			msg, err := t.layer.unwrap(t.frame.Bytes())
			if err != nil {
				return thrift.NewTTransportException(thrift.UNKNOWN_TRANSPORT_EXCEPTION, "hs2sim: sasl: "+err.Error())
			}
			t.frame.Reset()
			t.frame.Write(msg)
		}
	}
	return nil
}

func (t *framedTransport) Read(p []byte) (int, error) {
	if err := t.nextFrame(); err != nil {
		return 0, err
	}
	return t.frame.Read(p)
}

func (t *framedTransport) ReadByte() (byte, error) {
	if err := t.nextFrame(); err != nil {
		return 0, err
	}
	return t.frame.ReadByte()
}

func (t *framedTransport) reserve() {
	if len(t.out) == 0 {
		t.out = append(t.out, 0, 0, 0, 0)
	}
}

func (t *framedTransport) Write(p []byte) (int, error) {
	t.reserve()
	t.out = append(t.out, p...)
	return len(p), nil
}

func (t *framedTransport) WriteByte(c byte) error {
	t.reserve()
	t.out = append(t.out, c)
	return nil
}

func (t *framedTransport) WriteString(s string) (int, error) {
	t.reserve()
	t.out = append(t.out, s...)
	return len(s), nil
}

// bulkAppend lets an encoder append straight into the frame.
func (t *framedTransport) bulkAppend(f func([]byte) []byte) {
	t.reserve()
	t.out = f(t.out)
}

// RemainingBytes lets TBinaryProtocol reject sizes larger than the frame.
func (t *framedTransport) RemainingBytes() uint64 { return uint64(t.frame.Len()) }

func (t *framedTransport) Flush(ctx context.Context) error {
	t.reserve()
	var err error
	if t.layer != nil {
		err = t.flushWrapped()
	} else {
		binary.BigEndian.PutUint32(t.out, uint32(len(t.out)-4))
		_, err = t.conn.Write(t.out)
	}
	// Keep the buffer for the next reply unless a huge one left it mostly
	// idle.
	if cap(t.out) > 32<<20 && len(t.out) < cap(t.out)/4 {
		t.out = nil
	} else {
		t.out = t.out[:0]
	}
	if err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	return nil
}

// flushWrapped sends the reply as one wrap token, as Java's
// TSaslTransport.flush does with a negotiated security layer.
func (t *framedTransport) flushWrapped() error {
	tok, err := t.layer.wrap(t.out[4:])
	if err != nil {
		return err
	}
	buf := make([]byte, 4, 4+len(tok))
	binary.BigEndian.PutUint32(buf, uint32(len(tok)))
	_, err = t.conn.Write(append(buf, tok...))
	return err
}
