package flightsql

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/hiveqd/hiveqd/hs2"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

// synthSchema is the bench's synthetic table: bigint, int, double, string,
// boolean, the last four with NULLs.
var synthSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "d", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
}, nil)

// synthRecord builds rows [start, start+n) of the synthetic table.
func synthRecord(alloc memory.Allocator, start, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(alloc, synthSchema)
	defer b.Release()
	for r := start; r < start+n; r++ {
		b.Field(0).(*array.Int64Builder).Append(int64(r))
		if r%7 == 3 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.Int32Builder).Append(int32(r%1_000_000) - 500_000)
		}
		if r%11 == 5 {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Float64Builder).Append(float64(r) * 0.25)
		}
		if r%13 == 7 {
			b.Field(3).AppendNull()
		} else {
			b.Field(3).(*array.StringBuilder).Append("s-" + strconv.Itoa(r))
		}
		if r%17 == 9 {
			b.Field(4).AppendNull()
		} else {
			b.Field(4).(*array.BooleanBuilder).Append(r%3 == 0)
		}
	}
	return b.NewRecordBatch()
}

// sinkStream is a DoGet stream that marshals each message with a codec
// and copies the bytes out, as gRPC's transport does into its frames.
type sinkStream struct {
	flight.FlightService_DoGetServer
	codec encoding.CodecV2
	out   []byte
	bytes int64
}

func (s *sinkStream) SendMsg(m any) error {
	data, err := s.codec.Marshal(m)
	if err != nil {
		return err
	}
	s.out = s.out[:0]
	for _, b := range data {
		s.out = append(s.out, b.ReadOnlyData()...)
	}
	s.bytes += int64(len(s.out))
	data.Free()
	return nil
}

func (s *sinkStream) Send(d *flight.FlightData) error { return s.SendMsg(d) }

// convertedSynth is a 10 000-row batch of the synthetic table as
// convert.go makes it from hs2's.
func convertedSynth(b *testing.B) (arrow.RecordBatch, *arrow.Schema) {
	batch, schema, cols := synthBatch(10_000)
	rec, err := record(schema, cols, batch)
	if err != nil {
		b.Fatal(err)
	}
	return rec, schema
}

// BenchmarkDoGetWriter writes a converted 10 000-row batch of the
// synthetic table as DoGet does: Arrow IPC, FlightData, the server's
// codec, and the copy into the transport.
func BenchmarkDoGetWriter(b *testing.B) {
	rec, schema := convertedSynth(b)
	defer rec.Release()
	s := &sinkStream{codec: Codec()}
	w := newRecordWriter(s, schema)
	defer w.close()
	testenv.MeasureCPU(b, func() {
		if err := w.write(rec); err != nil {
			b.Fatal(err)
		}
	})
	b.SetBytes(s.bytes / int64(b.N))
}

// BenchmarkDoGetWriterArrowGo is BenchmarkDoGetWriter through arrow-go's
// Flight writer and gRPC's proto codec (what DoGet used before).
func BenchmarkDoGetWriterArrowGo(b *testing.B) {
	rec, schema := convertedSynth(b)
	defer rec.Release()
	s := &sinkStream{codec: encoding.GetCodecV2(grpcproto.Name)}
	w := flight.NewRecordWriter(s, ipc.WithSchema(schema))
	defer w.Close()
	testenv.MeasureCPU(b, func() {
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
	})
	b.SetBytes(s.bytes / int64(b.N))
}

// recordingStream keeps every message's bytes.
type recordingStream struct {
	flight.FlightService_DoGetServer
	codec encoding.CodecV2
	msgs  [][]byte
}

func (s *recordingStream) SendMsg(m any) error {
	data, err := s.codec.Marshal(m)
	if err != nil {
		return err
	}
	s.msgs = append(s.msgs, data.Materialize())
	data.Free()
	return nil
}

func (s *recordingStream) Send(d *flight.FlightData) error { return s.SendMsg(d) }

// TestRecordWriterBytes: the messages are byte for byte those of
// arrow-go's Flight writer marshalled by protobuf-go, for batches whose
// buffers are all small, mixed, or all big, for an empty result, and
// through gRPC's plain proto codec (a server without Codec). The builders'
// batches of 10 000 rows and more have buffers longer than their values,
// which batchEncoder leaves to arrow-go: both paths are compared.
func TestRecordWriterBytes(t *testing.T) {
	for _, c := range []struct {
		name  string
		sizes []int
		codec encoding.CodecV2
	}{
		{"small", []int{1, 7, 100}, Codec()},
		{"mixed", []int{10_000, 3, 4_000, 40_000}, Codec()},
		{"empty", nil, Codec()},
		{"zero rows", []int{0}, Codec()},
		{"proto codec", []int{10_000, 5}, encoding.GetCodecV2(grpcproto.Name)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var recs []arrow.RecordBatch
			for i, n := range c.sizes {
				recs = append(recs, synthRecord(memory.DefaultAllocator, i*1000, n))
			}
			want := &recordingStream{codec: encoding.GetCodecV2(grpcproto.Name)}
			aw := flight.NewRecordWriter(want, ipc.WithSchema(synthSchema))
			got := &recordingStream{codec: c.codec}
			w := newRecordWriter(got, synthSchema)
			for _, r := range recs {
				if err := aw.Write(r); err != nil {
					t.Fatal(err)
				}
				if err := w.write(r); err != nil {
					t.Fatal(err)
				}
				r.Release()
			}
			if err := aw.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.close(); err != nil {
				t.Fatal(err)
			}
			if len(got.msgs) != len(want.msgs) || len(got.msgs) != 1+len(c.sizes) {
				t.Fatalf("%d messages, arrow-go %d, want %d", len(got.msgs), len(want.msgs), 1+len(c.sizes))
			}
			for i := range want.msgs {
				if !bytes.Equal(got.msgs[i], want.msgs[i]) {
					t.Errorf("message %d: %d bytes differ from arrow-go's %d", i, len(got.msgs[i]), len(want.msgs[i]))
				}
			}
		})
	}
}

// holdingStream keeps the marshalled buffers unfreed, as gRPC's
// transport does until it has written them.
type holdingStream struct {
	flight.FlightService_DoGetServer
	held []mem.BufferSlice
	fail error
}

func (s *holdingStream) SendMsg(m any) error {
	if s.fail != nil {
		return s.fail
	}
	data, err := Codec().Marshal(m)
	if err != nil {
		return err
	}
	s.held = append(s.held, data)
	return nil
}

// TestRecordWriterOwnership: a batch stays allocated while gRPC holds its
// message, even after the writer's caller released it, and is released
// once gRPC frees the buffers; a send that fails leaks nothing.
func TestRecordWriterOwnership(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	s := &holdingStream{}
	w := newRecordWriter(s, synthSchema)
	for i, n := range []int{10_000, 10, 5_000} {
		rec := synthRecord(alloc, i*10_000, n)
		if err := w.write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if alloc.CurrentAlloc() == 0 {
		t.Fatal("the batches were released while gRPC still held their buffers")
	}
	if len(s.held) != 4 {
		t.Fatalf("%d messages held, want 4", len(s.held))
	}
	for _, d := range s.held {
		d.Free()
	}
	if n := alloc.CurrentAlloc(); n != 0 {
		t.Fatalf("%d bytes still allocated after gRPC freed every buffer", n)
	}

	s = &holdingStream{fail: errors.New("stream gone")}
	w = newRecordWriter(s, synthSchema)
	rec := synthRecord(alloc, 0, 10_000)
	if err := w.write(rec); err == nil {
		t.Fatal("write on a failed stream succeeded")
	}
	rec.Release()
}

// everyTypeBatch is an hs2 batch of n rows with a column of every Hive type
// the converter maps to its own Arrow type, NULLs in every other row of
// each (all of them in the last column), sliced from row start as
// query.sliceBatch slices (string offsets then do not start at 0).
func everyTypeBatch(t *testing.T, start, n int) (*arrow.Schema, []column, *hs2.Batch) {
	t.Helper()
	rows := start + n
	nulls, all := make([]byte, bitmapBytes(rows)), make([]byte, bitmapBytes(rows))
	var bools []bool
	var i32s []int32
	var i64s []int64
	var f64s []float64
	var strs, decs, dates, stamps []string
	var bins [][]byte
	for r := range rows {
		if r%2 == 1 {
			nulls[r/8] |= 1 << (r % 8)
		}
		all[r/8] |= 1 << (r % 8)
		bools = append(bools, r%3 == 0)
		i32s = append(i32s, int32(r%100-50))
		i64s = append(i64s, int64(r)<<33)
		f64s = append(f64s, float64(r)/4)
		strs = append(strs, strconv.Itoa(r*r))
		decs = append(decs, strconv.Itoa(r)+".5")
		dates = append(dates, "2024-02-29")
		stamps = append(stamps, "2024-02-29 12:34:56.123456")
		bins = append(bins, []byte{byte(r), 0, byte(r >> 8)})
	}
	schema, cols := schemaOf(hs2.Schema{{Name: "b", Type: "boolean"}, {Name: "t", Type: "tinyint"}, {Name: "sm", Type: "smallint"},
		{Name: "i", Type: "int"}, {Name: "bi", Type: "bigint"}, {Name: "f", Type: "float"}, {Name: "d", Type: "double"},
		{Name: "s", Type: "string"}, {Name: "bin", Type: "binary"}, {Name: "dec", Type: "decimal(10,1)"},
		{Name: "dt", Type: "date"}, {Name: "ts", Type: "timestamp"}, {Name: "none", Type: "int"}})
	b := &hs2.Batch{Rows: rows, Columns: []hs2.Vector{
		{Kind: hs2.KindBool, Bools: bools, Nulls: nulls},
		{Kind: hs2.KindInt32, Int32s: i32s, Nulls: nulls},
		{Kind: hs2.KindInt32, Int32s: i32s, Nulls: nulls},
		{Kind: hs2.KindInt32, Int32s: i32s, Nulls: nulls},
		{Kind: hs2.KindInt64, Int64s: i64s, Nulls: nulls},
		{Kind: hs2.KindDouble, Doubles: f64s, Nulls: nulls},
		{Kind: hs2.KindDouble, Doubles: f64s, Nulls: nulls},
		hs2.StringVector(strs, nulls),
		hs2.BytesVector(bins, nulls),
		hs2.StringVector(decs, nulls),
		hs2.StringVector(dates, nulls),
		hs2.StringVector(stamps, nulls),
		{Kind: hs2.KindInt32, Int32s: i32s, Nulls: all},
	}}
	if start > 0 {
		b = sliceRows(b, start)
	}
	return schema, cols, b
}

// sliceRows drops the first start rows (a multiple of 8), sharing memory
// as query's slicing does.
func sliceRows(b *hs2.Batch, start int) *hs2.Batch {
	out := &hs2.Batch{Rows: b.Rows - start, Columns: make([]hs2.Vector, len(b.Columns))}
	for i, v := range b.Columns {
		w := v
		w.Nulls = v.Nulls[start/8:]
		switch {
		case v.Bools != nil:
			w.Bools = v.Bools[start:]
		case v.Int32s != nil:
			w.Int32s = v.Int32s[start:]
		case v.Int64s != nil:
			w.Int64s = v.Int64s[start:]
		case v.Doubles != nil:
			w.Doubles = v.Doubles[start:]
		case v.Offsets != nil:
			w.Offsets = v.Offsets[start:]
		}
		out.Columns[i] = w
	}
	return out
}

// TestBatchEncoderConverted: every batch the converter makes (each type,
// NULLs, a column all NULL, no rows, a slice) is written by batchEncoder,
// not arrow-go's fallback, with arrow-go's bytes.
func TestBatchEncoderConverted(t *testing.T) {
	for _, c := range []struct{ start, n int }{{0, 0}, {0, 1}, {0, 13}, {0, 3000}, {16, 5}, {8, 1000}} {
		t.Run(fmt.Sprintf("%d+%d", c.start, c.n), func(t *testing.T) {
			schema, cols, b := everyTypeBatch(t, c.start, c.n)
			rec, err := record(schema, cols, b)
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Release()
			var enc batchEncoder
			if enc.encode(rec) == nil {
				t.Fatal("batchEncoder did not take a converted batch")
			}
			want := &recordingStream{codec: encoding.GetCodecV2(grpcproto.Name)}
			aw := flight.NewRecordWriter(want, ipc.WithSchema(schema))
			got := &recordingStream{codec: Codec()}
			w := newRecordWriter(got, schema)
			for range 2 {
				if err := aw.Write(rec); err != nil {
					t.Fatal(err)
				}
				if err := w.write(rec); err != nil {
					t.Fatal(err)
				}
			}
			if len(got.msgs) != 3 || len(want.msgs) != 3 {
				t.Fatalf("%d messages, arrow-go %d, want 3", len(got.msgs), len(want.msgs))
			}
			for i := range want.msgs {
				if !bytes.Equal(got.msgs[i], want.msgs[i]) {
					t.Errorf("message %d: %d bytes differ from arrow-go's %d", i, len(got.msgs[i]), len(want.msgs[i]))
				}
			}
			// And arrow-go's reader reads them back as they were.
			rdr, err := flight.NewRecordReader(&replayStream{msgs: got.msgs})
			if err != nil {
				t.Fatal(err)
			}
			defer rdr.Release()
			for rdr.Next() {
				if !array.RecordEqual(rdr.RecordBatch(), rec) {
					t.Fatal("read back a different batch")
				}
			}
			if err := rdr.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// replayStream hands recorded FlightData messages to a Flight reader.
type replayStream struct{ msgs [][]byte }

func (s *replayStream) Recv() (*flight.FlightData, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	d := &flight.FlightData{}
	if err := proto.Unmarshal(s.msgs[0], d); err != nil {
		return nil, err
	}
	s.msgs = s.msgs[1:]
	return d, nil
}

// TestRecordWriterRefusesDictionaries: a dictionary-encoded batch is an
// error, not a stream without its dictionary.
func TestRecordWriterRefusesDictionaries(t *testing.T) {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt}}, nil)
	b := array.NewDictionaryBuilder(memory.DefaultAllocator, dt).(*array.BinaryDictionaryBuilder)
	defer b.Release()
	if err := b.AppendString("x"); err != nil {
		t.Fatal(err)
	}
	arr := b.NewArray()
	defer arr.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{arr}, 1)
	defer rec.Release()
	if (&batchEncoder{}).encode(rec) != nil {
		t.Fatal("batchEncoder took a dictionary column")
	}
	got := &recordingStream{codec: Codec()}
	if err := newRecordWriter(got, schema).write(rec); err == nil {
		t.Fatal("a dictionary-encoded batch was written")
	}
}
