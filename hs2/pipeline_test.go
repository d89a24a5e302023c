package hs2_test

import (
	"context"
	"net"
	"sync"
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

// writeCounter counts the writes a client makes on its connections.
type writeCounter struct {
	mu     sync.Mutex
	writes int
}

func (w *writeCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &writeCountingConn{Conn: c, w: w}, nil
}

func (w *writeCounter) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

type writeCountingConn struct {
	net.Conn
	w *writeCounter
}

func (c *writeCountingConn) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	c.w.writes++
	c.w.mu.Unlock()
	return c.Conn.Write(p)
}

// TestSchemaAheadAndCloseLater: on the binary transports the schema and the
// first fetch leave in one write and CloseOperation does not wait for its
// answer, which the session's next call reads; HS2 (the simulator) sees
// every call, in order, and the operation closed. Over HTTP both are the
// plain calls.
func TestSchemaAheadAndCloseLater(t *testing.T) {
	for _, cfg := range []hs2sim.Config{{}, {Auth: "nosasl"}, {Transport: "http"}} {
		t.Run(cfg.Transport+cfg.Auth, func(t *testing.T) {
			s := startSim(t, cfg)
			var wc writeCounter
			opts := aliceOpts()
			opts.DialContext = wc.dial
			sess := open(t, s, opts, hs2.SessionConfig{})
			ctx := context.Background()
			for i := range 3 {
				op, err := sess.Execute(ctx, "SELECT * FROM synth.rows_25000", nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := op.Wait(ctx, nil); err != nil {
					t.Fatal(err)
				}
				before := wc.n()
				sch, err := op.SchemaAhead(ctx, 4000, 2000)
				if err != nil || len(sch) == 0 {
					t.Fatalf("schema %v, %v", sch, err)
				}
				if w := wc.n() - before; cfg.Transport != "http" && w != 1 {
					t.Errorf("schema and first fetches took %d writes, want 1", w)
				}
				// The first fetches' sizes are those sent ahead.
				batches := fetchAll(t, op, 9000, 3000)
				checkSynthRows(t, batches, 25000)
				if want := map[bool]int{true: 9000, false: 4000}[cfg.Transport == "http"]; batches[0].Rows != want {
					t.Errorf("first batch %d rows, want %d", batches[0].Rows, want)
				}
				if cfg.Transport != "http" && batches[1].Rows != 2000 {
					t.Errorf("second batch %d rows, want 2000", batches[1].Rows)
				}
				if err := op.CloseLater(ctx); err != nil {
					t.Fatal(err)
				}
				if i == 1 {
					// A ping reads the close's answer first.
					if err := sess.Ping(ctx); err != nil {
						t.Fatal(err)
					}
				}
				// The next statement (next iteration) reads it otherwise.
			}
			// The simulator has every operation closed once the session's
			// next call has run.
			if err := sess.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			if n := s.Stats().OpenOperations; n != 0 {
				t.Errorf("%d operations open", n)
			}
			// A session closed with an answer unread closes cleanly.
			op, err := sess.Execute(ctx, "SELECT 1", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := op.Wait(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := op.SchemaAhead(ctx, 10, 10); err != nil {
				t.Fatal(err)
			}
			if err := op.CloseLater(ctx); err != nil {
				t.Fatal(err)
			}
			if err := sess.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
