package replica

import (
	"testing"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/query"
)

// Issue 12.9: limits.default_fetch_size is the default fetch size, not a
// batch bound.
func TestEngineLimits(t *testing.T) {
	got := engineLimits(config.Limits{MaxConcurrentQueries: 4, MaxQueriesPerUser: 2, MaxStatementBytes: 1000,
		MaxRowsPerQuery: 77, MaxBatchBytes: 65536, DefaultFetchSize: 500})
	want := query.Limits{MaxConcurrent: 4, MaxPerUser: 2, MaxStatementBytes: 1000, MaxRowsPerQuery: 77,
		MaxBatchBytes: 65536, DefaultFetchSize: 500}
	if got != want {
		t.Fatalf("engineLimits = %+v, want %+v", got, want)
	}
}
