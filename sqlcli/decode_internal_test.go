package sqlcli

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// appendFloat and appendJSONString must write what encoding/json writes
// (it is the reference for JSON numbers and strings).
func TestJSONEncodingMatchesStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	floats := []float64{0, -0.0, 1, -1, 0.1, 1e-6, 1e-7, 9.999e-7, 1e20, 1e21, 123456789012345680000, math.MaxFloat64, math.SmallestNonzeroFloat64, 5e-324}
	for range 10000 {
		floats = append(floats, math.Float64frombits(r.Uint64()))
	}
	for _, f := range floats {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, f, 64); string(got) != string(want) {
			t.Fatalf("appendFloat(%v) = %s, want %s", f, got, want)
		}
		// Hive float columns: a float32 widened to float64 prints as the
		// float32 (as encoding/json prints a float32).
		f32 := float32(f)
		if math.IsInf(float64(f32), 0) {
			continue
		}
		want, err = json.Marshal(f32)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, float64(f32), 32); string(got) != string(want) {
			t.Fatalf("appendFloat(float32 %v) = %s, want %s", f32, got, want)
		}
	}
	if got := appendFloat(nil, 0.1, 32); string(got) != "0.1" {
		t.Errorf("a double in a float column: %s", got)
	}
	strs := []string{"", "plain", "q\"b\\", "\x00\x1f\x7f", "\u2028\u2029", "é漢字🙂", "<&>"}
	for range 2000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if utf8.Valid(b) {
			strs = append(strs, string(b))
		}
	}
	for _, s := range strs {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Fatalf("appendJSONString(%q) = %s: does not read back (%v, %q)", s, got, err, back)
		}
	}
}

func TestCodeName(t *testing.T) {
	for code, want := range map[int]string{0: "OK", 2: "UNKNOWN", 4: "DEADLINE_EXCEEDED", 14: "UNAVAILABLE", 16: "UNAUTHENTICATED", 8: "RESOURCE_EXHAUSTED"} {
		if got := codeName(codeOf(code)); got != want {
			t.Errorf("code %d: %s, want %s", code, got, want)
		}
	}
}

func codeOf(c int) codes.Code { return codes.Code(c) }

// The compact layout decodes to the same text as the original one, and
// malformed buffers are refused.
func TestDecodeCompactLayout(t *testing.T) {
	schema := []*hiveqv1.ColumnSchema{{Type: "int"}, {Type: "bigint"}, {Type: "string"}, {Type: "binary"}}
	old := &hiveqv1.RowBatch{RowCount: 3, Columns: []*hiveqv1.ColumnVector{
		{Values: &hiveqv1.ColumnVector_Int32Values{Int32Values: &hiveqv1.Int32Values{Values: []int32{1, -2, 3}}}},
		{Values: &hiveqv1.ColumnVector_Int64Values{Int64Values: &hiveqv1.Int64Values{Values: []int64{1 << 40, 0, -5}}}},
		{Nulls: []byte{0x02}, Values: &hiveqv1.ColumnVector_StringValues{StringValues: &hiveqv1.StringValues{Values: []string{"é", "", "ccc"}}}},
		{Values: &hiveqv1.ColumnVector_BytesValues{BytesValues: &hiveqv1.BytesValues{Values: [][]byte{{1}, {}, {2, 3}}}}},
	}}
	compact := &hiveqv1.RowBatch{RowCount: 3, Columns: []*hiveqv1.ColumnVector{
		{Values: &hiveqv1.ColumnVector_Fixed32Values{Fixed32Values: &hiveqv1.Fixed32Values{Values: []int32{1, -2, 3}}}},
		{Values: &hiveqv1.ColumnVector_Fixed64Values{Fixed64Values: &hiveqv1.Fixed64Values{Values: []int64{1 << 40, 0, -5}}}},
		{Nulls: []byte{0x02}, Values: &hiveqv1.ColumnVector_StringBuffer{StringBuffer: &hiveqv1.BufferValues{Data: []byte("éccc"), Offsets: []uint32{0, 2, 2, 5}}}},
		{Values: &hiveqv1.ColumnVector_BytesBuffer{BytesBuffer: &hiveqv1.BufferValues{Data: []byte{1, 2, 3}, Offsets: []uint32{0, 1, 1, 3}}}},
	}}
	a, err := decodeBatch(old, schema)
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeBatch(compact, schema)
	if err != nil {
		t.Fatal(err)
	}
	for c := range a.cols {
		for i := range 3 {
			if a.cols[c].isNull(i) {
				continue
			}
			if x, y := a.cols[c].text(i), b.cols[c].text(i); x != y {
				t.Errorf("column %d row %d: %q, compact %q", c, i, x, y)
			}
			if x, y := string(a.cols[c].appendJSON(nil, i)), string(b.cols[c].appendJSON(nil, i)); x != y {
				t.Errorf("column %d row %d JSON: %s, compact %s", c, i, x, y)
			}
		}
	}
	for _, bad := range []*hiveqv1.BufferValues{
		{Data: []byte("ab"), Offsets: []uint32{1, 1, 2, 2}},
		{Data: []byte("ab"), Offsets: []uint32{0, 2, 1, 2}},
		{Data: []byte("ab"), Offsets: []uint32{0, 1, 2, 3}},
		{Data: []byte("a\xff"), Offsets: []uint32{0, 1, 2, 2}},
		{Data: []byte("ab"), Offsets: []uint32{0, 1}}, // too few for 3 rows
	} {
		rb := &hiveqv1.RowBatch{RowCount: 3, Columns: []*hiveqv1.ColumnVector{{Values: &hiveqv1.ColumnVector_StringBuffer{StringBuffer: bad}}}}
		if _, err := decodeBatch(rb, schema[2:3]); err == nil {
			t.Errorf("offsets %v over %q accepted", bad.Offsets, bad.Data)
		}
	}
}
