package sqlcli

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// batch is a checked RowBatch: every non-NULL row of every column has a
// value, so formatters index without further checks.
type batch struct {
	rows int
	cols []vector
}

// vector is one column of a batch; only the slice of kind is set.
type vector struct {
	nulls []byte
	kind  hiveqv1.ColumnKind
	// floatBits is 32 for a Hive float column: HS2 widens floats to
	// doubles, and the shortest float32 text (1.1, not 1.100000023841858)
	// is the value that was stored.
	floatBits int
	bools     []bool
	int32s    []int32
	int64s    []int64
	doubles   []float64
	strings   []string
	bytes     [][]byte
	// A string or bytes column in the compact layout: value i is
	// data[offs[i]:offs[i+1]] (buffered is set).
	buffered bool
	data     []byte
	offs     []uint32
}

// str is string value i in either layout.
func (v *vector) str(i int) string {
	if v.buffered {
		return string(v.data[v.offs[i]:v.offs[i+1]])
	}
	return v.strings[i]
}

// bin is bytes value i in either layout.
func (v *vector) bin(i int) []byte {
	if v.buffered {
		return v.data[v.offs[i]:v.offs[i+1]]
	}
	return v.bytes[i]
}

func (v *vector) isNull(i int) bool {
	b := i / 8
	return b < len(v.nulls) && v.nulls[b]&(1<<(i%8)) != 0
}

func (v *vector) len() int {
	switch v.kind {
	case hiveqv1.ColumnKind_COLUMN_KIND_BOOL:
		return len(v.bools)
	case hiveqv1.ColumnKind_COLUMN_KIND_INT32:
		return len(v.int32s)
	case hiveqv1.ColumnKind_COLUMN_KIND_INT64:
		return len(v.int64s)
	case hiveqv1.ColumnKind_COLUMN_KIND_DOUBLE:
		return len(v.doubles)
	case hiveqv1.ColumnKind_COLUMN_KIND_STRING, hiveqv1.ColumnKind_COLUMN_KIND_BYTES:
		if v.buffered {
			return max(len(v.offs)-1, 0)
		}
		if v.kind == hiveqv1.ColumnKind_COLUMN_KIND_STRING {
			return len(v.strings)
		}
		return len(v.bytes)
	}
	return 0
}

// setBuffer takes a compact string or bytes column, checking its offsets
// (and, for strings, UTF-8) once so that values index without checks.
func (v *vector) setBuffer(kind hiveqv1.ColumnKind, b *hiveqv1.BufferValues) error {
	v.kind, v.buffered, v.data, v.offs = kind, true, b.GetData(), b.GetOffsets()
	if len(v.offs) == 0 {
		return nil
	}
	if v.offs[0] != 0 {
		return fmt.Errorf("first offset %d, want 0", v.offs[0])
	}
	for i := 1; i < len(v.offs); i++ {
		if v.offs[i] < v.offs[i-1] {
			return fmt.Errorf("offset %d decreases", i)
		}
	}
	if int64(v.offs[len(v.offs)-1]) > int64(len(v.data)) {
		return fmt.Errorf("offsets past the %d-byte data", len(v.data))
	}
	if kind == hiveqv1.ColumnKind_COLUMN_KIND_STRING && !utf8.Valid(v.data) {
		return errors.New("string data is not UTF-8")
	}
	return nil
}

// decodeBatch checks b against the schema. A vector may be
// shorter than row_count only where the rows past its end are NULL, and a
// vector with no values oneof only when all its rows are NULL.
func decodeBatch(b *hiveqv1.RowBatch, schema []*hiveqv1.ColumnSchema) (*batch, error) {
	ncols := len(schema)
	rows := int(b.GetRowCount())
	if rows < 0 {
		return nil, fmt.Errorf("batch at row %d: row_count %d", b.GetStartRow(), rows)
	}
	if len(b.GetColumns()) != ncols {
		return nil, fmt.Errorf("batch at row %d has %d columns, the schema %d", b.GetStartRow(), len(b.GetColumns()), ncols)
	}
	out := &batch{rows: rows, cols: make([]vector, ncols)}
	for c, cv := range b.GetColumns() {
		v := vector{nulls: cv.GetNulls(), floatBits: 64}
		var err error
		if strings.EqualFold(strings.TrimSpace(schema[c].GetType()), "float") {
			v.floatBits = 32
		}
		switch vals := cv.GetValues().(type) {
		case *hiveqv1.ColumnVector_BoolValues:
			v.kind, v.bools = hiveqv1.ColumnKind_COLUMN_KIND_BOOL, vals.BoolValues.GetValues()
		case *hiveqv1.ColumnVector_Int32Values:
			v.kind, v.int32s = hiveqv1.ColumnKind_COLUMN_KIND_INT32, vals.Int32Values.GetValues()
		case *hiveqv1.ColumnVector_Int64Values:
			v.kind, v.int64s = hiveqv1.ColumnKind_COLUMN_KIND_INT64, vals.Int64Values.GetValues()
		case *hiveqv1.ColumnVector_DoubleValues:
			v.kind, v.doubles = hiveqv1.ColumnKind_COLUMN_KIND_DOUBLE, vals.DoubleValues.GetValues()
		case *hiveqv1.ColumnVector_StringValues:
			v.kind, v.strings = hiveqv1.ColumnKind_COLUMN_KIND_STRING, vals.StringValues.GetValues()
		case *hiveqv1.ColumnVector_BytesValues:
			v.kind, v.bytes = hiveqv1.ColumnKind_COLUMN_KIND_BYTES, vals.BytesValues.GetValues()
		case *hiveqv1.ColumnVector_Fixed32Values:
			v.kind, v.int32s = hiveqv1.ColumnKind_COLUMN_KIND_INT32, vals.Fixed32Values.GetValues()
		case *hiveqv1.ColumnVector_Fixed64Values:
			v.kind, v.int64s = hiveqv1.ColumnKind_COLUMN_KIND_INT64, vals.Fixed64Values.GetValues()
		case *hiveqv1.ColumnVector_StringBuffer:
			err = v.setBuffer(hiveqv1.ColumnKind_COLUMN_KIND_STRING, vals.StringBuffer)
		case *hiveqv1.ColumnVector_BytesBuffer:
			err = v.setBuffer(hiveqv1.ColumnKind_COLUMN_KIND_BYTES, vals.BytesBuffer)
		}
		if err != nil {
			return nil, fmt.Errorf("batch at row %d, column %d: %w", b.GetStartRow(), c+1, err)
		}
		if len(v.nulls) > 0 && len(v.nulls) < (rows+7)/8 {
			return nil, fmt.Errorf("batch at row %d, column %d: NULL bitmap of %d bytes for %d rows", b.GetStartRow(), c+1, len(v.nulls), rows)
		}
		for i := v.len(); i < rows; i++ {
			if !v.isNull(i) {
				return nil, fmt.Errorf("batch at row %d, column %d: %d values for %d rows", b.GetStartRow(), c+1, v.len(), rows)
			}
		}
		out.cols[c] = v
	}
	return out, nil
}

// text renders non-NULL row i as the table and CSV formats show it.
func (v *vector) text(i int) string {
	switch v.kind {
	case hiveqv1.ColumnKind_COLUMN_KIND_BOOL:
		return strconv.FormatBool(v.bools[i])
	case hiveqv1.ColumnKind_COLUMN_KIND_INT32:
		return strconv.FormatInt(int64(v.int32s[i]), 10)
	case hiveqv1.ColumnKind_COLUMN_KIND_INT64:
		return strconv.FormatInt(v.int64s[i], 10)
	case hiveqv1.ColumnKind_COLUMN_KIND_DOUBLE:
		return string(appendFloat(nil, v.doubles[i], v.floatBits))
	case hiveqv1.ColumnKind_COLUMN_KIND_STRING:
		return v.str(i)
	case hiveqv1.ColumnKind_COLUMN_KIND_BYTES:
		return base64.StdEncoding.EncodeToString(v.bin(i))
	}
	return ""
}

// appendJSON appends row i as a JSON value.
func (v *vector) appendJSON(b []byte, i int) []byte {
	if v.isNull(i) {
		return append(b, "null"...)
	}
	switch v.kind {
	case hiveqv1.ColumnKind_COLUMN_KIND_BOOL:
		return strconv.AppendBool(b, v.bools[i])
	case hiveqv1.ColumnKind_COLUMN_KIND_INT32:
		return strconv.AppendInt(b, int64(v.int32s[i]), 10)
	case hiveqv1.ColumnKind_COLUMN_KIND_INT64:
		return strconv.AppendInt(b, v.int64s[i], 10)
	case hiveqv1.ColumnKind_COLUMN_KIND_DOUBLE:
		f := v.doubles[i]
		if math.IsNaN(f) || math.IsInf(f, 0) {
			// JSON has no NaN or Infinity: they go out as strings.
			return appendJSONString(b, string(appendFloat(nil, f, 64)))
		}
		return appendFloat(b, f, v.floatBits)
	case hiveqv1.ColumnKind_COLUMN_KIND_STRING:
		return appendJSONString(b, v.str(i))
	case hiveqv1.ColumnKind_COLUMN_KIND_BYTES:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.bin(i))
		return append(b, '"')
	}
	return append(b, "null"...)
}

// appendFloat writes the shortest text that reads back as f, in decimal
// notation between 1e-6 and 1e21 and in exponent notation outside (as
// JavaScript and encoding/json do); NaN and infinities as Java spells them.
// bits is 64, or 32 to print f as the float32 it was widened from.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	if bits == 32 && float64(float32(f)) != f {
		bits = 64 // not a widened float32 after all: keep every digit
	}
	a := math.Abs(f)
	if bits == 32 {
		a = float64(float32(a))
	}
	format := byte('f')
	if a != 0 && (bits == 64 && (a < 1e-6 || a >= 1e21) || bits == 32 && (float32(a) < 1e-6 || float32(a) >= 1e21)) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 -> 1e-7
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Strings from protobuf are
// valid UTF-8, so only quotes, backslashes and control characters need
// escaping; U+2028/U+2029 are escaped too so the output is also valid
// JavaScript.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		var esc string
		switch {
		case c == '"':
			esc = `\"`
		case c == '\\':
			esc = `\\`
		case c == '\n':
			esc = `\n`
		case c == '\r':
			esc = `\r`
		case c == '\t':
			esc = `\t`
		case c < 0x20:
			esc = `\u00` + string(hexDigits[c>>4]) + string(hexDigits[c&0xf])
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[s[i+2]&0xf])
			i += 2
			start = i + 1
			continue
		default:
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, esc...)
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
