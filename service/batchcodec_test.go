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
	"github.com/hiveqd/hiveqd/query"
)

// randomBatch has every column kind, NULL bitmaps or none, and values
// that hit every varint length, negative int32s and empty strings.
func randomBatch(r *rand.Rand, rows int) *hs2.Batch {
	b := &hs2.Batch{StartRow: r.Int64N(1 << 40), Rows: rows}
	ints := []int64{0, 1, 127, 128, 16383, 16384, -1, math.MinInt64, math.MaxInt64, math.MinInt32, math.MaxInt32}
	for k := hs2.KindBool; k <= hs2.KindBytes; k++ {
		v := hs2.Vector{Kind: k}
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
				v.Strings = append(v.Strings, strings.Repeat("é", r.IntN(3))+strings.Repeat("x", r.IntN(200)))
			case hs2.KindBytes:
				v.Bytes = append(v.Bytes, bytes.Repeat([]byte{0xff}, r.IntN(300)))
			}
		}
		b.Columns = append(b.Columns, v)
	}
	return b
}

// TestMarshalBatchMatchesProto: the hand encoder writes exactly what
// protobuf-go writes, and a protobuf decoder reads it back.
func TestMarshalBatchMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []*hs2.Batch{
		{}, // no columns, zero rows
		{StartRow: 0, Rows: 0, Columns: []hs2.Vector{{Kind: hs2.KindInt64}, {Kind: hs2.KindString}, {Kind: hs2.KindBool}}},
		{Rows: 1, Columns: []hs2.Vector{{Kind: hs2.KindString, Strings: []string{""}}}},
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
	cases = append(cases, wide)
	for i, b := range cases {
		m := toResponse(queryBatchEvent(b))
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		data, err := newLenientCodec().Marshal(&batchMsg{b: b})
		if err != nil {
			t.Fatal(err)
		}
		got := data.Materialize()
		data.Free()
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d (%d rows, %d columns): hand encoding differs from protobuf's (%d vs %d bytes)", i, b.Rows, len(b.Columns), len(got), len(want))
		}
		var back hiveqv1.ExecuteResponse
		if err := proto.Unmarshal(got, &back); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !proto.Equal(&back, m) {
			t.Fatalf("case %d: decoded message differs", i)
		}
	}
}

// Invalid UTF-8 goes out as U+FFFD, as validStrings makes it; the proto
// view of the message (for other codecs) says the same.
func TestMarshalBatchInvalidUTF8(t *testing.T) {
	long := strings.Repeat("y", 300) // a length prefix that is not UTF-8 by itself
	b := &hs2.Batch{Rows: 4, Columns: []hs2.Vector{{Kind: hs2.KindString, Strings: []string{"ok", "bad\xff", long, "é"}}}}
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
	if b.Columns[0].Strings[1] != "bad\xff" {
		t.Fatal("the batch itself was changed")
	}
	viaProto, err := proto.Marshal(&batchMsg{b: b})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(viaProto, data.Materialize()) {
		t.Fatal("the proto view encodes differently")
	}
	// Valid long strings pass the per-string check.
	b.Columns[0].Strings[1] = "fine"
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
	batch := &hs2.Batch{StartRow: 123456, Rows: rows}
	nulls := make([]byte, rows/8)
	for i := range nulls {
		nulls[i] = 0x11
	}
	id, i32, d, s, bl := hs2.Vector{Kind: hs2.KindInt64}, hs2.Vector{Kind: hs2.KindInt32, Nulls: nulls}, hs2.Vector{Kind: hs2.KindDouble, Nulls: nulls}, hs2.Vector{Kind: hs2.KindString, Nulls: nulls}, hs2.Vector{Kind: hs2.KindBool, Nulls: nulls}
	for r := range rows {
		id.Int64s = append(id.Int64s, int64(1_000_000+r))
		i32.Int32s = append(i32.Int32s, int32(r*7919%100000-50000))
		d.Doubles = append(d.Doubles, float64(r)*1.25)
		s.Strings = append(s.Strings, fmt.Sprintf("name-%07d", r))
		bl.Bools = append(bl.Bools, r%3 == 0)
	}
	batch.Columns = []hs2.Vector{id, i32, d, s, bl}
	codec := newLenientCodec()
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			data, _ := codec.Marshal(&batchMsg{b: batch})
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
