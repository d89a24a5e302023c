package flightsql

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// DoGet's result batches are nearly all the bytes this port sends. arrow-go's
// Flight writer copies each batch's Arrow buffers into a bytes.Buffer to set
// FlightData.DataBody, and gRPC's proto codec then marshals the message into
// a buffer from gRPC's pool, which is cleared on every Get and, being a
// sync.Pool, lost at each GC: two copies of every byte and a fresh zeroed
// buffer per batch (0.42 s of CPU where this writer takes 0.12 s, over the
// same bench runs). Here each IPC message (its flatbuffer header, from
// batchEncoder or arrow-go, and its body as the Arrow buffers themselves)
// becomes a dataMsg, and Codec writes its protobuf framing (FlightData's
// data_header and data_body fields) into a small reused buffer and hands
// gRPC the Arrow buffers as the body: gRPC's transport copies them once,
// into its HTTP/2 frames. The record batch is
// retained until gRPC has written its last byte. The bytes on the wire are
// those protobuf-go writes for the same FlightData (the tests compare them).

// Codec is the Flight SQL server's gRPC codec: gRPC's proto codec, except
// that it writes DoGet's record batches itself (see dataMsg). A server
// without it still sends them right, through proto (more copies).
func Codec() encoding.CodecV2 { return flightCodec{encoding.GetCodecV2(grpcproto.Name)} }

type flightCodec struct{ encoding.CodecV2 }

func (c flightCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*dataMsg); ok {
		return m.marshal(), nil
	}
	return c.CodecV2.Marshal(v)
}

// transportOptions are the Flight SQL server's own gRPC options: its codec.
// (A write buffer larger than gRPC's 32 KiB, to write a batch in fewer
// calls, made ADBC slower and hiveqd's CPU per row higher in the bench: the
// client waits for bigger chunks instead of decoding while more arrive.)
func transportOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(Codec())}
}

// Wire tags of the FlightData fields written here.
var (
	tagDataHeader = protowire.AppendTag(nil, 2, protowire.BytesType)    // data_header
	tagDataBody   = protowire.AppendTag(nil, 1000, protowire.BytesType) // data_body
)

// dataMsg is one FlightData on its way to the codec: an IPC message's
// flatbuffer header and its body, as the pieces the IPC writer wrote (the
// Arrow buffers and their padding), not copied. rec owns the pieces (nil for
// the schema message, which has no body). It is also a proto.Message
// (ProtoReflect builds the ordinary FlightData, copying the body), so any
// codec sends it right.
type dataMsg struct {
	header  []byte
	small   [512]byte // header's storage, when it fits
	body    [][]byte
	bodyLen int
	rec     arrow.RecordBatch

	once  sync.Once
	proto *flight.FlightData
}

func (m *dataMsg) ProtoReflect() protoreflect.Message {
	m.once.Do(func() {
		body := make([]byte, 0, m.bodyLen)
		for _, p := range m.body {
			body = append(body, p...)
		}
		m.proto = &flight.FlightData{DataHeader: append([]byte(nil), m.header...), DataBody: body}
	})
	return m.proto.ProtoReflect()
}

// bigPiece: body pieces from this size on are handed to gRPC as they are;
// smaller ones (validity bitmaps of short batches, padding) are copied into
// the framing buffer, where they cost less than a reference of their own.
const bigPiece = 4 << 10

func (m *dataMsg) big(p []byte) bool {
	return len(p) >= bigPiece && !mem.IsBelowBufferPoolingThreshold(cap(p))
}

// marshal encodes m: the framing and the small pieces in one pooled buffer,
// the big pieces referenced. Each call takes a reference on m.rec, which
// the returned buffers release once gRPC has freed them all.
func (m *dataMsg) marshal() mem.BufferSlice {
	size := len(tagDataHeader) + protowire.SizeBytes(len(m.header))
	nbig := 0
	if m.bodyLen > 0 {
		size += len(tagDataBody) + protowire.SizeVarint(uint64(m.bodyLen))
		for _, p := range m.body {
			if m.big(p) {
				nbig++
			} else {
				size += len(p)
			}
		}
	}
	rel := &releaser{rec: m.rec, scratch: framePool.get(size), big: make([][]byte, 0, nbig)}
	rel.refs.Store(int32(1 + nbig))
	if m.rec != nil {
		m.rec.Retain()
	}
	buf := (*rel.scratch)[:0]
	buf = append(buf, tagDataHeader...)
	buf = protowire.AppendBytes(buf, m.header)
	if m.bodyLen == 0 {
		*rel.scratch = buf
		return mem.BufferSlice{mem.NewBuffer(rel.scratch, rel)}
	}
	buf = append(buf, tagDataBody...)
	buf = protowire.AppendVarint(buf, uint64(m.bodyLen))
	// The pieces, in order: runs of small ones as slices of the framing
	// buffer (all sharing its reference), big ones as buffers of their own.
	type span struct {
		from, to int    // in buf, when piece is nil
		piece    []byte // a big piece
	}
	var small [16]span
	spans := small[:0]
	from := 0
	for _, p := range m.body {
		if !m.big(p) {
			buf = append(buf, p...)
			continue
		}
		if len(buf) > from {
			spans = append(spans, span{from: from, to: len(buf)})
		}
		from = len(buf)
		spans = append(spans, span{piece: p})
	}
	if len(buf) > from {
		spans = append(spans, span{from: from, to: len(buf)})
	}
	*rel.scratch = buf
	root := mem.NewBuffer(rel.scratch, rel)
	out := make(mem.BufferSlice, 0, len(spans))
	for _, s := range spans {
		if s.piece == nil {
			out = append(out, root.Slice(s.from, s.to))
			continue
		}
		rel.big = append(rel.big, s.piece) // within capacity: no slice moves
		out = append(out, mem.NewBuffer(&rel.big[len(rel.big)-1], rel))
	}
	root.Free() // the slices hold it now
	return out
}

// releaser is the buffer pool of one marshalled dataMsg: gRPC puts back
// each of its buffers once written; the last one releases the record and
// returns the framing buffer.
type releaser struct {
	refs    atomic.Int32
	rec     arrow.RecordBatch
	scratch *[]byte
	big     [][]byte // the big pieces, which gRPC's buffers point to
}

func (r *releaser) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

func (r *releaser) Put(*[]byte) {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.rec != nil {
		r.rec.Release()
	}
	framePool.put(r.scratch)
}

// minFrame is the least capacity of a framing buffer: above gRPC's pooling
// threshold, so that gRPC hands each of them back (mem.NewBuffer makes a
// smaller one a plain slice, which is never returned).
const minFrame = 4 << 10

// framePool keeps framing buffers for reuse. They are written in full
// before use, so unlike gRPC's pool this one does not clear them, and a
// fixed number survive GCs.
var framePool = &bufferPool{free: make(chan *[]byte, 16)}

type bufferPool struct{ free chan *[]byte }

func (p *bufferPool) get(n int) *[]byte {
	select {
	case b := <-p.free:
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	default:
	}
	c := max(minFrame, (n+minFrame-1)&^(minFrame-1))
	for mem.IsBelowBufferPoolingThreshold(c) {
		c *= 2
	}
	b := make([]byte, n, c)
	return &b
}

func (p *bufferPool) put(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // an outsized batch of small pieces: do not pin it
	}
	select {
	case p.free <- b:
	default:
	}
}

// ipcAlloc allocates what arrow-go's IPC code makes of its own (the
// schema message; for a batch encodeBatch does not take, offsets of a
// sliced array, a truncated buffer): on the Go heap, where a buffer the
// payload released stays valid as long as gRPC still references it.
var ipcAlloc = memory.NewGoAllocator()

// recordWriter writes a DoGet's schema and record batches as FlightData
// messages on stream: the schema through arrow-go's IPC code, once; each
// batch through batchEncoder, or, for one it does not take, arrow-go's.
type recordWriter struct {
	stream  grpc.ServerStream
	schema  *arrow.Schema
	started bool
	enc     batchEncoder
}

func newRecordWriter(stream grpc.ServerStream, schema *arrow.Schema) *recordWriter {
	return &recordWriter{stream: stream, schema: schema}
}

// start sends the schema, before anything else.
func (w *recordWriter) start() error {
	if w.started {
		return nil
	}
	w.started = true
	p := ipc.GetSchemaPayload(w.schema, ipcAlloc)
	defer p.Release()
	return w.send(p, nil)
}

// write sends rec (the schema first, before the first batch). The caller
// keeps its reference to rec; the message takes its own.
func (w *recordWriter) write(rec arrow.RecordBatch) error {
	if err := w.start(); err != nil {
		return err
	}
	if s := rec.Schema(); s != w.schema && !s.Equal(w.schema) {
		return errors.New("flightsql: record batch schema differs from the stream's")
	}
	if m := w.enc.encode(rec); m != nil {
		return w.stream.SendMsg(m)
	}
	// arrow-go's payload of a batch has no dictionary messages, which the
	// converter never needs: refuse rather than send a stream no reader
	// can decode.
	for _, f := range w.schema.Fields() {
		if f.Type.ID() == arrow.DICTIONARY {
			return fmt.Errorf("flightsql: column %q is dictionary-encoded, which DoGet does not send", f.Name)
		}
	}
	p, err := ipc.GetRecordBatchPayload(rec, ipc.WithAllocator(ipcAlloc))
	if err != nil {
		return err
	}
	defer p.Release()
	return w.send(p, rec)
}

// close sends the schema if no batch was written.
func (w *recordWriter) close() error { return w.start() }

// send writes an arrow-go IPC payload as a dataMsg; rec owns its body
// (nil for the schema).
func (w *recordWriter) send(p ipc.Payload, rec arrow.RecordBatch) error {
	meta := p.Meta()
	defer meta.Release()
	m := &dataMsg{header: meta.Bytes(), rec: rec}
	// The pieces are the payload's buffers (and the IPC padding), which
	// stay valid while rec does: the collector keeps them as they are.
	if err := p.SerializeBody((*pieces)(m)); err != nil {
		return err
	}
	if m.bodyLen == 0 {
		m.rec = nil // the schema, or a batch without columns
	}
	return w.stream.SendMsg(m)
}

// pieces collects a payload's body without copying it. It is an io.Writer
// that keeps what it is given, against io.Writer's rule, for the one caller
// that allows it: Payload.SerializeBody, which writes the payload's buffers
// and a shared array of padding zeros.
type pieces dataMsg

func (m *pieces) Write(p []byte) (int, error) {
	m.body = append(m.body, p)
	m.bodyLen += len(p)
	return len(p), nil
}
