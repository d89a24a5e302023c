package hs2sim

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
	"github.com/hiveqd/hiveqd/hs2sim/synth"
)

func checkSynthRow(t *testing.T, r int64, i *int32, d *float64, s *string, b *bool) {
	t.Helper()
	want := synth.RowAt(r)
	if !reflect.DeepEqual(want.I, i) || !reflect.DeepEqual(want.D, d) || !reflect.DeepEqual(want.S, s) || !reflect.DeepEqual(want.B, b) {
		t.Fatalf("row %d: got %v %v %v %v, want %v %v %v %v", r, deref(i), deref(d), deref(s), deref(b),
			deref(want.I), deref(want.D), deref(want.S), deref(want.B))
	}
}

// TestSyntheticRows checks every value and NULL of a synthetic table
// against the synth package over a raw client, across fetch boundaries.
func TestSyntheticRows(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	op, _ := c.run(h, "SELECT * FROM synth.rows_25000")
	defer c.closeOp(op)
	var r int64
	for {
		f := c.fetch(op, 3333, hiveserver.TFetchOrientation_FETCH_NEXT)
		ok(t, f.Status)
		cols := f.Results.Columns
		n := len(cols[0].I64Val.Values)
		if n == 0 {
			break
		}
		for k := 0; k < n; k++ {
			if cols[0].I64Val.Values[k] != r {
				t.Fatalf("row %d: id %d", r, cols[0].I64Val.Values[k])
			}
			var (
				i *int32
				d *float64
				s *string
				b *bool
			)
			if !isNullAt(cols[1].I32Val.Nulls, k) {
				i = &cols[1].I32Val.Values[k]
			}
			if !isNullAt(cols[2].DoubleVal.Nulls, k) {
				d = &cols[2].DoubleVal.Values[k]
			}
			if !isNullAt(cols[3].StringVal.Nulls, k) {
				s = &cols[3].StringVal.Values[k]
			}
			if !isNullAt(cols[4].BoolVal.Nulls, k) {
				b = &cols[4].BoolVal.Values[k]
			}
			checkSynthRow(t, r, i, d, s, b)
			r++
		}
	}
	if r != 25000 {
		t.Errorf("%d rows, want 25000", r)
	}
}

func TestSyntheticStatements(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	if got := c.query(h, "SELECT count(*) FROM synth.rows_10000000"); got[0][0] != "10000000" {
		t.Errorf("count: %v", got)
	}
	if got := c.query(h, "select s, id from SYNTH.rows_100 limit 3"); !reflect.DeepEqual(got, [][]string{{"s-0", "0"}, {"s-1", "1"}, {"s-2", "2"}}) {
		t.Errorf("columns + limit: %v", got)
	}
	if got := c.query(h, "SELECT * FROM synth.rows_0"); len(got) != 0 {
		t.Errorf("rows_0: %v", got)
	}
	c.query(h, "USE synth")
	if got := c.query(h, "SELECT count(*) FROM wide_123"); got[0][0] != "123" {
		t.Errorf("unqualified: %v", got)
	}
	r := c.exec(h, "SELECT id FROM rows_10 WHERE id > 3", true)
	if r.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS {
		t.Errorf("unsupported synth statement: %v", r.Status)
	}
	r = c.exec(h, "SELECT nope FROM rows_10", true)
	if r.Status.GetErrorCode() != 10004 {
		t.Errorf("bad synth column: %v", r.Status)
	}

	op, _ := c.run(h, "SELECT * FROM wide_50")
	defer c.closeOp(op)
	f := c.fetch(op, 100, hiveserver.TFetchOrientation_FETCH_NEXT)
	ok(t, f.Status)
	for k := 1; k <= 3; k++ {
		col := f.Results.Columns[k].StringVal
		for r := int64(0); r < 50; r++ {
			null := isNullAt(col.Nulls, int(r))
			if null != synth.WideNull(k, r) || !null && col.Values[r] != synth.W(k, r) {
				t.Fatalf("w%d row %d wrong", k, r)
			}
			if l := len(synth.W(k, r)); l < 1024 || l > 4096 {
				t.Fatalf("w%d row %d: %d bytes", k, r, l)
			}
		}
	}
}

func TestPacing(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	drain := func(stmt string, perFetch int) (int, time.Duration) {
		op, _ := c.run(h, stmt)
		defer c.closeOp(op)
		start := time.Now()
		n := 0
		for {
			f := c.fetch(op, 10000, hiveserver.TFetchOrientation_FETCH_NEXT)
			ok(t, f.Status)
			got := len(f.Results.Columns[0].I64Val.Values)
			if got == 0 {
				return n, time.Since(start)
			}
			if got > perFetch {
				t.Errorf("a paced fetch returned %d rows, more than a second's worth", got)
			}
			n += got
		}
	}
	s.SetPacing(500)
	if n, el := drain("SELECT * FROM synth.rows_1000", 500); n != 1000 || el < 1900*time.Millisecond {
		t.Errorf("500 rows/s: %d rows in %v", n, el)
	}
	s.SetPacing(0)
	c.query(h, "SET hs2sim.rows_per_second=2000")
	c.query(h, "SET hs2sim.fetch_delay_ms=100")
	// 1000 rows at 2000/s (0.5s) plus 100ms per fetch (two fetches with rows, one empty)
	if n, el := drain("SELECT * FROM synth.rows_1000", 2000); n != 1000 || el < 750*time.Millisecond {
		t.Errorf("session pacing: %d rows in %v", n, el)
	}
	// Pacing is for synthetic tables only.
	start := time.Now()
	c.query(h, "SELECT * FROM employees")
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("sample query took %v", el)
	}
}

// TestFastEncodingMatchesGenerated: the bulk FetchResults encoder writes
// exactly what the generated Thrift code writes.
func TestFastEncodingMatchesGenerated(t *testing.T) {
	src := &synthSource{kind: synth.Rows, total: 100, cols: []int{0, 1, 2, 3, 4}}
	cols, _ := src.read(0, 37)
	wide, _ := (&synthSource{kind: synth.Wide, total: 10, cols: []int{0, 1, 2, 3}}).read(0, 10)
	mem := rowsPlan([]column{{typ: tTinyint}, {typ: tSmallint}, {typ: tBinary}, {typ: tDecimal()}},
		[][]any{{int64(1), int64(2), []byte("x"), "1.5"}, {nil, nil, nil, nil}})
	mcols, _ := mem.src.read(0, 2)
	no, yes := false, true
	for _, resp := range []*hiveserver.TFetchResultsResp{
		{Status: okStatus(), HasMoreRows: &no, Results: &hiveserver.TRowSet{Rows: []*hiveserver.TRow{}, Columns: cols}},
		{Status: okStatus(), HasMoreRows: &yes, Results: &hiveserver.TRowSet{StartRowOffset: 42, Rows: []*hiveserver.TRow{}, Columns: wide}},
		{Status: okStatus(), Results: &hiveserver.TRowSet{Rows: []*hiveserver.TRow{}, Columns: mcols}},
		{Status: okStatus(), Results: &hiveserver.TRowSet{Rows: []*hiveserver.TRow{}, Columns: []*hiveserver.TColumn{}}},
	} {
		if !fastEncodable(resp) {
			t.Fatal("not fast-encodable")
		}
		buf := thrift.NewTMemoryBuffer()
		p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})
		if err := (&hiveserver.TCLIServiceFetchResultsResult{Success: resp}).Write(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		if got := appendFetchResult(nil, resp); !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("encodings differ: %d vs %d bytes", len(got), buf.Len())
		}
	}
}

func tDecimal() hiveType { return decimalType(10, 2) }
