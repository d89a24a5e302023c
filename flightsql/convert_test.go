package flightsql

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/encoding"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/batchtest"
	"github.com/hiveqd/hiveqd/internal/testenv"
)

func TestColumnFor(t *testing.T) {
	for _, c := range []struct {
		hive string
		want arrow.DataType
	}{
		{"boolean", arrow.FixedWidthTypes.Boolean}, {"TINYINT", arrow.PrimitiveTypes.Int8},
		{"smallint", arrow.PrimitiveTypes.Int16}, {"int", arrow.PrimitiveTypes.Int32},
		{"bigint", arrow.PrimitiveTypes.Int64}, {"float", arrow.PrimitiveTypes.Float32},
		{"double", arrow.PrimitiveTypes.Float64}, {"varchar(20)", arrow.BinaryTypes.String},
		{"char(5)", arrow.BinaryTypes.String}, {"binary", arrow.BinaryTypes.Binary},
		{"decimal(38,18)", &arrow.Decimal128Type{Precision: 38, Scale: 18}},
		{"decimal", &arrow.Decimal128Type{Precision: 10, Scale: 0}},
		{"date", arrow.FixedWidthTypes.Date32}, {"timestamp", &arrow.TimestampType{Unit: arrow.Microsecond}},
		{"interval_day_time", arrow.BinaryTypes.String}, {"array<int>", arrow.BinaryTypes.String},
		{"map<string,int>", arrow.BinaryTypes.String}, {"struct<a:int>", arrow.BinaryTypes.String},
		{"timestamp with local time zone", arrow.BinaryTypes.String}, {"void", arrow.BinaryTypes.String},
	} {
		col := columnFor("c", c.hive)
		if !arrow.TypeEqual(col.field.Type, c.want) {
			t.Errorf("%s: %s, want %s", c.hive, col.field.Type, c.want)
		}
		if v, _ := col.field.Metadata.GetValue(MetaHiveType); v != c.hive {
			t.Errorf("%s: metadata %q", c.hive, v)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		s           string
		prec, scale int32
		want        string
		bad         bool
	}{
		{"12.50", 10, 2, "12.50", false}, {"-99999999.99", 10, 2, "-99999999.99", false}, {"0.01", 10, 2, "0.01", false},
		{"7", 10, 2, "7.00", false}, {"-0.5", 5, 3, "-0.500", false},
		{"12345678901234567890.123456789012345678", 38, 18, "12345678901234567890.123456789012345678", false},
		{"abc", 10, 2, "", true}, {"", 10, 2, "", true},
	} {
		n, err := parseDecimal(c.s, c.prec, c.scale)
		if (err != nil) != c.bad {
			t.Errorf("%q: %v", c.s, err)
			continue
		}
		if !c.bad && n.ToString(c.scale) != c.want {
			t.Errorf("%q: %s, want %s", c.s, n.ToString(c.scale), c.want)
		}
	}
	for _, c := range []struct {
		s    string
		want int32
	}{{"1970-01-01", 0}, {"1970-01-02", 1}, {"1969-12-31", -1}, {"2000-03-01", 11017}, {"0001-01-01", -719162}} {
		if d, err := parseDate(c.s); err != nil || d != c.want {
			t.Errorf("date %q: %d %v, want %d", c.s, d, err, c.want)
		}
	}
	for _, c := range []struct {
		s    string
		want int64
		bad  bool
	}{
		{"1970-01-01 00:00:00", 0, false}, {"1970-01-01 00:00:00.123", 123000, false},
		{"1970-01-01 00:00:01.123456789", 1123456, false}, {"1969-12-31 23:59:59.5", -500000, false},
		{"1970-01-01T00:00:00", 0, true}, {"garbage", 0, true},
	} {
		ts, err := parseTimestamp(c.s)
		if (err != nil) != c.bad || !c.bad && ts != c.want {
			t.Errorf("timestamp %q: %d %v, want %d", c.s, ts, err, c.want)
		}
	}
}

func TestHasParameters(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT * FROM t WHERE id = ?":        true,
		"SELECT '?' FROM t":                   false,
		"SELECT `a?` FROM t":                  false,
		"SELECT 1 -- why?\n":                  false,
		"SELECT /* ? */ 1":                    false,
		`SELECT "it\"s ?" FROM t WHERE x = ?`: true,
		"SELECT regexp_replace(s, 'a?', 'b')": false,
		"SELECT 1":                            false,
	} {
		if got := hasParameters(q); got != want {
			t.Errorf("%q: %v", q, got)
		}
	}
}

// TestRecordFromBatch converts a batch with NULLs in every kind of column.
func TestRecordFromBatch(t *testing.T) {
	schema, cols := schemaOf(hs2.Schema{{Name: "b", Type: "boolean"}, {Name: "t", Type: "tinyint"}, {Name: "s", Type: "string"},
		{Name: "d", Type: "decimal(5,1)"}, {Name: "bin", Type: "binary"}, {Name: "f", Type: "float"}})
	nulls := []byte{0b010}
	b := &hs2.Batch{Rows: 3, Columns: []hs2.Vector{
		{Kind: hs2.KindBool, Bools: []bool{true, false, true}, Nulls: nulls},
		{Kind: hs2.KindInt32, Int32s: []int32{-1, 0, 127}, Nulls: nulls},
		hs2.StringVector([]string{"a", "", "ccc"}, nulls),
		hs2.StringVector([]string{"1.5", "", "-2.0"}, nulls),
		hs2.BytesVector([][]byte{{1}, nil, {2, 3}}, nil),
		{Kind: hs2.KindDouble, Doubles: []float64{0.5, 0, -1.25}, Nulls: nulls},
	}}
	rec, err := record(schema, cols, b)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	for i := 0; i < 4; i++ {
		if c := rec.Column(i); c.NullN() != 1 || !c.IsNull(1) {
			t.Errorf("column %d: nulls %d", i, c.NullN())
		}
	}
	if rec.Column(4).NullN() != 0 {
		t.Error("binary has NULLs")
	}
	if v := rec.Column(1).(*array.Int8).Value(2); v != 127 {
		t.Errorf("tinyint %d", v)
	}
	if v := rec.Column(2).(*array.String).Value(2); v != "ccc" {
		t.Errorf("string %q", v)
	}
	if v := rec.Column(3).(*array.Decimal128).Value(2).ToString(1); v != "-2.0" {
		t.Errorf("decimal %s", v)
	}
	if v := rec.Column(5).(*array.Float32).Value(2); v != -1.25 {
		t.Errorf("float %v", v)
	}
	// A vector of the wrong kind is an error, not a panic.
	b.Columns[1] = hs2.StringVector([]string{"x", "y", "z"}, nil)
	if _, err := record(schema, cols, b); err == nil {
		t.Fatal("a string vector for a tinyint column converted")
	}
}

// synthBatch is an hs2 batch shaped like synth.rows_N (bigint, int,
// double, short string, boolean; NULLs in the last four), as
// service.BenchmarkMarshalBatch builds it.
func synthBatch(rows int) (*hs2.Batch, *arrow.Schema, []column) {
	schema, cols := schemaOf(batchtest.SynthSchema)
	return batchtest.Synth(rows), schema, cols
}

// BenchmarkRecord converts a 10 000-row batch of the synth.rows_N shape.
func BenchmarkRecord(b *testing.B) {
	batch, schema, cols := synthBatch(10_000)
	testenv.MeasureCPU(b, func() {
		rec, err := record(schema, cols, batch)
		if err != nil {
			b.Fatal(err)
		}
		rec.Release()
	})
}

// freeStream marshals each message with the codec and frees it, as
// service.BenchmarkMarshalBatch does (no copy into a transport).
type freeStream struct {
	flight.FlightService_DoGetServer
	codec encoding.CodecV2
}

func (s *freeStream) SendMsg(m any) error {
	data, err := s.codec.Marshal(m)
	if err != nil {
		return err
	}
	data.Free()
	return nil
}

// BenchmarkDoGetBatch is the Flight SQL door's own work for one 10 000-row
// batch: conversion, IPC message and codec, the counterpart of
// service.BenchmarkMarshalBatch/compact for hiveq.v1.
func BenchmarkDoGetBatch(b *testing.B) {
	batch, schema, cols := synthBatch(10_000)
	w := newRecordWriter(&freeStream{codec: Codec()}, schema)
	defer w.close()
	testenv.MeasureCPU(b, func() {
		rec, err := record(schema, cols, batch)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.write(rec); err != nil {
			b.Fatal(err)
		}
		rec.Release()
	})
}

// TestBitmaps checks validity and packBools against bit-by-bit versions,
// for lengths around the 8-byte steps and NULL bitmaps that are short
// (Hive's trailing zero bytes dropped), exact, or longer than the rows.
func TestBitmaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 140; n++ {
		for _, extra := range []int{-2, -1, 0, 1, 9} {
			nulls := make([]byte, max(bitmapBytes(n)+extra, 0))
			for i := range nulls {
				nulls[i] = byte(rng.Uint32())
				if rng.IntN(4) == 0 {
					nulls[i] = 0
				}
			}
			wantValid, wantNulls := make([]byte, bitmapBytes(n)), 0
			for i := range n {
				if i/8 < len(nulls) && nulls[i/8]&(1<<(i%8)) != 0 {
					wantNulls++
				} else {
					wantValid[i/8] |= 1 << (i % 8)
				}
			}
			buf, got := validity(nulls, n)
			switch {
			case got != wantNulls:
				t.Fatalf("n=%d extra=%d: %d NULLs, want %d", n, extra, got, wantNulls)
			case wantNulls == 0 && buf != nil:
				t.Fatalf("n=%d extra=%d: a bitmap without NULLs", n, extra)
			case wantNulls > 0 && !bytes.Equal(buf.Bytes(), wantValid):
				t.Fatalf("n=%d extra=%d: validity %x, want %x", n, extra, buf.Bytes(), wantValid)
			}
			if buf != nil {
				buf.Release()
			}
		}
		vals := make([]bool, n)
		want := make([]byte, bitmapBytes(n))
		for i := range vals {
			vals[i] = rng.IntN(2) == 0
			if vals[i] {
				want[i/8] |= 1 << (i % 8)
			}
		}
		got := make([]byte, bitmapBytes(n))
		packBools(got, vals)
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d: packed %x, want %x", n, got, want)
		}
	}
}
