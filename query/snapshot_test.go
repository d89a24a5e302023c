package query_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/query"
)

func TestSnapshot(t *testing.T) {
	s := sim(t)
	e := newEnv(t, s, nil)
	ctx := ctxT(t, 30*time.Second)
	if got := e.engine.Snapshot(); len(got) != 0 {
		t.Fatalf("idle engine: %+v", got)
	}
	// A long statement (a comment pads it past the head) streaming slowly.
	stmt := "SELECT * FROM synth.rows_10000000 -- " + strings.Repeat("é", 300)
	req := query.Request{QueryID: "q-snap", User: "alice", Statement: stmt, FetchSize: 100,
		Config: map[string]string{"hs2sim.rows_per_second": "2000"}}
	done := make(chan *result, 1)
	go func() { done <- e.run(ctx, req, nil) }()
	var q query.RunningQuery
	testenv.Eventually(t, 20*time.Second, func() error {
		got := e.engine.Snapshot()
		if len(got) != 1 {
			return fmt.Errorf("%d running", len(got))
		}
		if q = got[0]; q.Rows == 0 || q.State != query.StateStreaming {
			return errors.New("not streaming yet")
		}
		return nil
	})
	if q.QueryID != "q-snap" || q.User != "alice" || q.Connector != conn || q.Server != endpoint(s).Addr() || q.Epoch != 1 {
		t.Errorf("snapshot %+v", q)
	}
	if !strings.HasPrefix(q.Statement, "SELECT * FROM synth.rows_10000000") || len(q.Statement) > query.StatementHeadBytes+len("…") ||
		!utf8.ValidString(q.Statement) || !strings.HasSuffix(q.Statement, "…") {
		t.Errorf("statement head %q", q.Statement)
	}
	if q.Elapsed <= 0 || q.Started.IsZero() {
		t.Errorf("elapsed %v started %v", q.Elapsed, q.Started)
	}
	if _, err := e.engine.Cancel(ctx, "q-snap", query.Caller{Admin: true}); err != nil {
		t.Fatal(err)
	}
	<-done
	if got := e.engine.Snapshot(); len(got) != 0 {
		t.Fatalf("after the query: %+v", got)
	}
	checkClean(t, e, s)
}
