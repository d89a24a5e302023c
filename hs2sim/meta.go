package hs2sim

import (
	"regexp"
	"strings"

	"github.com/beltran/gohive/hiveserver"
)

// jdbcPattern compiles a JDBC metadata pattern ('%' any string, '_' any
// character) case-insensitively; empty and "*" match everything, as in HS2.
func jdbcPattern(p string) *regexp.Regexp {
	if p == "" || p == "*" {
		return regexp.MustCompile(".*")
	}
	var b strings.Builder
	b.WriteString("(?i)^")
	esc := false
	for _, r := range p {
		switch {
		case esc:
			b.WriteString(regexp.QuoteMeta(string(r)))
			esc = false
		case r == '\\':
			esc = true
		case r == '%' || r == '*':
			b.WriteString(".*")
		case r == '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func strCols(names ...string) []column {
	cols := make([]column, len(names))
	for i, n := range names {
		cols[i] = column{name: n, typ: tString}
	}
	return cols
}

func (e *engine) schemasPlan(schema string) *plan {
	re := jdbcPattern(schema)
	var rows [][]any
	for _, db := range e.cat.databases() {
		if re.MatchString(db) {
			rows = append(rows, []any{db, ""})
		}
	}
	return rowsPlan(strCols("TABLE_SCHEM", "TABLE_CATALOG"), rows)
}

func (e *engine) tablesPlan(schema, tbl string, types []string) *plan {
	sre, tre := jdbcPattern(schema), jdbcPattern(tbl)
	wantTable := len(types) == 0
	for _, t := range types {
		if strings.EqualFold(t, "TABLE") {
			wantTable = true
		}
	}
	var rows [][]any
	if wantTable {
		for _, db := range e.cat.databases() {
			if !sre.MatchString(db) {
				continue
			}
			for _, name := range e.cat.tables(db) {
				if tre.MatchString(name) {
					rows = append(rows, []any{"", db, name, "TABLE", "", nil, nil, nil, nil, nil})
				}
			}
		}
	}
	return rowsPlan(strCols("TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE", "REMARKS",
		"TYPE_CAT", "TYPE_SCHEM", "TYPE_NAME", "SELF_REFERENCING_COL_NAME", "REF_GENERATION"), rows)
}

var columnsSchema = []column{
	{name: "TABLE_CAT", typ: tString}, {name: "TABLE_SCHEM", typ: tString}, {name: "TABLE_NAME", typ: tString},
	{name: "COLUMN_NAME", typ: tString}, {name: "DATA_TYPE", typ: tInt}, {name: "TYPE_NAME", typ: tString},
	{name: "COLUMN_SIZE", typ: tInt}, {name: "BUFFER_LENGTH", typ: tTinyint}, {name: "DECIMAL_DIGITS", typ: tInt},
	{name: "NUM_PREC_RADIX", typ: tInt}, {name: "NULLABLE", typ: tInt}, {name: "REMARKS", typ: tString},
	{name: "COLUMN_DEF", typ: tString}, {name: "SQL_DATA_TYPE", typ: tInt}, {name: "SQL_DATETIME_SUB", typ: tInt},
	{name: "CHAR_OCTET_LENGTH", typ: tInt}, {name: "ORDINAL_POSITION", typ: tInt}, {name: "IS_NULLABLE", typ: tString},
	{name: "SCOPE_CATALOG", typ: tString}, {name: "SCOPE_SCHEMA", typ: tString}, {name: "SCOPE_TABLE", typ: tString},
	{name: "SOURCE_DATA_TYPE", typ: tSmallint}, {name: "IS_AUTO_INCREMENT", typ: tString},
}

// decimalDigits and precRadix follow HS2's TypeDescriptor.
func decimalDigits(t hiveType) any {
	switch t.id {
	case hiveserver.TTypeId_TINYINT_TYPE, hiveserver.TTypeId_SMALLINT_TYPE, hiveserver.TTypeId_INT_TYPE,
		hiveserver.TTypeId_BIGINT_TYPE, hiveserver.TTypeId_BOOLEAN_TYPE:
		return int64(0)
	case hiveserver.TTypeId_FLOAT_TYPE:
		return int64(7)
	case hiveserver.TTypeId_DOUBLE_TYPE:
		return int64(15)
	case hiveserver.TTypeId_DECIMAL_TYPE:
		return int64(t.scale)
	case hiveserver.TTypeId_TIMESTAMP_TYPE:
		return int64(9)
	}
	return nil
}

func precRadix(t hiveType) any {
	switch t.id {
	case hiveserver.TTypeId_TINYINT_TYPE, hiveserver.TTypeId_SMALLINT_TYPE, hiveserver.TTypeId_INT_TYPE,
		hiveserver.TTypeId_BIGINT_TYPE, hiveserver.TTypeId_DECIMAL_TYPE:
		return int64(10)
	case hiveserver.TTypeId_FLOAT_TYPE, hiveserver.TTypeId_DOUBLE_TYPE:
		return int64(2)
	}
	return nil
}

func (e *engine) columnsPlan(schema, tbl, col string) *plan {
	sre, tre, cre := jdbcPattern(schema), jdbcPattern(tbl), jdbcPattern(col)
	var rows [][]any
	for _, db := range e.cat.databases() {
		if !sre.MatchString(db) {
			continue
		}
		for _, name := range e.cat.tables(db) {
			if !tre.MatchString(name) {
				continue
			}
			t := e.cat.lookup(db, name)
			for i, c := range t.cols {
				if !cre.MatchString(c.name) {
					continue
				}
				var size any
				if n, ok := c.typ.columnSize(); ok {
					size = int64(n)
				}
				rows = append(rows, []any{nil, db, name, c.name, int64(c.typ.jdbcType()), strings.ToUpper(c.typ.String()),
					size, nil, decimalDigits(c.typ), precRadix(c.typ), int64(1), c.comment,
					nil, nil, nil, nil, int64(i + 1), "YES", nil, nil, nil, nil, "NO"})
			}
		}
	}
	return rowsPlan(columnsSchema, rows)
}

var typeInfoSchema = []column{
	{name: "TYPE_NAME", typ: tString}, {name: "DATA_TYPE", typ: tInt}, {name: "PRECISION", typ: tInt},
	{name: "LITERAL_PREFIX", typ: tString}, {name: "LITERAL_SUFFIX", typ: tString}, {name: "CREATE_PARAMS", typ: tString},
	{name: "NULLABLE", typ: tSmallint}, {name: "CASE_SENSITIVE", typ: tBoolean}, {name: "SEARCHABLE", typ: tSmallint},
	{name: "UNSIGNED_ATTRIBUTE", typ: tBoolean}, {name: "FIXED_PREC_SCALE", typ: tBoolean}, {name: "AUTO_INCREMENT", typ: tBoolean},
	{name: "LOCAL_TYPE_NAME", typ: tString}, {name: "MINIMUM_SCALE", typ: tSmallint}, {name: "MAXIMUM_SCALE", typ: tSmallint},
	{name: "SQL_DATA_TYPE", typ: tInt}, {name: "SQL_DATETIME_SUB", typ: tInt}, {name: "NUM_PREC_RADIX", typ: tInt},
}

func typeInfoPlan() *plan {
	types := []struct {
		name string
		t    hiveType
	}{
		{"VOID", hiveType{id: hiveserver.TTypeId_NULL_TYPE}}, {"BOOLEAN", tBoolean}, {"TINYINT", tTinyint},
		{"SMALLINT", tSmallint}, {"INT", tInt}, {"BIGINT", tBigint}, {"FLOAT", tFloat}, {"DOUBLE", tDouble},
		{"STRING", tString}, {"CHAR", hiveType{id: hiveserver.TTypeId_CHAR_TYPE, length: 255}},
		{"VARCHAR", hiveType{id: hiveserver.TTypeId_VARCHAR_TYPE, length: 65535}}, {"DATE", tDate},
		{"TIMESTAMP", tTimestamp}, {"BINARY", tBinary}, {"DECIMAL", decimalType(38, 18)},
	}
	var rows [][]any
	for _, ty := range types {
		var prec any
		if n, ok := ty.t.columnSize(); ok {
			prec = int64(n)
		}
		caseSensitive := ty.t.id == hiveserver.TTypeId_STRING_TYPE || ty.t.id == hiveserver.TTypeId_CHAR_TYPE ||
			ty.t.id == hiveserver.TTypeId_VARCHAR_TYPE
		rows = append(rows, []any{ty.name, int64(ty.t.jdbcType()), prec, nil, nil, nil, int64(1), caseSensitive,
			int64(3), false, false, false, nil, int64(0), int64(0), nil, nil, precRadix(ty.t)})
	}
	return rowsPlan(typeInfoSchema, rows)
}
