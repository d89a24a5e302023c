package service

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/query"
)

// DefaultMaxMessageBytes is the largest message gRPC clients accept by
// default (grpc-go, grpc-java and the C core all use 4 MiB).
const DefaultMaxMessageBytes = 4 << 20

// MetaRow is the ErrorInfo metadata key naming a result row (0-based).
const MetaRow = "row"

// batchSize is the exact encoded size of b as an ExecuteResponse in the
// old or the compact layout.
func batchSize(b *hs2.Batch, compact bool) int {
	body := headerSize(b)
	for i := range b.Columns {
		body += lenField(sizeColumn(&b.Columns[i], compact).msg)
	}
	return lenField(body)
}

// headerSize is the encoded size of a RowBatch's start_row and row_count
// fields: shared by batchSize and encodeBatch.
func headerSize(b *hs2.Batch) int {
	n := 0
	if b.StartRow != 0 {
		n += 1 + protowire.SizeVarint(uint64(b.StartRow))
	}
	if rows := int64(int32(b.Rows)); rows != 0 { // RowBatch.row_count is an int32
		n += 1 + protowire.SizeVarint(uint64(rows))
	}
	return n
}

// checkBatchSize refuses a batch too large for one message. The engine
// keeps batches of several rows under limits.max_batch_bytes (at most
// 3 MiB, by a worst-case estimate), so only a single row can be too large:
// it cannot be split, and sending it would fail on the client with an
// opaque "received message larger than max". schema names the columns.
func checkBatchSize(b *hs2.Batch, schema hs2.Schema, limit int) error {
	if b.Rows != 1 {
		return nil
	}
	// The larger of the two layouts (they differ by a few bytes a column).
	n := max(batchSize(b, false), batchSize(b, true))
	if n <= limit {
		return nil
	}
	widest, width := -1, 0
	for i := range b.Columns {
		if w := sizeColumn(&b.Columns[i], false).msg; w > width {
			widest, width = i, w
		}
	}
	col := "?"
	if widest >= 0 && widest < len(schema) {
		col = schema[widest].Name
	}
	err := &query.Error{
		Code:   query.ResourceExhausted,
		Reason: query.ReasonLimitExceeded,
		Message: fmt.Sprintf("row %d of the result is %d bytes encoded (column %s alone %d), more than the %d-byte "+
			"gRPC message limit clients accept by default: hiveqd cannot stream it; select less of that column (e.g. substr)",
			b.StartRow, n, col, width, limit),
		Metadata: map[string]string{
			query.MetaLimit: "max_message_bytes",
			MetaRow:         strconv.FormatInt(b.StartRow, 10),
		},
	}
	return err
}
