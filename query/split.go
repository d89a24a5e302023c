package query

import (
	"github.com/hiveqd/hiveqd/hs2"
)

// Per-value size estimates of a batch encoded as a hiveq.v1.RowBatch: the
// worst case of the protobuf encoding, so an estimate never undershoots.
const (
	boolBytes   = 1
	varintBytes = 10 // a negative int32 is sign-extended to 10 bytes
	doubleBytes = 8
	// A repeated string/bytes element: tag, length varint (≤ 5 bytes for
	// a value under 4 GiB) and the data.
	lenOverhead = 6
	// Per column per message: vector and oneof framing, packed length.
	columnOverhead = 32
)

// sliceBatch calls emit with consecutive slices of b, each at most maxRows
// rows and (by estimate) maxBytes bytes. Cuts fall on multiples of 8 rows,
// so each slice's NULL bitmap is a subslice of b's; only when 8 rows alone
// exceed maxBytes does a cut fall between, and the bitmap is copied.
func sliceBatch(b *hs2.Batch, maxRows, maxBytes int, emit func(*hs2.Batch) error) error {
	if b.Rows == 0 {
		return nil
	}
	overhead := columnOverhead * (len(b.Columns) + 1)
	fixed, variable := rowWidth(b.Columns)
	if b.Rows <= maxRows && overhead+batchBytes(b.Columns, variable, fixed, 0, b.Rows) <= maxBytes {
		return emit(b)
	}
	budget := max(maxBytes-overhead, 1)
	start := 0
	for start < b.Rows {
		limit := min(b.Rows, start+maxRows)
		end, size := start, 0
		for end < limit {
			next := min((end/8+1)*8, limit) // the next multiple of 8
			n := batchBytes(b.Columns, variable, fixed, end, next)
			if size+n <= budget {
				size, end = size+n, next
				continue
			}
			if end == start {
				// Eight rows are too wide for one message: cut between rows,
				// always taking at least one.
				for end < next {
					n := batchBytes(b.Columns, variable, fixed, end, end+1)
					if end > start && size+n > budget {
						break
					}
					size += n
					end++
				}
			}
			break
		}
		if err := emit(subBatch(b, start, end)); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// rowWidth returns the fixed bytes per row and the variable-width columns.
func rowWidth(cols []hs2.Vector) (fixed int, variable []int) {
	for i := range cols {
		switch cols[i].Kind {
		case hs2.KindBool:
			fixed += boolBytes
		case hs2.KindInt32, hs2.KindInt64:
			fixed += varintBytes
		case hs2.KindDouble:
			fixed += doubleBytes
		case hs2.KindString, hs2.KindBytes:
			fixed += lenOverhead
			variable = append(variable, i)
		}
	}
	return fixed, variable
}

// batchBytes estimates the encoded size of rows [i, j).
func batchBytes(cols []hs2.Vector, variable []int, fixed, i, j int) int {
	n := fixed*(j-i) + (j-i+7)/8*len(cols)
	for _, c := range variable {
		v := &cols[c]
		n += int(v.Offsets[j] - v.Offsets[i])
	}
	return n
}

// subBatch is rows [i, j) of b, sharing b's value slices and data buffers.
func subBatch(b *hs2.Batch, i, j int) *hs2.Batch {
	if i == 0 && j == b.Rows {
		return b
	}
	out := &hs2.Batch{StartRow: b.StartRow + int64(i), Rows: j - i, Columns: make([]hs2.Vector, len(b.Columns))}
	for c := range b.Columns {
		v := &b.Columns[c]
		w := &out.Columns[c]
		w.Kind = v.Kind
		w.Nulls = sliceNulls(v.Nulls, i, j, b.Rows)
		switch v.Kind {
		case hs2.KindBool:
			w.Bools = v.Bools[i:j:j]
		case hs2.KindInt32:
			w.Int32s = v.Int32s[i:j:j]
		case hs2.KindInt64:
			w.Int64s = v.Int64s[i:j:j]
		case hs2.KindDouble:
			w.Doubles = v.Doubles[i:j:j]
		case hs2.KindString, hs2.KindBytes:
			// The offsets of rows i..j, into the whole batch's data.
			w.Data, w.Offsets = v.Data, v.Offsets[i:j+1:j+1]
		}
	}
	return out
}

// sliceNulls is the NULL bitmap of rows [i, j) of a batch of rows rows:
// exactly (j-i+7)/8 bytes, or nil when none of those rows is NULL. It
// aliases nulls when i is a multiple of 8 and nothing past row j shares
// the last byte; otherwise it is a copy.
func sliceNulls(nulls []byte, i, j, rows int) []byte {
	if len(nulls) == 0 {
		return nil
	}
	want := (j - i + 7) / 8
	var out []byte
	if i%8 == 0 {
		out = nulls[i/8 : i/8+want : i/8+want]
		if j%8 != 0 && j != rows && out[want-1]>>(j%8) != 0 {
			// Rows past j are NULL in the shared byte: mask a copy.
			out = append([]byte(nil), out...)
			out[want-1] &= byte(1)<<(j%8) - 1
		}
	} else {
		out = make([]byte, want)
		for r := i; r < j; r++ {
			if nulls[r/8]&(1<<(r%8)) != 0 {
				k := r - i
				out[k/8] |= 1 << (k % 8)
			}
		}
	}
	for _, x := range out {
		if x != 0 {
			return out
		}
	}
	return nil
}
