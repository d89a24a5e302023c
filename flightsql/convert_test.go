package flightsql

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/hiveqd/hiveqd/hs2"
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
