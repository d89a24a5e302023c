package flightsql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"

	"github.com/hiveqd/hiveqd/hs2"
)

// MetaHiveType is the field metadata key that carries a column's Hive type
// text ("decimal(10,2)", "array<int>"), as HS2 reported it.
const MetaHiveType = "hive.type"

// target is what a Hive column becomes in Arrow.
type target uint8

const (
	tBool target = iota + 1
	tInt8
	tInt16
	tInt32
	tInt64
	tFloat32
	tFloat64
	tUTF8
	tBinary
	tDecimal
	tDate
	tTimestamp
)

// column is one result column: its Arrow field and how to convert it.
type column struct {
	field       arrow.Field
	hive        string
	to          target
	prec, scale int32
}

// hiveBase splits "decimal(10,2)" into "decimal" and "10,2"; "array<int>"
// into "array" and "".
func hiveBase(typ string) (base, args string) {
	t := strings.ToLower(strings.TrimSpace(typ))
	if i := strings.IndexAny(t, "(<"); i >= 0 {
		base = strings.TrimSpace(t[:i])
		if t[i] == '(' {
			if j := strings.IndexByte(t, ')'); j > i {
				args = t[i+1 : j]
			}
		}
		return base, args
	}
	return t, ""
}

// columnFor maps a Hive type to its Arrow type: boolean→bool,
// tinyint→int8, smallint→int16, int→int32, bigint→int64, float→float32,
// double→float64, string/varchar/char→utf8, binary→binary,
// decimal(p,s)→decimal128(p,s), date→date32, timestamp→timestamp[us] (no
// zone, like Hive); interval, complex and other types→utf8 as HS2 renders
// them.
func columnFor(name, typ string) column {
	base, args := hiveBase(typ)
	c := column{to: tUTF8, hive: typ}
	var dt arrow.DataType = arrow.BinaryTypes.String
	switch base {
	case "boolean":
		c.to, dt = tBool, arrow.FixedWidthTypes.Boolean
	case "tinyint":
		c.to, dt = tInt8, arrow.PrimitiveTypes.Int8
	case "smallint":
		c.to, dt = tInt16, arrow.PrimitiveTypes.Int16
	case "int", "integer":
		c.to, dt = tInt32, arrow.PrimitiveTypes.Int32
	case "bigint":
		c.to, dt = tInt64, arrow.PrimitiveTypes.Int64
	case "float":
		c.to, dt = tFloat32, arrow.PrimitiveTypes.Float32
	case "double", "double precision":
		c.to, dt = tFloat64, arrow.PrimitiveTypes.Float64
	case "binary":
		c.to, dt = tBinary, arrow.BinaryTypes.Binary
	case "decimal", "numeric":
		c.to, c.prec, c.scale = tDecimal, 10, 0 // Hive's default decimal
		if args != "" {
			p, s, _ := strings.Cut(args, ",")
			if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil && n >= 1 && n <= 38 {
				c.prec = int32(n)
			}
			if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 && int32(n) <= c.prec {
				c.scale = int32(n)
			}
		}
		dt = &arrow.Decimal128Type{Precision: c.prec, Scale: c.scale}
	case "date":
		c.to, dt = tDate, arrow.FixedWidthTypes.Date32
	case "timestamp":
		c.to, dt = tTimestamp, &arrow.TimestampType{Unit: arrow.Microsecond}
	}
	md := flightsql.NewColumnMetadataBuilder().TypeName(strings.ToUpper(base))
	if c.to == tDecimal {
		md.Precision(c.prec).Scale(c.scale)
	}
	meta := md.Metadata()
	keys := append(meta.Keys(), MetaHiveType)
	vals := append(meta.Values(), typ)
	c.field = arrow.Field{Name: name, Type: dt, Nullable: true, Metadata: arrow.NewMetadata(keys, vals)}
	return c
}

// schemaOf is the Arrow schema of an HS2 result set.
func schemaOf(s hs2.Schema) (*arrow.Schema, []column) {
	cols := make([]column, len(s))
	fields := make([]arrow.Field, len(s))
	for i, d := range s {
		cols[i] = columnFor(d.Name, d.Type)
		fields[i] = cols[i].field
	}
	return arrow.NewSchema(fields, nil), cols
}

// kindFor is the hs2 vector kind a target arrives as.
func (t target) kind() hs2.Kind {
	switch t {
	case tBool:
		return hs2.KindBool
	case tInt8, tInt16, tInt32:
		return hs2.KindInt32
	case tInt64:
		return hs2.KindInt64
	case tFloat32, tFloat64:
		return hs2.KindDouble
	case tBinary:
		return hs2.KindBytes
	}
	return hs2.KindString
}

func (c column) check(v *hs2.Vector) error {
	if v.Kind != c.to.kind() && !(c.to == tUTF8 && v.Kind == hs2.KindString) {
		return fmt.Errorf("column %q of Hive type %s arrived as %s values", c.field.Name, c.hive, v.Kind)
	}
	return nil
}
