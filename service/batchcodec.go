package service

import (
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/memview"
)

// Batches are nearly all of what hiveqd sends. Built as protobuf messages
// (toBatch) and marshalled by protobuf-go, each value went through the
// generic field tables and each string was checked for UTF-8 twice (once by
// validStrings, once by the marshaller); the profile of an unpaced stream
// had that at a seventh of hiveqd's CPU. The codec now writes a batch event
// straight from the hs2.Batch: the same bytes protobuf-go writes (field
// order and packing of its deterministic output; the tests compare them
// byte for byte), in two tight passes (sizes, then data), into reused
// buffers, checking UTF-8 once over each string column's encoded bytes.
//
// A client that asks for BATCH_LAYOUT_COMPACT gets integers as fixed-width
// little-endian arrays and each string or bytes column as one buffer plus
// offsets: on a little-endian host every column but booleans and
// variable-width offsets that do not start at 0 is one memmove from the
// batch hs2 decoded, and a client decodes a column with two allocations.

// batchMsg is a batch event on its way to the codec. It is also a
// proto.Message (ProtoReflect builds the ordinary message, strings made
// valid), so a server without this package's codec still sends it right.
type batchMsg struct {
	b       *hs2.Batch
	compact bool // BATCH_LAYOUT_COMPACT
	once    sync.Once
	proto   *hiveqv1.ExecuteResponse
}

func (m *batchMsg) ProtoReflect() protoreflect.Message {
	m.once.Do(func() {
		m.proto = &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Batch{Batch: toBatch(m.b, m.compact)}}
	})
	return m.proto.ProtoReflect()
}

// Wire tags (field number << 3 | wire type) of the messages written here.
const (
	tagResponseBatch = 3<<3 | 2 // ExecuteResponse.batch
	tagStartRow      = 1<<3 | 0 // RowBatch.start_row
	tagRowCount      = 2<<3 | 0 // RowBatch.row_count
	tagColumn        = 3<<3 | 2 // RowBatch.columns
	tagNulls         = 1<<3 | 2 // ColumnVector.nulls
	tagValues        = 1<<3 | 2 // XxxValues.values: packed, or one string
	tagData          = 1<<3 | 2 // BufferValues.data
	tagOffsets       = 2<<3 | 2 // BufferValues.offsets (packed)
)

// valuesTag is the ColumnVector oneof field (bool_values = 2 ...
// bytes_values = 7; compact: fixed32_values = 8 ... bytes_buffer = 11) of a
// kind; 0 for a kind without one.
func valuesTag(k hs2.Kind, compact bool) byte {
	if k < hs2.KindBool || k > hs2.KindBytes {
		return 0
	}
	if compact && k != hs2.KindBool && k != hs2.KindDouble {
		return compactFields[k]<<3 | 2
	}
	return byte(k+1)<<3 | 2
}

var compactFields = [...]byte{hs2.KindInt32: 8, hs2.KindInt64: 9, hs2.KindString: 10, hs2.KindBytes: 11}

// nativeLE: the host stores integers little-endian, as protobuf's fixed
// types are, so fixed-width columns are copied as memory.
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// varData is a string or bytes column's values, end to end.
func varData(v *hs2.Vector) []byte {
	if len(v.Offsets) == 0 {
		return nil
	}
	return v.Data[v.Offsets[0]:v.Offsets[len(v.Offsets)-1]]
}

// colSize is one column's sizes from the first pass.
type colSize struct {
	payload int // packed values, or all string/bytes elements
	values  int // the XxxValues message
	msg     int // the ColumnVector message
}

// lenField is the size of a length-delimited field with a 1-byte tag.
func lenField(n int) int { return 1 + protowire.SizeBytes(n) }

func sizeColumn(v *hs2.Vector, compact bool) colSize {
	var cs colSize
	switch v.Kind {
	case hs2.KindBool:
		cs.payload = len(v.Bools)
	case hs2.KindInt32:
		if compact {
			cs.payload = 4 * len(v.Int32s)
			break
		}
		for _, x := range v.Int32s {
			cs.payload += protowire.SizeVarint(uint64(int64(x)))
		}
	case hs2.KindInt64:
		if compact {
			cs.payload = 8 * len(v.Int64s)
			break
		}
		for _, x := range v.Int64s {
			cs.payload += protowire.SizeVarint(uint64(x))
		}
	case hs2.KindDouble:
		cs.payload = 8 * len(v.Doubles)
	case hs2.KindString, hs2.KindBytes:
		n := v.Len()
		if compact {
			cs.payload = len(varData(v))
			break
		}
		// Each value: tag, length varint, bytes.
		cs.payload = n + v.ValueBytes()
		for i := range n {
			cs.payload += protowire.SizeVarint(uint64(v.Offsets[i+1] - v.Offsets[i]))
		}
	}
	switch {
	case (v.Kind == hs2.KindString || v.Kind == hs2.KindBytes) && compact:
		// BufferValues: data (omitted when empty), then n+1 offsets.
		if cs.payload > 0 {
			cs.values = lenField(cs.payload)
		}
		cs.values += lenField(4 * (v.Len() + 1))
	case v.Kind == hs2.KindString || v.Kind == hs2.KindBytes:
		cs.values = cs.payload // repeated elements, each its own field
	case cs.payload > 0:
		cs.values = lenField(cs.payload) // one packed field
	}
	if len(v.Nulls) > 0 {
		cs.msg = lenField(len(v.Nulls))
	}
	if valuesTag(v.Kind, compact) != 0 {
		cs.msg += lenField(cs.values)
	}
	return cs
}

var errInvalidUTF8 = errors.New("invalid UTF-8")

// marshalBatch encodes b as an ExecuteResponse batch event in the old or
// the compact layout. Strings that are not valid UTF-8 (which protobuf
// forbids, and the compact layout promises) go out with U+FFFD, as
// validStrings makes them.
func marshalBatch(b *hs2.Batch, compact bool) mem.BufferSlice {
	data, err := encodeBatch(b, compact, true)
	if err == nil {
		return data
	}
	// Rare (HS2 sends Java strings, always valid): encode a repaired copy.
	data, _ = encodeBatch(validBatch(b), compact, false)
	return data
}

// validBatch is b with every string column made valid UTF-8 (copies).
func validBatch(b *hs2.Batch) *hs2.Batch {
	fixed := *b
	fixed.Columns = append([]hs2.Vector(nil), b.Columns...)
	for i := range fixed.Columns {
		if v := &fixed.Columns[i]; v.Kind == hs2.KindString && !utf8.Valid(varData(v)) {
			w := hs2.StringVector(validStrings(v.Strings()), v.Nulls)
			*v = w
		}
	}
	return &fixed
}

// encodeBatch writes b as one message; with check it fails with
// errInvalidUTF8 when a string is not valid UTF-8.
//
// The values layout is written into a pooled buffer. The compact layout on
// a little-endian host is not copied at all where it need not be: the
// message is a mem.BufferSlice of the small parts written here (tags,
// lengths, rebased offsets) and, between them, the batch's own arrays
// (fixed-width values, string data, offsets, bitmaps) as SliceBuffers,
// which gRPC's writer copies straight into its frames. That is safe
// because a batch is never written to once hs2 has returned it (hs2 never
// reuses a batch's buffers; query's slices share them read-only) and a
// SliceBuffer keeps the memory alive until gRPC has written it; the
// written parts are a fresh buffer, not a pooled one, so nothing is handed
// back early either.
func encodeBatch(b *hs2.Batch, compact, check bool) (mem.BufferSlice, error) {
	var small [16]colSize
	sizes := small[:0]
	if len(b.Columns) > len(small) {
		sizes = make([]colSize, 0, len(b.Columns))
	}
	rows := int64(int32(b.Rows)) // RowBatch.row_count is an int32
	body := headerSize(b)
	refs := compact && nativeLE
	shared := 0 // bytes likely sent from the batch's memory (a size hint)
	for i := range b.Columns {
		cs := sizeColumn(&b.Columns[i], compact)
		sizes = append(sizes, cs)
		body += lenField(cs.msg)
		if refs {
			shared += sharedBytes(&b.Columns[i], cs.payload)
		}
	}
	total := lenField(body)

	var w msgWriter
	var buf *[]byte
	if refs {
		w.out = make([]byte, 0, max(total-shared, 0)+64*len(b.Columns)+16)
		w.bufs = make(mem.BufferSlice, 0, 4*len(b.Columns)+1)
		w.refs = true
	} else {
		buf = batchBuffers.Get(total)
		w.out = (*buf)[:0]
	}
	w.out = append(w.out, tagResponseBatch)
	w.out = protowire.AppendVarint(w.out, uint64(body))
	if b.StartRow != 0 {
		w.out = append(w.out, tagStartRow)
		w.out = protowire.AppendVarint(w.out, uint64(b.StartRow))
	}
	if rows != 0 {
		w.out = append(w.out, tagRowCount)
		w.out = protowire.AppendVarint(w.out, uint64(rows))
	}
	for i := range b.Columns {
		v, cs := &b.Columns[i], &sizes[i]
		w.out = append(w.out, tagColumn)
		w.out = protowire.AppendVarint(w.out, uint64(cs.msg))
		if len(v.Nulls) > 0 {
			w.out = append(w.out, tagNulls)
			w.out = protowire.AppendVarint(w.out, uint64(len(v.Nulls)))
			w.put(v.Nulls)
		}
		tag := valuesTag(v.Kind, compact)
		if tag == 0 {
			continue
		}
		w.out = append(w.out, tag)
		w.out = protowire.AppendVarint(w.out, uint64(cs.values))
		start := len(w.out)
		if compact {
			w.compact(v, cs.payload)
		} else {
			w.out = appendValues(w.out, v, cs.payload)
		}
		if check && v.Kind == hs2.KindString && !validColumn(w.out[start:], v, compact) {
			if buf != nil {
				batchBuffers.Put(buf)
			}
			return nil, errInvalidUTF8
		}
	}
	if !refs {
		*buf = w.out
		if len(w.out) != total {
			// The two passes disagree: a bug here, and a corrupt stream if sent.
			panic("service: batch encoding size mismatch")
		}
		return mem.BufferSlice{mem.NewBuffer(buf, batchBuffers)}, nil
	}
	data := w.finish()
	if data.Len() != total {
		panic("service: batch encoding size mismatch")
	}
	return data, nil
}

// refMin is the smallest array sent from the batch's memory rather than
// copied: below it a copy is cheaper than one more buffer for gRPC's
// writer to walk.
const refMin = 1024

// msgWriter assembles a message from bytes written into out and, with
// refs, arrays referenced where they are.
type msgWriter struct {
	out  []byte
	mark int // start of the part of out not yet in bufs
	bufs mem.BufferSlice
	refs bool
}

// put adds p: a reference to it with refs when it is large, else a copy.
// out may grow past its capacity: the parts already in bufs keep the old
// array (never written again), which the garbage collector keeps alive.
func (w *msgWriter) put(p []byte) {
	if !w.refs || len(p) < refMin {
		w.out = append(w.out, p...)
		return
	}
	w.flush()
	w.bufs = append(w.bufs, mem.SliceBuffer(p[:len(p):len(p)]))
}

// flush moves the written bytes not yet in bufs into bufs.
func (w *msgWriter) flush() {
	if len(w.out) > w.mark {
		w.bufs = append(w.bufs, mem.SliceBuffer(w.out[w.mark:len(w.out):len(w.out)]))
		w.mark = len(w.out)
	}
}

func (w *msgWriter) finish() mem.BufferSlice {
	w.flush()
	return w.bufs
}

// sharedBytes is what compact and the NULL bitmap send of v's own memory
// (by reference), the rest being copied into the message's buffer: the
// parts of refMin bytes or more, and the offsets only when they start at 0.
func sharedBytes(v *hs2.Vector, payload int) int {
	n := refSize(payload) + refSize(len(v.Nulls))
	if (v.Kind == hs2.KindString || v.Kind == hs2.KindBytes) && len(v.Offsets) > 0 && v.Offsets[0] == 0 {
		n += refSize(4 * (v.Len() + 1))
	}
	return n
}

// refSize is n if put sends n bytes by reference, else 0.
func refSize(n int) int {
	if n < refMin {
		return 0
	}
	return n
}

// compact writes the compact layout's values message: packed fixed-width
// integers, or a BufferValues.
func (w *msgWriter) compact(v *hs2.Vector, payload int) {
	if !nativeLE {
		w.out = appendCompact(w.out, v, payload)
		return
	}
	switch v.Kind {
	case hs2.KindString, hs2.KindBytes:
		if payload > 0 {
			w.out = append(w.out, tagData)
			w.out = protowire.AppendVarint(w.out, uint64(payload))
			w.put(varData(v))
		}
		w.out = append(w.out, tagOffsets)
		w.out = protowire.AppendVarint(w.out, uint64(4*(v.Len()+1)))
		if len(v.Offsets) > 0 && v.Offsets[0] == 0 {
			w.put(memview.Bytes(v.Offsets[:v.Len()+1]))
			return
		}
		w.out = appendOffsets(w.out, v.Offsets, v.Len())
		return
	}
	if payload == 0 {
		return
	}
	w.out = append(w.out, tagValues)
	w.out = protowire.AppendVarint(w.out, uint64(payload))
	switch v.Kind {
	case hs2.KindBool:
		w.put(memview.Bytes(v.Bools))
	case hs2.KindInt32:
		w.put(memview.Bytes(v.Int32s))
	case hs2.KindInt64:
		w.put(memview.Bytes(v.Int64s))
	case hs2.KindDouble:
		w.put(memview.Bytes(v.Doubles))
	}
}

// validColumn reports whether every string is valid UTF-8. In the compact
// layout that is one check of the data buffer. In the old one enc is the
// column's encoded elements: tags (ASCII) and lengths (ASCII below 128)
// around the strings' bytes, so one pass over it answers for the usual
// short strings at memory speed; only if it fails are strings checked one
// by one (a long string's length prefix is not UTF-8 by itself).
func validColumn(enc []byte, v *hs2.Vector, compact bool) bool {
	if compact {
		return utf8.Valid(varData(v))
	}
	if utf8.Valid(enc) {
		return true
	}
	for i := range v.Len() {
		if !utf8.Valid(v.At(i)) {
			return false
		}
	}
	return true
}

// appendValues writes the XxxValues message's content (the old layout).
func appendValues(b []byte, v *hs2.Vector, payload int) []byte {
	switch v.Kind {
	case hs2.KindString, hs2.KindBytes:
		offs := v.Offsets
		for i := 0; i+1 < len(offs); i++ {
			x := v.Data[offs[i]:offs[i+1]]
			b = append(b, tagValues)
			b = appendVarint(b, uint64(len(x)))
			b = append(b, x...)
		}
		return b
	}
	return appendScalars(b, v, payload, false)
}

// appendCompact writes the compact layout's values message: packed
// fixed-width integers, or a BufferValues.
func appendCompact(b []byte, v *hs2.Vector, payload int) []byte {
	switch v.Kind {
	case hs2.KindString, hs2.KindBytes:
		if payload > 0 {
			b = append(b, tagData)
			b = protowire.AppendVarint(b, uint64(payload))
			b = append(b, varData(v)...)
		}
		b = append(b, tagOffsets)
		b = protowire.AppendVarint(b, uint64(4*(v.Len()+1)))
		return appendOffsets(b, v.Offsets, v.Len())
	}
	return appendScalars(b, v, payload, true)
}

// appendScalars writes a bool, int or double column's packed values field,
// if it has a payload: ints as varints in the old layout, fixed-width in
// the compact one.
func appendScalars(b []byte, v *hs2.Vector, payload int, compact bool) []byte {
	if payload == 0 {
		return b
	}
	b = append(b, tagValues)
	b = protowire.AppendVarint(b, uint64(payload))
	switch v.Kind {
	case hs2.KindBool:
		// A Go bool is one byte, 0 or 1: its packed encoding exactly.
		b = append(b, memview.Bytes(v.Bools)...)
	case hs2.KindInt32:
		if compact {
			return appendFixed(b, v.Int32s)
		}
		return appendVarints(b, v.Int32s)
	case hs2.KindInt64:
		if compact {
			return appendFixed(b, v.Int64s)
		}
		return appendVarints(b, v.Int64s)
	case hs2.KindDouble:
		b = appendFixed(b, v.Doubles)
	}
	return b
}

// appendFixed writes xs little-endian: their memory on a little-endian
// host.
func appendFixed[T int32 | int64 | float64](b []byte, xs []T) []byte {
	if nativeLE {
		return append(b, memview.Bytes(xs)...)
	}
	for _, x := range xs {
		switch x := any(x).(type) {
		case int32:
			b = binary.LittleEndian.AppendUint32(b, uint32(x))
		case int64:
			b = binary.LittleEndian.AppendUint64(b, uint64(x))
		case float64:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
	}
	return b
}

// appendOffsets writes n+1 offsets rebased to start at 0 (a slice of a
// batch starts past 0) as fixed32; nil offsets (no rows) are one 0.
func appendOffsets(b []byte, offs []int32, n int) []byte {
	if len(offs) == 0 {
		return binary.LittleEndian.AppendUint32(b, 0)
	}
	if base := offs[0]; base != 0 || !nativeLE {
		for _, o := range offs[:n+1] {
			b = binary.LittleEndian.AppendUint32(b, uint32(o-base))
		}
		return b
	}
	return append(b, memview.Bytes(offs[:n+1])...)
}

// appendVarints writes xs as varints (an int32 sign-extended, as protobuf
// does) into b's spare capacity, which the size pass made large enough: no
// append bookkeeping per byte.
func appendVarints[T int32 | int64](b []byte, xs []T) []byte {
	n := len(b)
	b = b[:cap(b)]
	for _, x := range xs {
		v := uint64(int64(x))
		for v >= 0x80 {
			b[n] = byte(v) | 0x80
			v >>= 7
			n++
		}
		b[n] = byte(v)
		n++
	}
	return b[:n]
}

// appendVarint is protowire.AppendVarint with the one-byte case inlined.
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// bufferPool keeps a few encode buffers for reuse. gRPC's default pool
// zeroes every buffer it hands out and, being a sync.Pool, loses them at
// each GC, which under a stream's allocation rate is every few
// milliseconds: a fresh zeroed megabyte per batch, later returned to the
// OS. These buffers are written in full before use, so they are not
// cleared, and a small fixed number survive GCs.
type bufferPool struct {
	free chan *[]byte
}

// batchBuffers holds up to 8 buffers (a batch is ≤ max_batch_bytes, 1 MiB
// by default), shared by all streams.
var batchBuffers = &bufferPool{free: make(chan *[]byte, 8)}

func (p *bufferPool) Get(n int) *[]byte {
	select {
	case b := <-p.free:
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	default:
	}
	// Round up so that a slightly larger next batch still fits.
	b := make([]byte, n, (n+(64<<10)-1)&^((64<<10)-1))
	return &b
}

func (p *bufferPool) Put(b *[]byte) {
	if cap(*b) > 4<<20 {
		return // an outsized batch: do not pin it
	}
	select {
	case p.free <- b:
	default:
	}
}
