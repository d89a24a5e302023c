// Package batchtest builds HS2 batches shaped like the simulator's
// synthetic table (synth.rows_N), for the front-ends' codec tests and
// benchmarks.
package batchtest

import (
	"fmt"

	"github.com/hiveqd/hiveqd/hs2"
)

// SynthSchema is the columns of Synth's batches.
var SynthSchema = hs2.Schema{{Name: "id", Type: "bigint"}, {Name: "i", Type: "int"}, {Name: "d", Type: "double"},
	{Name: "s", Type: "string"}, {Name: "b", Type: "boolean"}}

// Synth returns a batch of rows rows starting at row 123456. Every column
// but id has the same NULL bitmap: rows 0 and 4 of every 8 are NULL.
func Synth(rows int) *hs2.Batch {
	batch := &hs2.Batch{StartRow: 123456, Rows: rows}
	nulls := make([]byte, (rows+7)/8)
	for i := range nulls {
		nulls[i] = 0x11
	}
	id := hs2.Vector{Kind: hs2.KindInt64}
	i32 := hs2.Vector{Kind: hs2.KindInt32, Nulls: nulls}
	d := hs2.Vector{Kind: hs2.KindDouble, Nulls: nulls}
	bl := hs2.Vector{Kind: hs2.KindBool, Nulls: nulls}
	var strs []string
	for r := range rows {
		id.Int64s = append(id.Int64s, int64(1_000_000+r))
		i32.Int32s = append(i32.Int32s, int32(r*7919%100000-50000))
		d.Doubles = append(d.Doubles, float64(r)*1.25)
		strs = append(strs, fmt.Sprintf("name-%07d", r))
		bl.Bools = append(bl.Bools, r%3 == 0)
	}
	batch.Columns = []hs2.Vector{id, i32, d, hs2.StringVector(strs, nulls), bl}
	return batch
}
