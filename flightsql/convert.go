package flightsql

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/memview"
)

// record builds an Arrow record batch from an hs2 batch, column by column
// straight from its typed vectors: no per-value boxing. hs2 never reuses a
// batch's buffers, and string and bytes vectors are already Arrow's
// layout (data plus int32 offsets), so fixed-width, string and binary
// columns wrap the batch's memory without copying; only narrowed,
// boolean and parsed (decimal, date, timestamp) columns are built anew.
func record(schema *arrow.Schema, cols []column, b *hs2.Batch) (arrow.RecordBatch, error) {
	if len(b.Columns) != len(cols) {
		return nil, fmt.Errorf("batch has %d columns, the schema %d", len(b.Columns), len(cols))
	}
	arrs := make([]arrow.Array, len(cols))
	release := func() {
		for _, a := range arrs {
			if a != nil {
				a.Release()
			}
		}
	}
	for i := range cols {
		v := &b.Columns[i]
		if err := cols[i].check(v); err != nil {
			release()
			return nil, err
		}
		a, err := cols[i].array(v, b.Rows)
		if err != nil {
			release()
			return nil, err
		}
		arrs[i] = a
	}
	rec := array.NewRecordBatch(schema, arrs, int64(b.Rows))
	release() // the record holds its own references
	return rec, nil
}

// validity turns HS2's NULL bitmap (bit set: NULL; LSB first, as
// Arrow's) into Arrow's validity bitmap (bit set: valid), 8 bytes at a
// time; nil when no row is NULL (Arrow then needs no bitmap). Bytes past
// nulls count as valid rows.
func validity(nulls []byte, n int) (*memory.Buffer, int) {
	if len(nulls) == 0 {
		return nil, 0
	}
	buf := newBuffer(bitmapBytes(n))
	out := buf.Bytes()
	in := nulls[:min(len(nulls), len(out))]
	invalid := 0
	i := 0
	for ; i+8 <= len(in); i += 8 {
		x := binary.LittleEndian.Uint64(in[i:])
		invalid += bits.OnesCount64(x)
		binary.LittleEndian.PutUint64(out[i:], ^x)
	}
	for ; i < len(out); i++ {
		var x byte
		if i < len(in) {
			x = in[i]
		}
		invalid += bits.OnesCount8(x)
		out[i] = ^x
	}
	if r := n % 8; r != 0 {
		last := &out[len(out)-1]
		invalid -= bits.OnesCount8(^*last &^ byte(1<<r-1)) // NULL bits past row n
		*last &= byte(1<<r - 1)
	}
	if invalid == 0 {
		buf.Release()
		return nil, 0
	}
	return buf, invalid
}

// packBools writes vals as an Arrow boolean bitmap (LSB first) into out,
// which holds at least bitmapBytes(len(vals)) zeroed bytes. Eight bools
// (bytes 0 or 1) are one little-endian word; the multiply moves byte k's
// low bit to bit 56+k, with no carries, so the top byte is the packed
// eight.
func packBools(out []byte, vals []bool) {
	raw := memview.Bytes(vals)
	i := 0
	for ; i+8 <= len(raw); i += 8 {
		out[i/8] = byte((binary.LittleEndian.Uint64(raw[i:]) * 0x0102040810204080) >> 56)
	}
	for ; i < len(raw); i++ {
		out[i/8] |= raw[i] << (i % 8)
	}
}

func bitmapBytes(n int) int { return (n + 7) / 8 }

// fixed wraps vals' memory (no copy) as an Arrow buffer.
func fixed[T any](vals []T) *memory.Buffer {
	return memory.NewBufferBytes(memview.Bytes(vals))
}

func narrow[T int8 | int16 | float32, S int32 | float64](vals []S) *memory.Buffer {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i] = T(v)
	}
	return fixed(out)
}

// parseEach parses the first n strings of v, which HS2 renders as text,
// with parse; a NULL slot stays the zero value.
func parseEach[T any](c column, v *hs2.Vector, n int, parse func(string) (T, error)) ([]T, error) {
	out := make([]T, n)
	for i := range n {
		if v.IsNull(i) {
			continue
		}
		x, err := parse(string(v.At(i)))
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.field.Name, err)
		}
		out[i] = x
	}
	return out, nil
}

// array converts one vector of n rows.
func (c column) array(v *hs2.Vector, n int) (arrow.Array, error) {
	valid, nulls := validity(v.Nulls, n)
	var data *memory.Buffer
	var extra []*memory.Buffer
	switch c.to {
	case tBool:
		data = newBuffer(bitmapBytes(n))
		packBools(data.Bytes(), v.Bools[:n])
	case tInt8:
		data = narrow[int8](v.Int32s[:n])
	case tInt16:
		data = narrow[int16](v.Int32s[:n])
	case tInt32:
		data = fixed(v.Int32s[:n])
	case tInt64:
		data = fixed(v.Int64s[:n])
	case tFloat32:
		data = narrow[float32](v.Doubles[:n])
	case tFloat64:
		data = fixed(v.Doubles[:n])
	case tUTF8, tBinary:
		offsets, bytes := varBuffers(v, n)
		data, extra = offsets, []*memory.Buffer{bytes}
	case tDecimal:
		out, err := parseEach(c, v, n, func(s string) (decimal128.Num, error) { return parseDecimal(s, c.prec, c.scale) })
		if err != nil {
			return nil, err
		}
		data = fixed(out)
	case tDate:
		out, err := parseEach(c, v, n, parseDate)
		if err != nil {
			return nil, err
		}
		data = fixed(out)
	case tTimestamp:
		out, err := parseEach(c, v, n, parseTimestamp)
		if err != nil {
			return nil, err
		}
		data = fixed(out)
	default:
		return nil, fmt.Errorf("column %q: no conversion", c.field.Name)
	}
	bufs := append([]*memory.Buffer{valid, data}, extra...)
	d := array.NewData(c.field.Type, n, bufs, nil, nulls, 0)
	defer d.Release()
	for _, b := range bufs {
		if b != nil {
			b.Release() // d holds them now; recycled buffers go back when it lets go
		}
	}
	return array.MakeFromData(d), nil
}

// varBuffers wraps the first n values of a string or bytes vector as
// Arrow's offsets and data buffers: the vector's own memory when its
// offsets start at 0, else rebased offsets (4 bytes a row) over the same
// data.
func varBuffers(v *hs2.Vector, n int) (*memory.Buffer, *memory.Buffer) {
	if len(v.Offsets) == 0 {
		return fixed(make([]int32, n+1)), memory.NewBufferBytes(nil)
	}
	offs := v.Offsets[:n+1]
	base := offs[0]
	if base != 0 {
		rebased := make([]int32, n+1)
		for i, o := range offs {
			rebased[i] = o - base
		}
		offs = rebased
	}
	return fixed(offs), memory.NewBufferBytes(v.Data[base : int(base)+int(offs[n])])
}

// parseDecimal reads HS2's decimal text ("-12.50", "1E+3" never: Hive
// renders plain digits) at the column's scale.
func parseDecimal(s string, prec, scale int32) (decimal128.Num, error) {
	t := strings.TrimSpace(s)
	neg := false
	if t != "" && (t[0] == '-' || t[0] == '+') {
		neg = t[0] == '-'
		t = t[1:]
	}
	intPart, frac, _ := strings.Cut(t, ".")
	if intPart == "" && frac == "" {
		return decimal128.Num{}, fmt.Errorf("bad decimal %q", s)
	}
	if int32(len(frac)) > scale {
		frac = frac[:scale] // Hive already rounds to the type's scale
	}
	digits := intPart + frac + strings.Repeat("0", int(scale)-len(frac))
	if len(digits) <= 18 {
		var v int64
		for _, r := range digits {
			if r < '0' || r > '9' {
				return decimal128.Num{}, fmt.Errorf("bad decimal %q", s)
			}
			v = v*10 + int64(r-'0')
		}
		if neg {
			v = -v
		}
		return decimal128.FromI64(v), nil
	}
	bi, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return decimal128.Num{}, fmt.Errorf("bad decimal %q", s)
	}
	if neg {
		bi.Neg(bi)
	}
	n := decimal128.FromBigInt(bi)
	if !n.FitsInPrecision(prec) {
		return decimal128.Num{}, fmt.Errorf("decimal %q does not fit decimal(%d,%d)", s, prec, scale)
	}
	return n, nil
}

// parseDate reads "YYYY-MM-DD" as days since 1970-01-01.
func parseDate(s string) (int32, error) {
	if len(s) == 10 && s[4] == '-' && s[7] == '-' {
		y, ok1 := atoi(s[0:4])
		m, ok2 := atoi(s[5:7])
		d, ok3 := atoi(s[8:10])
		if ok1 && ok2 && ok3 && m >= 1 && m <= 12 && d >= 1 && d <= 31 {
			return int32(daysFromCivil(y, m, d)), nil
		}
	}
	t, err := time.Parse("2006-01-02", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("bad date %q", s)
	}
	return int32(t.Unix() / 86400), nil
}

// parseTimestamp reads "YYYY-MM-DD HH:MM:SS[.fffffffff]" as microseconds
// since the epoch, zone-less (Hive's timestamps are local date-times).
func parseTimestamp(s string) (int64, error) {
	if len(s) >= 19 && s[10] == ' ' && s[13] == ':' && s[16] == ':' {
		days, err := parseDate(s[:10])
		hh, ok1 := atoi(s[11:13])
		mm, ok2 := atoi(s[14:16])
		ss, ok3 := atoi(s[17:19])
		if err == nil && ok1 && ok2 && ok3 {
			us := int64(0)
			if len(s) > 19 {
				if s[19] != '.' {
					return 0, fmt.Errorf("bad timestamp %q", s)
				}
				frac := s[20:]
				for i := 0; i < 6; i++ {
					us *= 10
					if i < len(frac) {
						if frac[i] < '0' || frac[i] > '9' {
							return 0, fmt.Errorf("bad timestamp %q", s)
						}
						us += int64(frac[i] - '0')
					}
				}
			}
			secs := int64(days)*86400 + int64(hh)*3600 + int64(mm)*60 + int64(ss)
			if secs > math.MaxInt64/1_000_000 || secs < math.MinInt64/1_000_000 {
				return 0, fmt.Errorf("timestamp %q out of range", s)
			}
			return secs*1e6 + us, nil
		}
	}
	return 0, fmt.Errorf("bad timestamp %q", s)
}

func atoi(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

// daysFromCivil is days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
