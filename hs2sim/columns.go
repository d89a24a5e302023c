package hs2sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/beltran/gohive/hiveserver"
)

// colBuf is one materialised result column. Values sit in the slice that
// matches the column's Thrift representation; a NULL keeps the zero value
// in place, as HS2's ColumnBuffer does.
type colBuf struct {
	typ   hiveType
	n     int
	nulls []bool
	bools []bool
	i8    []int8
	i16   []int16
	i32   []int32
	i64   []int64
	f64   []float64
	strs  []string
	bins  [][]byte
}

func newColBuf(t hiveType) *colBuf { return &colBuf{typ: t} }

// appendNull adds a NULL.
func (c *colBuf) appendNull() {
	c.nulls = append(c.nulls, true)
	c.n++
	switch thriftKind(c.typ) {
	case kindBool:
		c.bools = append(c.bools, false)
	case kindByte:
		c.i8 = append(c.i8, 0)
	case kindI16:
		c.i16 = append(c.i16, 0)
	case kindI32:
		c.i32 = append(c.i32, 0)
	case kindI64:
		c.i64 = append(c.i64, 0)
	case kindDouble:
		c.f64 = append(c.f64, 0)
	case kindBinary:
		c.bins = append(c.bins, []byte{})
	default:
		c.strs = append(c.strs, "")
	}
}

// appendValue adds a value as database/sql delivered it from SQLite
// (int64, float64, string, []byte, time.Time, nil), converted to the
// column's Hive type.
func (c *colBuf) appendValue(v any) error {
	if v == nil {
		c.appendNull()
		return nil
	}
	switch thriftKind(c.typ) {
	case kindBool:
		b, err := toBool(v)
		if err != nil {
			return err
		}
		c.bools = append(c.bools, b)
	case kindByte:
		n, err := toInt(v)
		if err != nil {
			return err
		}
		c.i8 = append(c.i8, int8(n))
	case kindI16:
		n, err := toInt(v)
		if err != nil {
			return err
		}
		c.i16 = append(c.i16, int16(n))
	case kindI32:
		n, err := toInt(v)
		if err != nil {
			return err
		}
		c.i32 = append(c.i32, int32(n))
	case kindI64:
		n, err := toInt(v)
		if err != nil {
			return err
		}
		c.i64 = append(c.i64, n)
	case kindDouble:
		f, err := toFloat(v)
		if err != nil {
			return err
		}
		c.f64 = append(c.f64, f)
	case kindBinary:
		switch x := v.(type) {
		case []byte:
			c.bins = append(c.bins, append([]byte{}, x...))
		default:
			c.bins = append(c.bins, []byte(toText(v, c.typ)))
		}
	default:
		c.strs = append(c.strs, toText(v, c.typ))
	}
	c.nulls = append(c.nulls, false)
	c.n++
	return nil
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	case float64:
		return x != 0, nil
	case string:
		switch strings.ToLower(x) {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
	}
	return false, fmt.Errorf("cannot convert %v to boolean", v)
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float64:
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		return strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	case []byte:
		return strconv.ParseInt(strings.TrimSpace(string(x)), 10, 64)
	}
	return 0, fmt.Errorf("cannot convert %v to an integer", v)
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case string:
		return strconv.ParseFloat(strings.TrimSpace(x), 64)
	case []byte:
		return strconv.ParseFloat(strings.TrimSpace(string(x)), 64)
	}
	return 0, fmt.Errorf("cannot convert %v to a double", v)
}

// toText renders v the way HS2 renders a value of type t as a string.
func toText(v any, t hiveType) string {
	switch x := v.(type) {
	case string:
		if t.id == hiveserver.TTypeId_DECIMAL_TYPE {
			if f, err := strconv.ParseFloat(x, 64); err == nil {
				return strconv.FormatFloat(f, 'f', t.scale, 64)
			}
		}
		return x
	case []byte:
		return string(x)
	case int64:
		if t.id == hiveserver.TTypeId_DECIMAL_TYPE {
			return strconv.FormatFloat(float64(x), 'f', t.scale, 64)
		}
		return strconv.FormatInt(x, 10)
	case float64:
		if t.id == hiveserver.TTypeId_DECIMAL_TYPE {
			return strconv.FormatFloat(x, 'f', t.scale, 64)
		}
		return formatDouble(x)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		if t.id == hiveserver.TTypeId_DATE_TYPE {
			return x.Format("2006-01-02")
		}
		return formatTimestamp(x)
	}
	return fmt.Sprint(v)
}

// formatTimestamp is Hive 3's timestamp text: seconds, then the fraction
// with trailing zeros dropped (none when zero).
func formatTimestamp(t time.Time) string {
	s := t.Format("2006-01-02 15:04:05")
	if ns := t.Nanosecond(); ns != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
	}
	return s
}

// formatDouble is Java's Double.toString closely enough for a string
// context: "1.0" rather than "1".
func formatDouble(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		switch {
		case math.IsNaN(f):
			return "NaN"
		case f > 0:
			return "Infinity"
		}
		return "-Infinity"
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// thriftKind is which TColumn variant carries a Hive type.
type tkind int

const (
	kindString tkind = iota
	kindBool
	kindByte
	kindI16
	kindI32
	kindI64
	kindDouble
	kindBinary
)

func thriftKind(t hiveType) tkind {
	switch t.id {
	case hiveserver.TTypeId_BOOLEAN_TYPE:
		return kindBool
	case hiveserver.TTypeId_TINYINT_TYPE:
		return kindByte
	case hiveserver.TTypeId_SMALLINT_TYPE:
		return kindI16
	case hiveserver.TTypeId_INT_TYPE:
		return kindI32
	case hiveserver.TTypeId_BIGINT_TYPE:
		return kindI64
	case hiveserver.TTypeId_FLOAT_TYPE, hiveserver.TTypeId_DOUBLE_TYPE:
		return kindDouble
	case hiveserver.TTypeId_BINARY_TYPE:
		return kindBinary
	}
	return kindString
}

// nullBitmap encodes NULL flags like Java's BitSet.toByteArray, which HS2
// uses: bit i%8 of byte i/8, trimmed after the last NULL (empty when none).
func nullBitmap(nulls []bool) []byte {
	last := -1
	for i := len(nulls) - 1; i >= 0; i-- {
		if nulls[i] {
			last = i
			break
		}
	}
	if last < 0 {
		return []byte{}
	}
	b := make([]byte, last/8+1)
	for i := 0; i <= last; i++ {
		if nulls[i] {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

// tcolumn returns rows [off, off+n) as a TColumn. The value slices share
// the buffer's backing arrays: the buffer is immutable once built.
func (c *colBuf) tcolumn(off, n int) *hiveserver.TColumn {
	nb := nullBitmap(c.nulls[off : off+n])
	switch thriftKind(c.typ) {
	case kindBool:
		return &hiveserver.TColumn{BoolVal: &hiveserver.TBoolColumn{Values: c.bools[off : off+n], Nulls: nb}}
	case kindByte:
		return &hiveserver.TColumn{ByteVal: &hiveserver.TByteColumn{Values: c.i8[off : off+n], Nulls: nb}}
	case kindI16:
		return &hiveserver.TColumn{I16Val: &hiveserver.TI16Column{Values: c.i16[off : off+n], Nulls: nb}}
	case kindI32:
		return &hiveserver.TColumn{I32Val: &hiveserver.TI32Column{Values: c.i32[off : off+n], Nulls: nb}}
	case kindI64:
		return &hiveserver.TColumn{I64Val: &hiveserver.TI64Column{Values: c.i64[off : off+n], Nulls: nb}}
	case kindDouble:
		return &hiveserver.TColumn{DoubleVal: &hiveserver.TDoubleColumn{Values: c.f64[off : off+n], Nulls: nb}}
	case kindBinary:
		return &hiveserver.TColumn{BinaryVal: &hiveserver.TBinaryColumn{Values: c.bins[off : off+n], Nulls: nb}}
	}
	return &hiveserver.TColumn{StringVal: &hiveserver.TStringColumn{Values: c.strs[off : off+n], Nulls: nb}}
}

// emptyTColumn is a zero-row column of type t: HS2 sends every column even
// when a fetch returns no rows.
func emptyTColumn(t hiveType) *hiveserver.TColumn { return newColBuf(t).tcolumn(0, 0) }

// columnsToRows converts a columnar batch to HS2's row-based TRowSet
// layout, used for clients below protocol V6.
func columnsToRows(cols []*hiveserver.TColumn, n int) []*hiveserver.TRow {
	rows := make([]*hiveserver.TRow, n)
	for r := 0; r < n; r++ {
		vals := make([]*hiveserver.TColumnValue, len(cols))
		for i, c := range cols {
			vals[i] = cellValue(c, r)
		}
		rows[r] = &hiveserver.TRow{ColVals: vals}
	}
	return rows
}

func isNullAt(nulls []byte, i int) bool {
	return i/8 < len(nulls) && nulls[i/8]&(1<<(i%8)) != 0
}

// cellValue is one cell in the row-based encoding: the value is left unset
// for NULL, binary travels as a string (HS2's TRow has no binary cell).
func cellValue(c *hiveserver.TColumn, r int) *hiveserver.TColumnValue {
	switch {
	case c.BoolVal != nil:
		v := &hiveserver.TBoolValue{}
		if !isNullAt(c.BoolVal.Nulls, r) {
			x := c.BoolVal.Values[r]
			v.Value = &x
		}
		return &hiveserver.TColumnValue{BoolVal: v}
	case c.ByteVal != nil:
		v := &hiveserver.TByteValue{}
		if !isNullAt(c.ByteVal.Nulls, r) {
			x := c.ByteVal.Values[r]
			v.Value = &x
		}
		return &hiveserver.TColumnValue{ByteVal: v}
	case c.I16Val != nil:
		v := &hiveserver.TI16Value{}
		if !isNullAt(c.I16Val.Nulls, r) {
			x := c.I16Val.Values[r]
			v.Value = &x
		}
		return &hiveserver.TColumnValue{I16Val: v}
	case c.I32Val != nil:
		v := &hiveserver.TI32Value{}
		if !isNullAt(c.I32Val.Nulls, r) {
			x := c.I32Val.Values[r]
			v.Value = &x
		}
		return &hiveserver.TColumnValue{I32Val: v}
	case c.I64Val != nil:
		v := &hiveserver.TI64Value{}
		if !isNullAt(c.I64Val.Nulls, r) {
			x := c.I64Val.Values[r]
			v.Value = &x
		}
		return &hiveserver.TColumnValue{I64Val: v}
	case c.DoubleVal != nil:
		v := &hiveserver.TDoubleValue{}
		if !isNullAt(c.DoubleVal.Nulls, r) {
			x := c.DoubleVal.Values[r]
			v.Value = &x
		}
		return &hiveserver.TColumnValue{DoubleVal: v}
	case c.BinaryVal != nil:
		v := &hiveserver.TStringValue{}
		if !isNullAt(c.BinaryVal.Nulls, r) {
			x := string(c.BinaryVal.Values[r])
			v.Value = &x
		}
		return &hiveserver.TColumnValue{StringVal: v}
	case c.StringVal != nil:
		v := &hiveserver.TStringValue{}
		if !isNullAt(c.StringVal.Nulls, r) {
			x := c.StringVal.Values[r]
			v.Value = &x
		}
		return &hiveserver.TColumnValue{StringVal: v}
	}
	return &hiveserver.TColumnValue{StringVal: &hiveserver.TStringValue{}}
}
