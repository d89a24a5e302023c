package service_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/service"
)

// Issue 12.9: a row too large for one gRPC message fails the query with a
// RESOURCE_EXHAUSTED that names the row and the limit; rows before it and
// a large row under the limit stream normally.
func TestRowOverMessageLimit(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil)
	ctx := ctxT(t, 60*time.Second)

	// 3 MiB: over the batch budget, under the message limit.
	res := f.execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT repeat('ab', 1572864) AS big"}, nil)
	if res.err != nil {
		t.Fatalf("3 MiB row: %v", res.err)
	}
	if bs := res.batches(); len(bs) != 1 || len(bs[0].Columns[0].GetStringValues().Values[0]) != 3<<20 {
		t.Fatalf("3 MiB row: %d batches", len(bs))
	}

	// Row 2 is 5 MiB.
	res = f.execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT id, repeat('x', CASE WHEN id = 3 THEN 5242880 ELSE 10 END) AS w " +
		"FROM default.employees ORDER BY id"}, nil)
	info := errorInfo(t, res.err, codes.ResourceExhausted, query.ReasonLimitExceeded)
	if info.Metadata[service.MetaRow] != "2" || info.Metadata[query.MetaLimit] != "max_message_bytes" {
		t.Errorf("metadata %v", info.Metadata)
	}
	msg := status.Convert(res.err).Message()
	for _, want := range []string{"row 2", "4194304", "column w"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %q", msg, want)
		}
	}
	rows := 0
	for _, b := range res.batches() {
		rows += int(b.RowCount)
	}
	if rows != 2 {
		t.Errorf("%d rows streamed before the error, want 2", rows)
	}
	f.checkClean(t, s)
}
