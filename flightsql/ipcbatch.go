package flightsql

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	flatbuffers "github.com/google/flatbuffers/go"
)

// arrow-go's IPC writer, for each record batch, builds the message header in a new flatbuffers
// builder grown from nothing, copies it out, collects dictionaries, compares the schema field by
// field, and retains and releases every buffer: of a 10 000-row batch's 60 allocations and 25 µs
// of CPU in BenchmarkDoGetBatch (conversion, message, codec), 26 and 10 µs. The batches convert.go
// makes are flat arrays (no offset, no children, no dictionary) whose buffers are exactly their
// values, so batchEncoder writes their RecordBatch message itself: the same flatbuffer calls in
// the same order, in one builder reused from batch to batch, and the arrays' buffers as the body.
// The bytes are arrow-go's (TestRecordWriterBytes and TestBatchEncoderConverted compare them); a
// batch it does not take (another type, a sliced array, buffers arrow-go would truncate) goes to
// arrow-go.

// Arrow's flatbuffer enum values used here (format/Message.fbs, Schema.fbs).
const (
	metadataV5          = 4        // MetadataVersion.V5
	headerRecordBatch   = 3        // MessageHeader.RecordBatch
	ipcBufferAlignment  = 64       // arrow-go sends a buffer whole up to its length padded to this
	maxZeroBitmapLength = 16 << 10 // all-NULL bitmaps of up to 128K rows
)

// zeroBitmap is the validity bitmap of a column whose every value is
// NULL: arrow-go writes zeros padded to 64 bytes rather than the bitmap.
// Also the source of the padding after each body buffer.
var zeroBitmap [maxZeroBitmapLength]byte

type fieldNode struct{ length, nulls int64 }

type bufferMeta struct{ offset, length int64 }

// batchEncoder writes record batch messages. Its scratch space is reused
// from batch to batch; a recordWriter owns one.
type batchEncoder struct {
	fb    *flatbuffers.Builder
	nodes []fieldNode
	bufs  [][]byte
	metas []bufferMeta
}

// encode returns rec as a FlightData message, or nil if it is a batch
// arrow-go's writer must write.
func (e *batchEncoder) encode(rec arrow.RecordBatch) *dataMsg {
	if rm, ok := rec.(arrow.RecordBatchWithMetadata); ok && rm.Metadata().Len() > 0 {
		return nil
	}
	e.nodes, e.bufs, e.metas = e.nodes[:0], e.bufs[:0], e.metas[:0]
	for _, col := range rec.Columns() {
		if !e.column(col) {
			return nil
		}
	}
	m := &dataMsg{rec: rec, body: make([][]byte, 0, 2*len(e.bufs))}
	var offset int64
	for _, b := range e.bufs {
		size := int64(len(b))
		pad := bitutil.CeilByte64(size) - size // each body buffer starts on a multiple of 8
		e.metas = append(e.metas, bufferMeta{offset: offset, length: size})
		offset += size + pad
		if size > 0 {
			m.body = append(m.body, b)
			if pad > 0 {
				m.body = append(m.body, zeroBitmap[:pad])
			}
		}
	}
	m.bodyLen = int(offset)
	m.header = append(m.small[:0], e.header(rec.NumRows(), offset)...)
	if m.bodyLen == 0 {
		m.rec = nil
	}
	return m
}

// padTo64 is arrow-go's limit for a buffer it sends whole.
func padTo64(n int64) int64 { return (n + ipcBufferAlignment - 1) &^ (ipcBufferAlignment - 1) }

// column adds an array's field node and buffers as arrow-go's encoder
// would (recordEncoder.visit); false if it is not one encode takes.
func (e *batchEncoder) column(arr arrow.Array) bool {
	d := arr.Data()
	if d.Offset() != 0 || len(d.Children()) != 0 { // dictionaries and nesting: the type switch below
		return false
	}
	n, nulls, bufs := d.Len(), arr.NullN(), d.Buffers()
	e.nodes = append(e.nodes, fieldNode{length: int64(n), nulls: int64(nulls)})
	switch {
	case nulls == 0:
		e.bufs = append(e.bufs, nil)
	case nulls == n:
		size := padTo64(int64(bitmapBytes(n)))
		if size > maxZeroBitmapLength {
			return false
		}
		e.bufs = append(e.bufs, zeroBitmap[:size])
	default:
		if !e.bitmap(bufs[0], n) {
			return false
		}
	}
	switch dt := arr.DataType(); dt.ID() {
	case arrow.BOOL:
		if n == 0 {
			e.bufs = append(e.bufs, nil)
			return true
		}
		return e.bitmap(bufs[1], n)
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.FLOAT32, arrow.FLOAT64,
		arrow.DATE32, arrow.TIMESTAMP, arrow.DECIMAL128:
		width := int64(dt.(arrow.FixedWidthDataType).BitWidth() / 8)
		values := bufs[1]
		if values == nil {
			e.bufs = append(e.bufs, nil)
			return true
		}
		if int64(values.Len()) > padTo64(int64(n)*width) {
			return false // arrow-go sends a slice
		}
		e.bufs = append(e.bufs, values.Bytes())
		return true
	case arrow.STRING, arrow.BINARY:
		return e.varBinary(bufs[1], bufs[2], n)
	}
	return false
}

// bitmap adds a validity or boolean bitmap of n bits, which arrow-go
// sends whole unless it is longer than n bits padded to 64 bytes.
func (e *batchEncoder) bitmap(b *memory.Buffer, n int) bool {
	if b == nil {
		e.bufs = append(e.bufs, nil)
		return true
	}
	if int64(b.Len()) > padTo64(int64(bitmapBytes(n))) {
		return false // arrow-go copies the first n bits
	}
	e.bufs = append(e.bufs, b.Bytes())
	return true
}

// varBinary adds a string or binary array's offsets and data: offsets
// starting at 0 (arrow-go rebases others), cut to n+1, and the data cut
// to the bytes they cover.
func (e *batchEncoder) varBinary(offsets, values *memory.Buffer, n int) bool {
	var offs, data []byte
	var total int
	if offsets != nil && offsets.Len() > 0 {
		offs = offsets.Bytes()
		need := 4 * (n + 1)
		if len(offs) < need {
			return false
		}
		o := arrow.Int32Traits.CastFromBytes(offs[:need])
		if o[0] != 0 {
			return false
		}
		offs, total = offs[:need], int(o[n])
	}
	if values != nil {
		data = values.Bytes()
		if len(data) > total {
			data = data[:total]
		}
	}
	e.bufs = append(e.bufs, offs, data)
	return true
}

// header builds the RecordBatch message, as arrow-go's writeRecordMessage
// does, in e's builder; the bytes are valid until the next call.
func (e *batchEncoder) header(rows, bodyLen int64) []byte {
	if e.fb == nil {
		e.fb = flatbuffers.NewBuilder(1024)
	}
	b := e.fb
	b.Reset()
	b.StartVector(16, len(e.nodes), 8) // RecordBatch.nodes: struct FieldNode
	for i := len(e.nodes) - 1; i >= 0; i-- {
		b.Prep(8, 16)
		b.PrependInt64(e.nodes[i].nulls)
		b.PrependInt64(e.nodes[i].length)
	}
	nodes := b.EndVector(len(e.nodes))
	b.StartVector(16, len(e.metas), 8) // RecordBatch.buffers: struct Buffer
	for i := len(e.metas) - 1; i >= 0; i-- {
		b.Prep(8, 16)
		b.PrependInt64(e.metas[i].length)
		b.PrependInt64(e.metas[i].offset)
	}
	buffers := b.EndVector(len(e.metas))
	b.StartObject(5) // RecordBatch
	b.PrependInt64Slot(0, rows, 0)
	b.PrependUOffsetTSlot(1, nodes, 0)
	b.PrependUOffsetTSlot(2, buffers, 0)
	batch := b.EndObject()
	b.StartObject(5) // Message
	b.PrependInt16Slot(0, metadataV5, 0)
	b.PrependByteSlot(1, headerRecordBatch, 0)
	b.PrependUOffsetTSlot(2, batch, 0)
	b.PrependInt64Slot(3, bodyLen, 0)
	b.Finish(b.EndObject())
	return b.FinishedBytes()
}
