package service

import (
	"math/rand/v2"
	"testing"

	"github.com/hiveqd/hiveqd/hs2"
)

// batchSize is exactly what the codec writes.
func TestBatchSizeIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []*hs2.Batch{{}, {StartRow: 1 << 40, Rows: 1, Columns: []hs2.Vector{hs2.StringVector([]string{"x"}, nil)}}}
	for _, rows := range []int{1, 8, 9, 1000} {
		b := randomBatch(r, rows)
		b.StartRow = int64(rows) * 12345
		cases = append(cases, b)
	}
	for _, compact := range []bool{false, true} {
		for i, b := range cases {
			data := marshalBatch(b, compact)
			if got, want := batchSize(b, compact), data.Len(); got != want {
				t.Errorf("compact %v case %d: batchSize %d, encoded %d", compact, i, got, want)
			}
			data.Free()
		}
	}
}
