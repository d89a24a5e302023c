package query_test

import (
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/query"
)

// Issue 12.9: Limits.DefaultFetchSize is the fetch size of a request that
// names none (and so bounds its batches); an explicit fetch_size wins.
func TestDefaultFetchSize(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, func(c *query.Config) { c.Limits.DefaultFetchSize = 300 })
	for _, tc := range []struct {
		fetch, want int
	}{{0, 300}, {1000, 1000}} {
		res := e.run(ctxT(t, 60*time.Second), query.Request{Statement: "SELECT * FROM synth.rows_2500", FetchSize: tc.fetch}, nil)
		if res.err != nil {
			t.Fatal(res.err)
		}
		if n := checkSynth(t, res.batches()); n != 2500 {
			t.Fatalf("%d rows", n)
		}
		largest := 0
		for _, b := range res.batches() {
			largest = max(largest, b.Rows)
		}
		if largest != tc.want {
			t.Errorf("fetch_size %d: largest batch %d rows, want %d", tc.fetch, largest, tc.want)
		}
	}
	checkClean(t, e, s)
}
