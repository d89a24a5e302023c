package service

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/batchtest"
	"github.com/hiveqd/hiveqd/internal/memview"
	"github.com/hiveqd/hiveqd/query"
)

// randomBatch has every column kind, NULL bitmaps or none, and values
// that hit every varint length, negative int32s and empty strings.
func randomBatch(r *rand.Rand, rows int) *hs2.Batch {
	b := &hs2.Batch{StartRow: r.Int64N(1 << 40), Rows: rows}
	ints := []int64{0, 1, 127, 128, 16383, 16384, -1, math.MinInt64, math.MaxInt64, math.MinInt32, math.MaxInt32}
	for k := hs2.KindBool; k <= hs2.KindBytes; k++ {
		v := hs2.Vector{Kind: k}
		var strs []string
		var bins [][]byte
		if r.IntN(2) == 0 && rows > 0 {
			v.Nulls = make([]byte, (rows+7)/8)
			for i := range v.Nulls {
				v.Nulls[i] = byte(r.IntN(256))
			}
		}
		for range rows {
			x := ints[r.IntN(len(ints))]
			if r.IntN(2) == 0 {
				x = r.Int64() >> r.IntN(64)
			}
			switch k {
			case hs2.KindBool:
				v.Bools = append(v.Bools, r.IntN(2) == 0)
			case hs2.KindInt32:
				v.Int32s = append(v.Int32s, int32(x))
			case hs2.KindInt64:
				v.Int64s = append(v.Int64s, x)
			case hs2.KindDouble:
				v.Doubles = append(v.Doubles, r.NormFloat64()*1e6)
			case hs2.KindString:
				strs = append(strs, strings.Repeat("é", r.IntN(3))+strings.Repeat("x", r.IntN(200)))
			case hs2.KindBytes:
				bins = append(bins, bytes.Repeat([]byte{0xff}, r.IntN(300)))
			}
		}
		switch k {
		case hs2.KindString:
			v = hs2.StringVector(strs, v.Nulls)
		case hs2.KindBytes:
			v = hs2.BytesVector(bins, v.Nulls)
		}
		b.Columns = append(b.Columns, v)
	}
	return b
}

// sliceRows is rows [i, j) of b sharing its buffers, as the engine slices
// a batch: variable-width offsets then start past 0.
func sliceRows(b *hs2.Batch, i, j int) *hs2.Batch {
	out := &hs2.Batch{StartRow: b.StartRow + int64(i), Rows: j - i}
	for _, v := range b.Columns {
		w := hs2.Vector{Kind: v.Kind}
		if i%8 == 0 && len(v.Nulls) > 0 {
			w.Nulls = v.Nulls[i/8 : (j+7)/8]
		}
		switch v.Kind {
		case hs2.KindBool:
			w.Bools = v.Bools[i:j]
		case hs2.KindInt32:
			w.Int32s = v.Int32s[i:j]
		case hs2.KindInt64:
			w.Int64s = v.Int64s[i:j]
		case hs2.KindDouble:
			w.Doubles = v.Doubles[i:j]
		case hs2.KindString, hs2.KindBytes:
			w.Data, w.Offsets = v.Data, v.Offsets[i:j+1]
		}
		out.Columns = append(out.Columns, w)
	}
	return out
}

// TestMarshalBatchMatchesProto: the hand encoder writes exactly what
// protobuf-go writes, in both layouts, and a protobuf decoder reads it
// back.
func TestMarshalBatchMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []*hs2.Batch{
		{}, // no columns, zero rows
		{StartRow: 0, Rows: 0, Columns: []hs2.Vector{{Kind: hs2.KindInt64}, {Kind: hs2.KindString}, {Kind: hs2.KindBool}}},
		{Rows: 1, Columns: []hs2.Vector{hs2.StringVector([]string{""}, nil)}},
		{Rows: 2, Columns: []hs2.Vector{{Kind: 0}}}, // unknown kind: no values field
	}
	for _, rows := range []int{1, 7, 8, 9, 100, 1000, 10000} {
		cases = append(cases, randomBatch(r, rows))
	}
	wide := randomBatch(r, 3)
	for range 20 {
		wide.Columns = append(wide.Columns, wide.Columns...)
		if len(wide.Columns) > 40 {
			break
		}
	}
	cases = append(cases, wide, sliceRows(randomBatch(r, 100), 16, 57), sliceRows(randomBatch(r, 100), 3, 4),
		sliceRows(randomBatch(r, 5000), 1000, 4000), sliceRows(randomBatch(r, 5000), 0, 3000))
	for _, compact := range []bool{false, true} {
		for i, b := range cases {
			m := &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Batch{Batch: toBatch(b, compact)}}
			if !compact && !proto.Equal(m, toResponse(queryBatchEvent(b))) {
				t.Fatalf("case %d: toBatch differs from toResponse", i)
			}
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			data, err := newLenientCodec().Marshal(&batchMsg{b: b, compact: compact})
			if err != nil {
				t.Fatal(err)
			}
			got := data.Materialize()
			data.Free()
			if !bytes.Equal(got, want) {
				t.Fatalf("compact %v case %d (%d rows, %d columns): hand encoding differs from protobuf's (%d vs %d bytes)", compact, i, b.Rows, len(b.Columns), len(got), len(want))
			}
			var back hiveqv1.ExecuteResponse
			if err := proto.Unmarshal(got, &back); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			if !proto.Equal(&back, m) {
				t.Fatalf("case %d: decoded message differs", i)
			}
			if compact {
				checkCompact(t, b, back.GetBatch())
			}
		}
	}
}

// The compact layout sends the batch's large arrays from the batch's own
// memory (no copy into the message), the small parts copied; the bytes are
// protobuf's all the same (TestMarshalBatchMatchesProto), and after a
// batch is marshalled again and again, each message still reads the same.
func TestMarshalBatchCompactSharesBatchMemory(t *testing.T) {
	b := randomBatch(rand.New(rand.NewPCG(3, 4)), 10000)
	data, err := newLenientCodec().Marshal(&batchMsg{b: b, compact: true})
	if err != nil {
		t.Fatal(err)
	}
	if !nativeLE {
		t.Skip("big-endian host: the compact layout is copied")
	}
	aliases := func(p []byte) bool {
		for _, buf := range data {
			d := buf.ReadOnlyData()
			if len(d) > 0 && len(p) > 0 && &d[0] == &p[0] && len(d) == len(p) {
				return true
			}
		}
		return false
	}
	for i := range b.Columns {
		v := &b.Columns[i]
		var arr []byte
		switch v.Kind {
		case hs2.KindInt64:
			arr = memview.Bytes(v.Int64s)
		case hs2.KindInt32:
			arr = memview.Bytes(v.Int32s)
		case hs2.KindDouble:
			arr = memview.Bytes(v.Doubles)
		case hs2.KindBool:
			arr = memview.Bytes(v.Bools)
		case hs2.KindString, hs2.KindBytes:
			arr = varData(v)
			if !aliases(memview.Bytes(v.Offsets)) {
				t.Errorf("column %d (kind %d): offsets copied, want shared", i, v.Kind)
			}
		}
		if len(arr) >= refMin && !aliases(arr) {
			t.Errorf("column %d (kind %d): %d bytes copied, want shared", i, v.Kind, len(arr))
		}
	}
	first := data.Materialize()
	data.Free()
	for range 3 {
		again, err := newLenientCodec().Marshal(&batchMsg{b: b, compact: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := again.Materialize(); !bytes.Equal(got, first) {
			t.Fatal("the same batch marshalled twice differs")
		}
		again.Free()
	}
}

// checkCompact decodes a compact batch as a client in another language
// would (buffers and offsets) and compares every value with b's.
func checkCompact(t *testing.T, b *hs2.Batch, rb *hiveqv1.RowBatch) {
	t.Helper()
	for c, cv := range rb.GetColumns() {
		v := &b.Columns[c]
		for i := range b.Rows {
			var got, want any
			switch v.Kind {
			case hs2.KindInt32:
				got, want = cv.GetFixed32Values().GetValues()[i], v.Int32s[i]
			case hs2.KindInt64:
				got, want = cv.GetFixed64Values().GetValues()[i], v.Int64s[i]
			case hs2.KindString, hs2.KindBytes:
				buf := cv.GetStringBuffer()
				if v.Kind == hs2.KindBytes {
					buf = cv.GetBytesBuffer()
				}
				o := buf.GetOffsets()
				if len(o) != b.Rows+1 || o[0] != 0 || int(o[b.Rows]) != len(buf.GetData()) {
					t.Fatalf("column %d: offsets %d..%d (%d), data %d", c, o[0], o[len(o)-1], len(o), len(buf.GetData()))
				}
				got, want = string(buf.GetData()[o[i]:o[i+1]]), v.Str(i)
			default:
				continue
			}
			if got != want {
				t.Fatalf("column %d row %d = %v, want %v", c, i, got, want)
			}
		}
	}
}

// Invalid UTF-8 goes out as U+FFFD, as validStrings makes it; the proto
// view of the message (for other codecs) says the same.
func TestMarshalBatchInvalidUTF8(t *testing.T) {
	long := strings.Repeat("y", 300) // a length prefix that is not UTF-8 by itself
	b := &hs2.Batch{Rows: 4, Columns: []hs2.Vector{hs2.StringVector([]string{"ok", "bad\xff", long, "é"}, nil)}}
	data, err := newLenientCodec().Marshal(&batchMsg{b: b})
	if err != nil {
		t.Fatal(err)
	}
	var back hiveqv1.ExecuteResponse
	if err := proto.Unmarshal(data.Materialize(), &back); err != nil {
		t.Fatal(err)
	}
	want := []string{"ok", "bad\uFFFD", long, "é"}
	if got := back.GetBatch().GetColumns()[0].GetStringValues().GetValues(); !slices.Equal(got, want) {
		t.Fatalf("strings %q, want %q", got, want)
	}
	if b.Columns[0].Str(1) != "bad\xff" {
		t.Fatal("the batch itself was changed")
	}
	viaProto, err := proto.Marshal(&batchMsg{b: b})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(viaProto, data.Materialize()) {
		t.Fatal("the proto view encodes differently")
	}
	// The compact layout's buffer is repaired alike.
	data, _ = newLenientCodec().Marshal(&batchMsg{b: b, compact: true})
	if err := proto.Unmarshal(data.Materialize(), &back); err != nil {
		t.Fatal(err)
	}
	buf := back.GetBatch().GetColumns()[0].GetStringBuffer()
	if got := string(buf.GetData()); got != strings.Join(want, "") || len(buf.GetOffsets()) != 5 || buf.GetOffsets()[2] != uint32(len("okbad\uFFFD")) {
		t.Fatalf("compact: %q %v", got, buf.GetOffsets())
	}
	// Valid long strings pass the per-string check.
	b.Columns[0] = hs2.StringVector([]string{"ok", "fine", long, "é"}, nil)
	data, _ = newLenientCodec().Marshal(&batchMsg{b: b})
	if err := proto.Unmarshal(data.Materialize(), &back); err != nil || back.GetBatch().GetColumns()[0].GetStringValues().GetValues()[2] != long {
		t.Fatalf("long string: %v", err)
	}
}

// Other messages still take the protobuf path.
func TestCodecMarshalOthers(t *testing.T) {
	m := &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Status{Status: &hiveqv1.QueryStatus{QueryId: "q", Rows: 3}}}
	data, err := newLenientCodec().Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(m)
	if got := data.Materialize(); !bytes.Equal(got, want) {
		t.Fatalf("status encoding differs")
	}
}

// BenchmarkMarshalBatch encodes a batch shaped like synth.rows_N (bigint,
// int, double, short string, boolean; NULLs in four of them) by hand and
// the way it was before: toBatch (validStrings) and protobuf-go.
//
//	go test -run '^$' -bench MarshalBatch ./service
func BenchmarkMarshalBatch(b *testing.B) {
	const rows = 10000
	batch := batchtest.Synth(rows)
	codec := newLenientCodec()
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			data, _ := codec.Marshal(&batchMsg{b: batch})
			data.Free()
		}
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("compact", func(b *testing.B) {
		for b.Loop() {
			data, _ := codec.Marshal(&batchMsg{b: batch, compact: true})
			data.Free()
		}
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("proto", func(b *testing.B) {
		for b.Loop() {
			data, _ := codec.Marshal(toResponse(queryBatchEvent(batch)))
			data.Free()
		}
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	})
}

func queryBatchEvent(b *hs2.Batch) query.Event { return query.Event{Kind: query.EventBatch, Batch: b} }

// BenchmarkClientDecode is a Go client's cost to decode one batch event
// (the synth.rows_N shape, 10000 rows) with the generated code, in the
// original and the compact layout:
//
//	go test -run '^$' -bench ClientDecode -count 6 ./service > d.txt
//	benchstat -col /layout d.txt
func BenchmarkClientDecode(b *testing.B) {
	const rows = 10000
	var id []int64
	var i32 []int32
	var d []float64
	var bl []bool
	var strs []string
	for r := range rows {
		id = append(id, int64(r))
		i32 = append(i32, int32(r%1000))
		d = append(d, float64(r)/3)
		bl = append(bl, r%3 == 0)
		strs = append(strs, fmt.Sprintf("s-%d", r))
	}
	batch := &hs2.Batch{StartRow: 123456, Rows: rows, Columns: []hs2.Vector{
		{Kind: hs2.KindInt64, Int64s: id}, {Kind: hs2.KindInt32, Int32s: i32}, {Kind: hs2.KindDouble, Doubles: d},
		hs2.StringVector(strs, nil), {Kind: hs2.KindBool, Bools: bl},
	}}
	for _, layout := range []string{"values", "compact"} {
		data := marshalBatch(batch, layout == "compact")
		msg := data.Materialize()
		data.Free()
		b.Run("layout="+layout, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				var ev hiveqv1.ExecuteResponse
				if err := proto.Unmarshal(msg, &ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
