package hs2_test

import (
	"context"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
)

// fetchAll reads op with a request always sent ahead (next rows each).
func fetchAll(t testing.TB, op *hs2.Operation, size, next int) []*hs2.Batch {
	t.Helper()
	var out []*hs2.Batch
	for {
		b, err := op.FetchAhead(context.Background(), size, next)
		if err != nil {
			t.Fatal(err)
		}
		if b.Rows == 0 {
			return out
		}
		out = append(out, b)
	}
}

func TestFetchAhead(t *testing.T) {
	for _, cfg := range []hs2sim.Config{{}, {Auth: "nosasl"}, {Transport: "http"}} {
		t.Run(cfg.Transport+cfg.Auth, func(t *testing.T) {
			s := startSim(t, cfg)
			sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
			ctx := context.Background()
			run := func(stmt string) *hs2.Operation {
				t.Helper()
				op, err := sess.Execute(ctx, stmt, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := op.Wait(ctx, nil); err != nil {
					t.Fatal(err)
				}
				return op
			}

			// Every row once, in order; the size asked ahead is what comes.
			op := run("SELECT * FROM synth.rows_25000")
			batches := fetchAll(t, op, 4000, 7000)
			checkSynthRows(t, batches, 25000)
			if batches[0].Rows != 4000 || (cfg.Transport != "http" && batches[1].Rows != 7000) {
				t.Errorf("batch sizes %d, %d", batches[0].Rows, batches[1].Rows)
			}
			// The request sent ahead past the end is dropped by Close.
			if err := op.Close(ctx); err != nil {
				t.Fatal(err)
			}

			// Another call on the session drops a request ahead; the
			// session stays usable.
			op = run("SELECT * FROM synth.rows_30000")
			b, err := op.FetchAhead(ctx, 10000, 10000)
			if err != nil || b.Rows != 10000 {
				t.Fatalf("first batch: %v, %v", b, err)
			}
			if err := sess.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			if err := op.Close(ctx); err != nil {
				t.Fatal(err)
			}
			_, batches = query(t, sess, "SELECT * FROM synth.rows_12345", hs2.MaxFetchRows)
			checkSynthRows(t, batches, 12345)

			// Plain Fetch reads the answer to a request sent ahead.
			op = run("SELECT * FROM synth.rows_15000")
			if _, err := op.FetchAhead(ctx, 5000, 5000); err != nil {
				t.Fatal(err)
			}
			b, err = op.Fetch(ctx, 1)
			if err != nil || b.StartRow != 5000 || (cfg.Transport != "http" && b.Rows != 5000) {
				t.Fatalf("fetch after a request ahead: %+v, %v", b, err)
			}
			if err := op.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if sess.Broken() {
				t.Fatal("session broken")
			}
		})
	}
}

// A request ahead outlives a context that ends: the session breaks (its
// connection is dropped, as for any abandoned call) and says so.
func TestFetchAheadCancelled(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
	ctx := context.Background()
	op, err := sess.Execute(ctx, "SELECT * FROM synth.rows_100000", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := op.FetchAhead(ctx, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	s.SetFetchDelay(time.Second)
	// The answer to the request ahead may have been ready before the
	// delay: the one after it is not.
	var err2 error
	for i := 0; i < 2 && err2 == nil; i++ {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err2 = op.FetchAhead(cctx, 1000, 1000)
		cancel()
	}
	if err2 == nil {
		t.Fatal("fetch outlived its context")
	}
	s.SetFetchDelay(0)
	if !sess.Broken() {
		t.Fatal("session not broken")
	}
	_ = op.Close(ctx)
}

// BenchmarkFetchAhead compares sequential and pipelined fetching of the
// same result (the simulator in this process):
//
//	go test -run '^$' -bench FetchAhead ./hs2
func BenchmarkFetchAhead(b *testing.B) {
	s := startSim(b, hs2sim.Config{})
	sess := open(b, s, aliceOpts(), hs2.SessionConfig{})
	ctx := context.Background()
	for _, next := range []int{0, hs2.MaxFetchRows} {
		name := "sequential"
		if next > 0 {
			name = "ahead"
		}
		b.Run(name, func(b *testing.B) {
			var total int64
			for b.Loop() {
				op, err := sess.Execute(ctx, "SELECT * FROM synth.rows_200000", nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := op.Wait(ctx, nil); err != nil {
					b.Fatal(err)
				}
				for _, batch := range fetchAll(b, op, hs2.MaxFetchRows, next) {
					total += int64(batch.Rows)
				}
				op.Close(ctx)
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
