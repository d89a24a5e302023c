package hs2

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

func sameArray[T any](a, b []T) bool {
	return len(a) > 0 && len(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// decodeRowSet writes rs as a FetchResults answer with the generated
// Thrift code and decodes it with fetchResult over TBinaryProtocol (bulk
// reads from the transport) and over a protocol it does not know (value by
// value), checking that both agree. It returns the batch, or the reason
// the row set is malformed.
func decodeRowSet(t *testing.T, rs *hiveserver.TRowSet) (*Batch, error) {
	t.Helper()
	ok := &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_SUCCESS_STATUS}
	data := encodeResult(t, &hiveserver.TCLIServiceFetchResultsResult{Success: &hiveserver.TFetchResultsResp{Status: ok, Results: rs}})
	var out [2]*fetchResult
	for i := range out {
		mem := thrift.NewTMemoryBuffer()
		mem.Write(data)
		var p thrift.TProtocol = thrift.NewTBinaryProtocolConf(mem, &thrift.TConfiguration{})
		if i == 1 {
			p = opaqueProtocol{p}
		}
		out[i] = &fetchResult{}
		if err := out[i].Read(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		if mem.Len() != 0 {
			t.Fatalf("%d bytes left unread", mem.Len())
		}
	}
	if !reflect.DeepEqual(out[0], out[1]) {
		t.Fatalf("bulk and value-by-value decodings differ:\n%+v\n%+v", out[0].batch, out[1].batch)
	}
	if out[0].malformed != nil {
		return nil, out[0].malformed
	}
	if out[0].batch == nil {
		return &Batch{}, nil
	}
	return out[0].batch, nil
}

// opaqueProtocol hides the protocol's type from the decoder.
type opaqueProtocol struct{ thrift.TProtocol }

func TestDecodeColumnKinds(t *testing.T) {
	cases := []struct {
		name string
		col  *hiveserver.TColumn
		kind Kind
		want []any
	}{
		{"bool", &hiveserver.TColumn{BoolVal: &hiveserver.TBoolColumn{Values: []bool{true, false, true}, Nulls: []byte{0}}}, KindBool,
			[]any{true, false, true}},
		{"byte", &hiveserver.TColumn{ByteVal: &hiveserver.TByteColumn{Values: []int8{-128, 0, 127}, Nulls: []byte{}}}, KindInt32,
			[]any{int32(-128), int32(0), int32(127)}},
		{"i16", &hiveserver.TColumn{I16Val: &hiveserver.TI16Column{Values: []int16{-32768, 1, 32767}, Nulls: []byte{}}}, KindInt32,
			[]any{int32(-32768), int32(1), int32(32767)}},
		{"i32", &hiveserver.TColumn{I32Val: &hiveserver.TI32Column{Values: []int32{1, -2, 3}, Nulls: []byte{}}}, KindInt32,
			[]any{int32(1), int32(-2), int32(3)}},
		{"i64", &hiveserver.TColumn{I64Val: &hiveserver.TI64Column{Values: []int64{1 << 40, -5, 7}, Nulls: []byte{}}}, KindInt64,
			[]any{int64(1 << 40), int64(-5), int64(7)}},
		{"double", &hiveserver.TColumn{DoubleVal: &hiveserver.TDoubleColumn{Values: []float64{1.5, -2.25, 0}, Nulls: []byte{}}}, KindDouble,
			[]any{1.5, -2.25, 0.0}},
		{"string", &hiveserver.TColumn{StringVal: &hiveserver.TStringColumn{Values: []string{"a", "", "ccc"}, Nulls: []byte{}}}, KindString,
			[]any{"a", "", "ccc"}},
		{"binary", &hiveserver.TColumn{BinaryVal: &hiveserver.TBinaryColumn{Values: [][]byte{{1}, nil, {2, 3}}, Nulls: []byte{}}}, KindBytes,
			[]any{[]byte{1}, []byte{}, []byte{2, 3}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := decodeRowSet(t, &hiveserver.TRowSet{Columns: []*hiveserver.TColumn{tc.col}})
			if err != nil {
				t.Fatal(err)
			}
			v := &b.Columns[0]
			n := b.Rows
			if n != len(tc.want) || v.Len() != n || v.Kind != tc.kind {
				t.Fatalf("n=%d len=%d kind=%v, want %d %v", n, v.Len(), v.Kind, len(tc.want), tc.kind)
			}
			if v.Nulls != nil {
				t.Fatalf("nulls = %v, want nil", v.Nulls)
			}
			for i, w := range tc.want {
				got := v.Value(i)
				if gb, ok := got.([]byte); ok {
					if !bytes.Equal(gb, w.([]byte)) {
						t.Errorf("row %d = %v, want %v", i, got, w)
					}
					continue
				}
				if got != w {
					t.Errorf("row %d = %#v, want %#v", i, got, w)
				}
			}
		})
	}
}

func TestNormNulls(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		rows int
		want []byte
	}{
		{"empty", nil, 10, nil},
		{"zero rows", []byte{0xff}, 0, nil},
		{"all zero", []byte{0, 0}, 16, nil},
		{"short", []byte{0x02}, 20, []byte{0x02, 0, 0}},
		{"exact", []byte{0x01, 0x80}, 16, []byte{0x01, 0x80}},
		{"long", []byte{0x01, 0x00, 0xff}, 9, []byte{0x01, 0x00}},
		{"long only beyond", []byte{0x00, 0x00, 0xff}, 16, nil},
		{"trailing bits masked", []byte{0xf1}, 3, []byte{0x01}},
		{"trailing bits only", []byte{0xf8}, 3, nil},
		{"one row null", []byte{0x01}, 1, []byte{0x01}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := normNulls(bytes.Clone(tc.in), tc.rows)
			if !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("normNulls(%x, %d) = %x, want %x", tc.in, tc.rows, got, tc.want)
			}
			if got != nil && len(got) != (tc.rows+7)/8 {
				t.Fatalf("len %d, want %d", len(got), (tc.rows+7)/8)
			}
		})
	}
	// Exact-size bitmaps are reused, not copied.
	in := []byte{0x05}
	if got := normNulls(in, 8); !sameArray(got, in) {
		t.Error("exact bitmap copied")
	}
}

func TestVectorNulls(t *testing.T) {
	b, err := decodeRowSet(t, &hiveserver.TRowSet{Columns: []*hiveserver.TColumn{
		{StringVal: &hiveserver.TStringColumn{Values: make([]string, 10), Nulls: []byte{0x00, 0x02}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	v := &b.Columns[0]
	for i := range 10 {
		if v.IsNull(i) != (i == 9) {
			t.Errorf("IsNull(%d) = %v", i, v.IsNull(i))
		}
	}
	if v.Value(9) != nil {
		t.Error("Value of NULL row not nil")
	}
}

func TestDecodeRowSet(t *testing.T) {
	rs := &hiveserver.TRowSet{Columns: []*hiveserver.TColumn{
		{I32Val: &hiveserver.TI32Column{Values: []int32{1, 2}, Nulls: []byte{}}},
		{StringVal: &hiveserver.TStringColumn{Values: []string{"x", "y"}, Nulls: []byte{0x02}}},
	}}
	b, err := decodeRowSet(t, rs)
	if err != nil {
		t.Fatal(err)
	}
	if b.Rows != 2 || len(b.Columns) != 2 || b.Columns[1].Value(1) != nil || b.Columns[1].Value(0) != "x" {
		t.Fatalf("batch = %+v", b)
	}

	for _, tc := range []struct {
		name string
		rs   *hiveserver.TRowSet
		want string
	}{
		{"mismatch", &hiveserver.TRowSet{Columns: []*hiveserver.TColumn{
			{I32Val: &hiveserver.TI32Column{Values: []int32{1, 2}, Nulls: []byte{}}},
			{StringVal: &hiveserver.TStringColumn{Values: []string{"x"}, Nulls: []byte{}}},
		}}, "column 2 has 1 values, column 1 has 2"},
		{"row based", &hiveserver.TRowSet{Rows: []*hiveserver.TRow{{ColVals: []*hiveserver.TColumnValue{}}}}, "row-based"},
		{"compressed", &hiveserver.TRowSet{Rows: []*hiveserver.TRow{}, BinaryColumns: []byte{1}}, "compressed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeRowSet(t, tc.rs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	for _, rs := range []*hiveserver.TRowSet{nil, {Rows: []*hiveserver.TRow{}}} {
		if b, err := decodeRowSet(t, rs); err != nil || b.Rows != 0 {
			t.Fatalf("empty rowset: %+v, %v", b, err)
		}
	}
}

func prim(id hiveserver.TTypeId, q map[string]*hiveserver.TTypeQualifierValue) *hiveserver.TTypeEntry {
	e := &hiveserver.TPrimitiveTypeEntry{Type: id}
	if q != nil {
		e.TypeQualifiers = &hiveserver.TTypeQualifiers{Qualifiers: q}
	}
	return &hiveserver.TTypeEntry{PrimitiveEntry: e}
}

func i32q(n int32) *hiveserver.TTypeQualifierValue {
	return &hiveserver.TTypeQualifierValue{I32Value: &n}
}

func TestTypeText(t *testing.T) {
	one := func(e *hiveserver.TTypeEntry) *hiveserver.TTypeDesc {
		return &hiveserver.TTypeDesc{Types: []*hiveserver.TTypeEntry{e}}
	}
	cases := []struct {
		td   *hiveserver.TTypeDesc
		want string
	}{
		{one(prim(hiveserver.TTypeId_INT_TYPE, nil)), "int"},
		{one(prim(hiveserver.TTypeId_BIGINT_TYPE, nil)), "bigint"},
		{one(prim(hiveserver.TTypeId_STRING_TYPE, nil)), "string"},
		{one(prim(hiveserver.TTypeId_TIMESTAMP_TYPE, nil)), "timestamp"},
		{one(prim(hiveserver.TTypeId_NULL_TYPE, nil)), "void"},
		{one(prim(hiveserver.TTypeId_TIMESTAMPLOCALTZ_TYPE, nil)), "timestamp with local time zone"},
		{one(prim(hiveserver.TTypeId_INTERVAL_DAY_TIME_TYPE, nil)), "interval_day_time"},
		{one(prim(hiveserver.TTypeId_ARRAY_TYPE, nil)), "array"},
		{one(prim(hiveserver.TTypeId_UNION_TYPE, nil)), "uniontype"},
		{one(prim(hiveserver.TTypeId_DECIMAL_TYPE, map[string]*hiveserver.TTypeQualifierValue{
			hiveserver.PRECISION: i32q(10), hiveserver.SCALE: i32q(2)})), "decimal(10,2)"},
		{one(prim(hiveserver.TTypeId_DECIMAL_TYPE, nil)), "decimal"},
		{one(prim(hiveserver.TTypeId_VARCHAR_TYPE, map[string]*hiveserver.TTypeQualifierValue{
			hiveserver.CHARACTER_MAXIMUM_LENGTH: i32q(20)})), "varchar(20)"},
		{one(prim(hiveserver.TTypeId_CHAR_TYPE, map[string]*hiveserver.TTypeQualifierValue{
			hiveserver.CHARACTER_MAXIMUM_LENGTH: i32q(5)})), "char(5)"},
		{one(prim(hiveserver.TTypeId(99), nil)), "unknown"},
		{nil, "unknown"},
		{&hiveserver.TTypeDesc{}, "unknown"},
		{&hiveserver.TTypeDesc{Types: []*hiveserver.TTypeEntry{
			{ArrayEntry: &hiveserver.TArrayTypeEntry{ObjectTypePtr: 1}},
			prim(hiveserver.TTypeId_INT_TYPE, nil),
		}}, "array<int>"},
		{&hiveserver.TTypeDesc{Types: []*hiveserver.TTypeEntry{
			{MapEntry: &hiveserver.TMapTypeEntry{KeyTypePtr: 1, ValueTypePtr: 2}},
			prim(hiveserver.TTypeId_STRING_TYPE, nil),
			{StructEntry: &hiveserver.TStructTypeEntry{NameToTypePtr: map[string]hiveserver.TTypeEntryPtr{"b": 1, "a": 3}}},
			prim(hiveserver.TTypeId_DOUBLE_TYPE, nil),
		}}, "map<string,struct<a:double,b:string>>"},
		{&hiveserver.TTypeDesc{Types: []*hiveserver.TTypeEntry{
			{ArrayEntry: &hiveserver.TArrayTypeEntry{ObjectTypePtr: 0}}, // a cycle
		}}, "array<array<"}, // bounded, no hang
		{&hiveserver.TTypeDesc{Types: []*hiveserver.TTypeEntry{
			{ArrayEntry: &hiveserver.TArrayTypeEntry{ObjectTypePtr: 7}},
		}}, "array<unknown>"},
	}
	for _, tc := range cases {
		got := typeText(tc.td)
		if got != tc.want && !(strings.HasSuffix(tc.want, "<") && strings.HasPrefix(got, tc.want)) {
			t.Errorf("typeText = %q, want %q", got, tc.want)
		}
	}
}
