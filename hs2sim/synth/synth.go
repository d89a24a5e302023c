// Package synth defines the simulator's synthetic tables: rows are pure
// functions of their 0-based index, so a test can check any value it
// receives without storing anything, and the simulator can generate rows in
// columnar form far faster than a gateway can relay them.
//
// Two families live in the Hive database "synth":
//
//	synth.rows_<N>  id bigint, i int, d double, s string, b boolean
//	synth.wide_<N>  id bigint, w1 string, w2 string, w3 string (1–4 KiB each)
//
// where N is the table's row count.
package synth

import (
	"strconv"
	"strings"
)

// Database is the Hive database holding the synthetic tables.
const Database = "synth"

// Kind is a synthetic table family.
type Kind int

const (
	Rows Kind = iota + 1 // synth.rows_<N>
	Wide                 // synth.wide_<N>
)

// Column is a synthetic column's name and Hive type.
type Column struct {
	Name string
	Type string
}

// RowsColumns are the columns of synth.rows_<N>.
var RowsColumns = []Column{{"id", "bigint"}, {"i", "int"}, {"d", "double"}, {"s", "string"}, {"b", "boolean"}}

// WideColumns are the columns of synth.wide_<N>.
var WideColumns = []Column{{"id", "bigint"}, {"w1", "string"}, {"w2", "string"}, {"w3", "string"}}

// Columns returns the columns of a family.
func (k Kind) Columns() []Column {
	if k == Wide {
		return WideColumns
	}
	return RowsColumns
}

// Prefix is the table-name prefix of a family ("rows_" or "wide_").
func (k Kind) Prefix() string {
	if k == Wide {
		return "wide_"
	}
	return "rows_"
}

// TableName is the table of kind k with n rows, e.g. "rows_1000".
func TableName(k Kind, n int64) string { return k.Prefix() + strconv.FormatInt(n, 10) }

// ParseTable parses a synthetic table name such as "rows_1000" or
// "wide_10" (case-insensitive). N may be 0.
func ParseTable(name string) (k Kind, n int64, ok bool) {
	name = strings.ToLower(name)
	switch {
	case strings.HasPrefix(name, "rows_"):
		k = Rows
	case strings.HasPrefix(name, "wide_"):
		k = Wide
	default:
		return 0, 0, false
	}
	digits := name[5:]
	if digits == "" || len(digits) > 15 {
		return 0, 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return k, n, true
}

// Null rules: column c of row r is NULL when r % m == k for these (m, k).
// id is never NULL. The moduli are coprime so every combination occurs.

// INull reports whether column i of row r is NULL.
func INull(r int64) bool { return r%7 == 3 }

// DNull reports whether column d of row r is NULL.
func DNull(r int64) bool { return r%11 == 5 }

// SNull reports whether column s of row r is NULL.
func SNull(r int64) bool { return r%13 == 7 }

// BNull reports whether column b of row r is NULL.
func BNull(r int64) bool { return r%17 == 9 }

// ID is column id of row r (both families).
func ID(r int64) int64 { return r }

// I is column i of row r when not NULL: r mod 1,000,000 shifted to include
// negative values.
func I(r int64) int32 { return int32(r%1_000_000) - 500_000 }

// D is column d of row r when not NULL.
func D(r int64) float64 { return float64(r) * 0.25 }

// S is column s of row r when not NULL: "s-<r>".
func S(r int64) string { return "s-" + strconv.FormatInt(r, 10) }

// AppendS appends S(r) to b without allocating.
func AppendS(b []byte, r int64) []byte { return strconv.AppendInt(append(b, "s-"...), r, 10) }

// B is column b of row r when not NULL.
func B(r int64) bool { return r%3 == 0 }

// Row is one row of synth.rows_<N>; a nil field is NULL.
type Row struct {
	ID int64
	I  *int32
	D  *float64
	S  *string
	B  *bool
}

// RowAt returns row r of synth.rows_<N>.
func RowAt(r int64) Row {
	row := Row{ID: ID(r)}
	if !INull(r) {
		v := I(r)
		row.I = &v
	}
	if !DNull(r) {
		v := D(r)
		row.D = &v
	}
	if !SNull(r) {
		v := S(r)
		row.S = &v
	}
	if !BNull(r) {
		v := B(r)
		row.B = &v
	}
	return row
}

// Wide columns w1..w3 are slices of one fixed text, so generating them costs
// no allocation: Go substrings share their backing array.
const (
	wideMin      = 1024
	wideMax      = 4096
	wideAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
)

var wideText = strings.Repeat(wideAlphabet, (wideMax+len(wideAlphabet))/len(wideAlphabet)+1)

// WideLen is the length in bytes of column w<k> (k = 1..3) of row r.
func WideLen(k int, r int64) int {
	return wideMin + int((r*7919+int64(k)*104729)%int64(wideMax-wideMin+1))
}

// WideNull reports whether column w<k> of row r is NULL: w2 when r%10 == 9,
// w3 when r%5 == 4; w1 never.
func WideNull(k int, r int64) bool {
	switch k {
	case 2:
		return r%10 == 9
	case 3:
		return r%5 == 4
	}
	return false
}

// W is column w<k> (k = 1..3) of row r when not NULL.
func W(k int, r int64) string {
	off := int((r + int64(k)*17) % int64(len(wideAlphabet)))
	return wideText[off : off+WideLen(k, r)]
}
