package hs2

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/apache/thrift/lib/go/thrift"
)

// The generated Thrift code decodes a FetchResults answer one value at a
// time: for each, TBinaryProtocol checks the context's deadline and reads
// through io.ReadFull and the transport's Read into a scratch buffer. On an
// unpaced stream that chain was the largest part of decoding, itself the
// largest part of hiveqd's CPU. fastProtocol answers the value reads from
// the transport's buffer when the bytes are already there (nearly always:
// it holds 64 KiB), and falls back to TBinaryProtocol at buffer and frame
// edges. The bytes read, and so the values, are the same.

// bufferedReader is a transport that can hand out the next n bytes of the
// message when they are buffered (nil otherwise); the slice is valid until
// the next read.
type bufferedReader interface {
	next(n int) []byte
	// window is every byte of the message buffered now (possibly none),
	// valid until the next read; consume(n) then drops its first n.
	window() []byte
	consume(n int)
}

type fastProtocol struct {
	*thrift.TBinaryProtocol
	r   bufferedReader
	cfg *thrift.TConfiguration
}

func newProtocol(tr transport, cfg *thrift.TConfiguration) thrift.TProtocol {
	p := thrift.NewTBinaryProtocolConf(tr, cfg)
	if r, ok := tr.(bufferedReader); ok {
		return &fastProtocol{TBinaryProtocol: p, r: r, cfg: cfg}
	}
	return p
}

// ReadByte is left to TBinaryProtocol (go vet reserves the name for
// io.ByteReader's signature); tinyint columns are rare.

func (p *fastProtocol) ReadBool(ctx context.Context) (bool, error) {
	if b := p.r.next(1); b != nil {
		return b[0] == 1, nil
	}
	return p.TBinaryProtocol.ReadBool(ctx)
}

func (p *fastProtocol) ReadI16(ctx context.Context) (int16, error) {
	if b := p.r.next(2); b != nil {
		return int16(binary.BigEndian.Uint16(b)), nil
	}
	return p.TBinaryProtocol.ReadI16(ctx)
}

func (p *fastProtocol) ReadI32(ctx context.Context) (int32, error) {
	if b := p.r.next(4); b != nil {
		return int32(binary.BigEndian.Uint32(b)), nil
	}
	return p.TBinaryProtocol.ReadI32(ctx)
}

func (p *fastProtocol) ReadI64(ctx context.Context) (int64, error) {
	if b := p.r.next(8); b != nil {
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return p.TBinaryProtocol.ReadI64(ctx)
}

func (p *fastProtocol) ReadDouble(ctx context.Context) (float64, error) {
	if b := p.r.next(8); b != nil {
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	}
	return p.TBinaryProtocol.ReadDouble(ctx)
}

func (p *fastProtocol) ReadString(ctx context.Context) (string, error) {
	n, err := p.size(ctx)
	if err != nil || n == 0 {
		return "", err
	}
	if b := p.r.next(n); b != nil {
		return string(b), nil
	}
	b, err := p.readN(n)
	return string(b), err
}

func (p *fastProtocol) ReadBinary(ctx context.Context) ([]byte, error) {
	n, err := p.size(ctx)
	if err != nil {
		return nil, err
	}
	if b := p.r.next(n); b != nil {
		out := make([]byte, n) // never nil, like TBinaryProtocol's
		copy(out, b)
		return out, nil
	}
	return p.readN(n)
}

// size reads a string or binary length and checks it as TBinaryProtocol
// does.
func (p *fastProtocol) size(ctx context.Context) (int, error) {
	n, err := p.ReadI32(ctx)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, thrift.NewTProtocolExceptionWithType(thrift.NEGATIVE_SIZE, fmt.Errorf("negative size: %d", n))
	}
	if n > p.cfg.GetMaxMessageSize() {
		return 0, thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT, fmt.Errorf("size exceeded max allowed: %d", n))
	}
	return int(n), nil
}

// readN reads n bytes that are not all buffered yet.
func (p *fastProtocol) readN(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(p.Transport(), b); err != nil {
		return nil, thrift.NewTProtocolException(err)
	}
	return b, nil
}

// next implements bufferedReader within the current SASL frame.
func (t *saslTransport) next(n int) []byte {
	if uint32(n) > t.left || t.r.Buffered() < n {
		return nil
	}
	b, _ := t.r.Peek(n)
	_, _ = t.r.Discard(n)
	t.left -= uint32(n)
	return b
}

func (t *rawTransport) next(n int) []byte {
	if t.r.Buffered() < n {
		return nil
	}
	b, _ := t.r.Peek(n)
	_, _ = t.r.Discard(n)
	return b
}

func (t *saslTransport) window() []byte {
	n := min(uint32(t.r.Buffered()), t.left)
	b, _ := t.r.Peek(int(n))
	return b
}

func (t *saslTransport) consume(n int) {
	_, _ = t.r.Discard(n)
	t.left -= uint32(n)
}

func (t *rawTransport) window() []byte {
	b, _ := t.r.Peek(t.r.Buffered())
	return b
}

func (t *rawTransport) consume(n int) { _, _ = t.r.Discard(n) }
