package synth

import (
	"strings"
	"testing"
)

func TestParseTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind Kind
		n    int64
		ok   bool
	}{
		{"rows_1000", Rows, 1000, true},
		{"ROWS_0", Rows, 0, true},
		{"wide_10000000", Wide, 10000000, true},
		{"rows_", 0, 0, false},
		{"rows_1e6", 0, 0, false},
		{"rows_-1", 0, 0, false},
		{"other_5", 0, 0, false},
		{"rows_1234567890123456", 0, 0, false},
	} {
		k, n, ok := ParseTable(tc.name)
		if k != tc.kind || n != tc.n || ok != tc.ok {
			t.Errorf("%s: %v %d %v", tc.name, k, n, ok)
		}
		if ok && TableName(k, n) != strings.ToLower(tc.name) {
			t.Errorf("TableName(%v, %d) = %s", k, n, TableName(k, n))
		}
	}
}

func TestRowsValues(t *testing.T) {
	r := RowAt(3) // i is NULL at r%7 == 3
	if r.ID != 3 || r.I != nil || *r.D != 0.75 || *r.S != "s-3" || *r.B != true {
		t.Errorf("row 3: %+v", r)
	}
	nulls := map[string]int{}
	for i := int64(0); i < 10000; i++ {
		r := RowAt(i)
		if r.I == nil {
			nulls["i"]++
		}
		if r.D == nil {
			nulls["d"]++
		}
		if r.S == nil {
			nulls["s"]++
		} else if string(AppendS(nil, i)) != *r.S {
			t.Fatalf("AppendS(%d) differs", i)
		}
		if r.B == nil {
			nulls["b"]++
		}
	}
	for col, every := range map[string]int{"i": 7, "d": 11, "s": 13, "b": 17} {
		if n := nulls[col]; n < 10000/every-1 || n > 10000/every+1 {
			t.Errorf("%s: %d NULLs in 10000 rows", col, n)
		}
	}
}

func TestWideValues(t *testing.T) {
	for r := int64(0); r < 5000; r++ {
		for k := 1; k <= 3; k++ {
			w := W(k, r)
			if len(w) < 1024 || len(w) > 4096 || len(w) != WideLen(k, r) {
				t.Fatalf("w%d row %d: %d bytes", k, r, len(w))
			}
		}
	}
	if WideNull(1, 9) || !WideNull(2, 9) || !WideNull(3, 4) {
		t.Error("wide null rule")
	}
}
