package hs2sim

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/beltran/gohive/hiveserver"
)

// hiveType is a Hive primitive type with its qualifiers.
type hiveType struct {
	id        hiveserver.TTypeId
	precision int // decimal
	scale     int // decimal
	length    int // varchar, char
}

var (
	tBoolean   = hiveType{id: hiveserver.TTypeId_BOOLEAN_TYPE}
	tTinyint   = hiveType{id: hiveserver.TTypeId_TINYINT_TYPE}
	tSmallint  = hiveType{id: hiveserver.TTypeId_SMALLINT_TYPE}
	tInt       = hiveType{id: hiveserver.TTypeId_INT_TYPE}
	tBigint    = hiveType{id: hiveserver.TTypeId_BIGINT_TYPE}
	tFloat     = hiveType{id: hiveserver.TTypeId_FLOAT_TYPE}
	tDouble    = hiveType{id: hiveserver.TTypeId_DOUBLE_TYPE}
	tString    = hiveType{id: hiveserver.TTypeId_STRING_TYPE}
	tDate      = hiveType{id: hiveserver.TTypeId_DATE_TYPE}
	tTimestamp = hiveType{id: hiveserver.TTypeId_TIMESTAMP_TYPE}
	tBinary    = hiveType{id: hiveserver.TTypeId_BINARY_TYPE}
)

func decimalType(p, s int) hiveType {
	return hiveType{id: hiveserver.TTypeId_DECIMAL_TYPE, precision: p, scale: s}
}

// parseHiveType parses a Hive type name ("int", "decimal(10,2)",
// "varchar(20)") or the SQLite declared type we store it under ("TEXT" for
// string). It is case-insensitive.
func parseHiveType(s string) (hiveType, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	name, args := s, ""
	if i := strings.IndexByte(s, '('); i >= 0 && strings.HasSuffix(s, ")") {
		name, args = strings.TrimSpace(s[:i]), s[i+1:len(s)-1]
	}
	var nums []int
	if args != "" {
		for _, a := range strings.Split(args, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(a))
			if err != nil {
				return hiveType{}, false
			}
			nums = append(nums, n)
		}
	}
	switch name {
	case "boolean", "bool":
		return tBoolean, true
	case "tinyint":
		return tTinyint, true
	case "smallint":
		return tSmallint, true
	case "int", "integer":
		return tInt, true
	case "bigint":
		return tBigint, true
	case "float":
		return tFloat, true
	case "double", "double precision", "real":
		return tDouble, true
	case "string", "text":
		return tString, true
	case "date":
		return tDate, true
	case "timestamp":
		return tTimestamp, true
	case "binary", "blob":
		return tBinary, true
	case "decimal", "numeric":
		// Hive's defaults: decimal = decimal(10,0).
		p, sc := 10, 0
		if len(nums) > 0 {
			p = nums[0]
		}
		if len(nums) > 1 {
			sc = nums[1]
		}
		return decimalType(p, sc), true
	case "varchar", "char":
		if len(nums) != 1 {
			return hiveType{}, false
		}
		id := hiveserver.TTypeId_VARCHAR_TYPE
		if name == "char" {
			id = hiveserver.TTypeId_CHAR_TYPE
		}
		return hiveType{id: id, length: nums[0]}, true
	}
	return hiveType{}, false
}

// String is the Hive spelling, as DESCRIBE prints it.
func (t hiveType) String() string {
	switch t.id {
	case hiveserver.TTypeId_DECIMAL_TYPE:
		return fmt.Sprintf("decimal(%d,%d)", t.precision, t.scale)
	case hiveserver.TTypeId_VARCHAR_TYPE:
		return fmt.Sprintf("varchar(%d)", t.length)
	case hiveserver.TTypeId_CHAR_TYPE:
		return fmt.Sprintf("char(%d)", t.length)
	}
	s := strings.ToLower(strings.TrimSuffix(t.id.String(), "_TYPE"))
	if s == "null" {
		return "void"
	}
	return s
}

// sqliteDecl is the SQLite column declaration for t. It keeps the Hive name
// (so result columns carry their Hive type as the declared type) except for
// string: SQLite gives "STRING" numeric affinity, which would turn '007'
// into 7, so strings are declared TEXT.
func (t hiveType) sqliteDecl() string {
	if t.id == hiveserver.TTypeId_STRING_TYPE {
		return "TEXT"
	}
	return strings.ToUpper(t.String())
}

// typeDesc is the TTypeDesc HS2 sends for t in result-set metadata.
func (t hiveType) typeDesc() *hiveserver.TTypeDesc {
	pe := &hiveserver.TPrimitiveTypeEntry{Type: t.id}
	switch t.id {
	case hiveserver.TTypeId_DECIMAL_TYPE:
		p, s := int32(t.precision), int32(t.scale)
		pe.TypeQualifiers = &hiveserver.TTypeQualifiers{Qualifiers: map[string]*hiveserver.TTypeQualifierValue{
			"precision": {I32Value: &p},
			"scale":     {I32Value: &s},
		}}
	case hiveserver.TTypeId_VARCHAR_TYPE, hiveserver.TTypeId_CHAR_TYPE:
		l := int32(t.length)
		pe.TypeQualifiers = &hiveserver.TTypeQualifiers{Qualifiers: map[string]*hiveserver.TTypeQualifierValue{
			"characterMaximumLength": {I32Value: &l},
		}}
	}
	return &hiveserver.TTypeDesc{Types: []*hiveserver.TTypeEntry{{PrimitiveEntry: pe}}}
}

// jdbcType is the java.sql.Types code Hive reports for t in metadata calls.
func (t hiveType) jdbcType() int32 {
	switch t.id {
	case hiveserver.TTypeId_BOOLEAN_TYPE:
		return 16
	case hiveserver.TTypeId_TINYINT_TYPE:
		return -6
	case hiveserver.TTypeId_SMALLINT_TYPE:
		return 5
	case hiveserver.TTypeId_INT_TYPE:
		return 4
	case hiveserver.TTypeId_BIGINT_TYPE:
		return -5
	case hiveserver.TTypeId_FLOAT_TYPE:
		return 6
	case hiveserver.TTypeId_DOUBLE_TYPE:
		return 8
	case hiveserver.TTypeId_DECIMAL_TYPE:
		return 3
	case hiveserver.TTypeId_STRING_TYPE, hiveserver.TTypeId_VARCHAR_TYPE:
		return 12
	case hiveserver.TTypeId_CHAR_TYPE:
		return 1
	case hiveserver.TTypeId_DATE_TYPE:
		return 91
	case hiveserver.TTypeId_TIMESTAMP_TYPE:
		return 93
	case hiveserver.TTypeId_BINARY_TYPE:
		return -2
	case hiveserver.TTypeId_NULL_TYPE:
		return 0
	}
	return 1111 // OTHER
}

// columnSize is JDBC COLUMN_SIZE as Hive reports it (nil when undefined).
func (t hiveType) columnSize() (int32, bool) {
	switch t.id {
	case hiveserver.TTypeId_TINYINT_TYPE:
		return 3, true
	case hiveserver.TTypeId_SMALLINT_TYPE:
		return 5, true
	case hiveserver.TTypeId_INT_TYPE:
		return 10, true
	case hiveserver.TTypeId_BIGINT_TYPE:
		return 19, true
	case hiveserver.TTypeId_FLOAT_TYPE:
		return 7, true
	case hiveserver.TTypeId_DOUBLE_TYPE:
		return 15, true
	case hiveserver.TTypeId_DECIMAL_TYPE:
		return int32(t.precision), true
	case hiveserver.TTypeId_VARCHAR_TYPE, hiveserver.TTypeId_CHAR_TYPE:
		return int32(t.length), true
	case hiveserver.TTypeId_STRING_TYPE, hiveserver.TTypeId_BINARY_TYPE:
		return 2147483647, true
	case hiveserver.TTypeId_DATE_TYPE:
		return 10, true
	case hiveserver.TTypeId_TIMESTAMP_TYPE:
		return 29, true
	}
	return 0, false
}

// column is one result or table column.
type column struct {
	name    string
	typ     hiveType
	comment string
}

// tableSchema builds the TTableSchema of cols, positions 1-based as in HS2.
func tableSchema(cols []column) *hiveserver.TTableSchema {
	s := &hiveserver.TTableSchema{Columns: make([]*hiveserver.TColumnDesc, len(cols))}
	for i, c := range cols {
		d := &hiveserver.TColumnDesc{ColumnName: c.name, TypeDesc: c.typ.typeDesc(), Position: int32(i + 1)}
		if c.comment != "" {
			cm := c.comment
			d.Comment = &cm
		}
		s.Columns[i] = d
	}
	return s
}
