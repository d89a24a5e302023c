package hs2

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/beltran/gohive/hiveserver"
)

// normNulls returns HS2's null bitmap as exactly (rows+7)/8 bytes, or nil
// when no row is NULL. Hive sends java.util.BitSet.toByteArray(), which
// stops at the last set bit, so a short bitmap is normal; bits past the
// last row are dropped. The wire slice is reused when it fits.
func normNulls(b []byte, rows int) []byte {
	want := (rows + 7) / 8
	if len(b) > want {
		b = b[:want]
	}
	if rows%8 != 0 && len(b) == want {
		b[want-1] &= byte(1)<<(rows%8) - 1
	}
	if !slices.ContainsFunc(b, func(x byte) bool { return x != 0 }) {
		return nil
	}
	if len(b) < want {
		out := make([]byte, want)
		copy(out, b)
		return out
	}
	return b
}

// Hive's names for its types, as DESCRIBE and Hive JDBC print them.
var typeNames = map[hiveserver.TTypeId]string{
	hiveserver.TTypeId_BOOLEAN_TYPE:             "boolean",
	hiveserver.TTypeId_TINYINT_TYPE:             "tinyint",
	hiveserver.TTypeId_SMALLINT_TYPE:            "smallint",
	hiveserver.TTypeId_INT_TYPE:                 "int",
	hiveserver.TTypeId_BIGINT_TYPE:              "bigint",
	hiveserver.TTypeId_FLOAT_TYPE:               "float",
	hiveserver.TTypeId_DOUBLE_TYPE:              "double",
	hiveserver.TTypeId_STRING_TYPE:              "string",
	hiveserver.TTypeId_TIMESTAMP_TYPE:           "timestamp",
	hiveserver.TTypeId_BINARY_TYPE:              "binary",
	hiveserver.TTypeId_ARRAY_TYPE:               "array",
	hiveserver.TTypeId_MAP_TYPE:                 "map",
	hiveserver.TTypeId_STRUCT_TYPE:              "struct",
	hiveserver.TTypeId_UNION_TYPE:               "uniontype",
	hiveserver.TTypeId_USER_DEFINED_TYPE:        "user_defined",
	hiveserver.TTypeId_DECIMAL_TYPE:             "decimal",
	hiveserver.TTypeId_NULL_TYPE:                "void",
	hiveserver.TTypeId_DATE_TYPE:                "date",
	hiveserver.TTypeId_VARCHAR_TYPE:             "varchar",
	hiveserver.TTypeId_CHAR_TYPE:                "char",
	hiveserver.TTypeId_INTERVAL_YEAR_MONTH_TYPE: "interval_year_month",
	hiveserver.TTypeId_INTERVAL_DAY_TIME_TYPE:   "interval_day_time",
	hiveserver.TTypeId_TIMESTAMPLOCALTZ_TYPE:    "timestamp with local time zone",
}

// typeText renders a column's TTypeDesc as Hive type text. HS2 describes
// every column, complex ones included, by one primitive entry (so an array
// column is just "array"); a full entry tree, if a server sends one, is
// rendered as array<int>, map<string,int>, struct<a:int,...>.
func typeText(td *hiveserver.TTypeDesc) string {
	if td == nil || len(td.Types) == 0 {
		return "unknown"
	}
	var sb strings.Builder
	writeType(&sb, td.Types, 0, 0)
	return sb.String()
}

func writeType(sb *strings.Builder, types []*hiveserver.TTypeEntry, i hiveserver.TTypeEntryPtr, depth int) {
	if i < 0 || int(i) >= len(types) || types[i] == nil || depth > 32 {
		sb.WriteString("unknown")
		return
	}
	e := types[i]
	switch {
	case e.PrimitiveEntry != nil:
		writePrimitive(sb, e.PrimitiveEntry)
	case e.ArrayEntry != nil:
		sb.WriteString("array<")
		writeType(sb, types, e.ArrayEntry.ObjectTypePtr, depth+1)
		sb.WriteByte('>')
	case e.MapEntry != nil:
		sb.WriteString("map<")
		writeType(sb, types, e.MapEntry.KeyTypePtr, depth+1)
		sb.WriteByte(',')
		writeType(sb, types, e.MapEntry.ValueTypePtr, depth+1)
		sb.WriteByte('>')
	case e.StructEntry != nil:
		writeFields(sb, "struct<", e.StructEntry.NameToTypePtr, types, depth)
	case e.UnionEntry != nil:
		writeFields(sb, "uniontype<", e.UnionEntry.NameToTypePtr, types, depth)
	case e.UserDefinedTypeEntry != nil:
		sb.WriteString(e.UserDefinedTypeEntry.TypeClassName)
	default:
		sb.WriteString("unknown")
	}
}

// writeFields renders struct/union members; Thrift gives them as a map, so
// their order is lost and they are sorted by name.
func writeFields(sb *strings.Builder, open string, m map[string]hiveserver.TTypeEntryPtr, types []*hiveserver.TTypeEntry, depth int) {
	sb.WriteString(open)
	for j, name := range slices.Sorted(maps.Keys(m)) {
		if j > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(name)
		sb.WriteByte(':')
		writeType(sb, types, m[name], depth+1)
	}
	sb.WriteByte('>')
}

func writePrimitive(sb *strings.Builder, p *hiveserver.TPrimitiveTypeEntry) {
	name, ok := typeNames[p.Type]
	if !ok {
		name = "unknown" // a type id newer than these bindings
	}
	sb.WriteString(name)
	q := func(k string) (string, bool) {
		if p.TypeQualifiers == nil {
			return "", false
		}
		v := p.TypeQualifiers.Qualifiers[k]
		switch {
		case v == nil:
			return "", false
		case v.I32Value != nil:
			return strconv.Itoa(int(*v.I32Value)), true
		case v.StringValue != nil:
			return *v.StringValue, true
		}
		return "", false
	}
	switch p.Type {
	case hiveserver.TTypeId_DECIMAL_TYPE:
		if prec, ok := q(hiveserver.PRECISION); ok {
			scale, ok := q(hiveserver.SCALE)
			if !ok {
				scale = "0"
			}
			sb.WriteString("(" + prec + "," + scale + ")")
		}
	case hiveserver.TTypeId_VARCHAR_TYPE, hiveserver.TTypeId_CHAR_TYPE:
		if n, ok := q(hiveserver.CHARACTER_MAXIMUM_LENGTH); ok {
			sb.WriteString("(" + n + ")")
		}
	}
}
