package query

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hiveqd/hiveqd/hs2"
)

// randomBatch builds a batch of every kind with NULLs sprinkled in and
// string widths drawn up to maxWidth.
func randomBatch(r *rand.Rand, rows, maxWidth int) *hs2.Batch {
	b := &hs2.Batch{StartRow: 100, Rows: rows}
	kinds := []hs2.Kind{hs2.KindBool, hs2.KindInt32, hs2.KindInt64, hs2.KindDouble, hs2.KindString, hs2.KindBytes}
	for _, k := range kinds {
		v := hs2.Vector{Kind: k}
		nulls := make([]byte, (rows+7)/8)
		any := false
		for i := 0; i < rows; i++ {
			if r.IntN(5) == 0 {
				nulls[i/8] |= 1 << (i % 8)
				any = true
			}
			switch k {
			case hs2.KindBool:
				v.Bools = append(v.Bools, r.IntN(2) == 0)
			case hs2.KindInt32:
				v.Int32s = append(v.Int32s, r.Int32())
			case hs2.KindInt64:
				v.Int64s = append(v.Int64s, r.Int64())
			case hs2.KindDouble:
				v.Doubles = append(v.Doubles, r.Float64())
			case hs2.KindString, hs2.KindBytes:
				if v.Offsets == nil {
					v.Offsets = []int32{0}
				}
				v.Data = append(v.Data, strings.Repeat("x", r.IntN(maxWidth+1))...)
				v.Offsets = append(v.Offsets, int32(len(v.Data)))
			}
		}
		if any {
			v.Nulls = nulls
		}
		b.Columns = append(b.Columns, v)
	}
	return b
}

func TestSliceBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		rows, width, maxRows, maxBytes int
	}{
		{1000, 10, 10000, 1 << 20}, // fits: one slice
		{1000, 10, 100, 1 << 20},   // by rows
		{1000, 100, 10000, 8 << 10},
		{333, 5000, 10000, 64 << 10}, // 8 rows exceed the budget: cuts between rows
		{77, 100000, 10000, 100 << 10},
		{17, 10, 5, 1 << 20}, // maxRows not a multiple of 8
		{5, 3_000_000, 10000, 1 << 20},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("rows%d_width%d_rows%d_bytes%d", c.rows, c.width, c.maxRows, c.maxBytes), func(t *testing.T) {
			b := randomBatch(r, c.rows, c.width)
			next := 0
			var slices int
			err := sliceBatch(b, c.maxRows, c.maxBytes, func(sb *hs2.Batch) error {
				slices++
				if sb.StartRow != b.StartRow+int64(next) {
					t.Fatalf("slice starts at %d, want %d", sb.StartRow, b.StartRow+int64(next))
				}
				if sb.Rows < 1 || sb.Rows > c.maxRows {
					t.Fatalf("slice of %d rows, limit %d", sb.Rows, c.maxRows)
				}
				fixed, variable := rowWidth(sb.Columns)
				if est := batchBytes(sb.Columns, variable, fixed, 0, sb.Rows); sb.Rows > 1 && est > c.maxBytes {
					t.Fatalf("slice of %d rows estimated at %d bytes, limit %d", sb.Rows, est, c.maxBytes)
				}
				for ci := range sb.Columns {
					v, w := &b.Columns[ci], &sb.Columns[ci]
					if w.Len() != sb.Rows {
						t.Fatalf("column %d has %d values, slice %d rows", ci, w.Len(), sb.Rows)
					}
					if w.Nulls != nil && len(w.Nulls) != (sb.Rows+7)/8 {
						t.Fatalf("column %d bitmap is %d bytes for %d rows", ci, len(w.Nulls), sb.Rows)
					}
					anyNull := false
					for i := 0; i < sb.Rows; i++ {
						if v.IsNull(next+i) != w.IsNull(i) {
							t.Fatalf("column %d row %d: null %v, want %v", ci, next+i, w.IsNull(i), v.IsNull(next+i))
						}
						anyNull = anyNull || w.IsNull(i)
						if !w.IsNull(i) && fmt.Sprint(w.Value(i)) != fmt.Sprint(v.Value(next+i)) {
							t.Fatalf("column %d row %d differs", ci, next+i)
						}
					}
					if !anyNull && w.Nulls != nil {
						t.Fatalf("column %d: bitmap without NULLs should be nil", ci)
					}
					// Bits past the slice's rows must be clear.
					if n := sb.Rows % 8; n != 0 && w.Nulls != nil && w.Nulls[len(w.Nulls)-1]>>n != 0 {
						t.Fatalf("column %d: bits set past row %d", ci, sb.Rows)
					}
					// Aligned slices share the bitmap: no copy.
					if next%8 == 0 && w.Nulls != nil && (sb.Rows%8 == 0 || next+sb.Rows == b.Rows) && &w.Nulls[0] != &v.Nulls[next/8] {
						t.Fatalf("column %d: aligned slice copied its bitmap", ci)
					}
				}
				next += sb.Rows
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if next != b.Rows {
				t.Fatalf("slices cover %d rows, want %d", next, b.Rows)
			}
			t.Logf("%d slices", slices)
		})
	}
}

func TestSliceBatchAlignedCuts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := randomBatch(r, 4096, 50)
	err := sliceBatch(b, 10000, 32<<10, func(sb *hs2.Batch) error {
		if (sb.StartRow-b.StartRow)%8 != 0 {
			t.Fatalf("cut at row %d, not a multiple of 8", sb.StartRow-b.StartRow)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKindOf(t *testing.T) {
	for typ, want := range map[string]hs2.Kind{
		"boolean": hs2.KindBool, "tinyint": hs2.KindInt32, "smallint": hs2.KindInt32, "INT": hs2.KindInt32,
		"bigint": hs2.KindInt64, "float": hs2.KindDouble, "double": hs2.KindDouble,
		"decimal(10,2)": hs2.KindString, "varchar(20)": hs2.KindString, "char(3)": hs2.KindString,
		"string": hs2.KindString, "date": hs2.KindString, "timestamp": hs2.KindString,
		"array<int>": hs2.KindString, "map<string,int>": hs2.KindString, "binary": hs2.KindBytes,
		"interval_day_time": hs2.KindString, "void": hs2.KindString,
	} {
		if got := KindOf(typ); got != want {
			t.Errorf("KindOf(%q) = %v, want %v", typ, got, want)
		}
	}
}

func TestClassifyServer(t *testing.T) {
	for _, c := range []struct {
		state string
		code  int32
		want  Code
	}{
		{"42000", 40000, InvalidArgument}, // ParseException
		{"42000", 10004, InvalidArgument}, // invalid column
		{"42S02", 10001, NotFound},
		{"42000", 10001, NotFound},
		{"42000", 10072, NotFound},
		{"08S01", 1, Failed},
		{"", 0, Failed},
		{"", 10025, InvalidArgument},
	} {
		got, _ := classifyServer(&hs2.ServerError{SQLState: c.state, ErrorCode: c.code})
		if got != c.want {
			t.Errorf("classify(%s, %d) = %v, want %v", c.state, c.code, got, c.want)
		}
	}
}
