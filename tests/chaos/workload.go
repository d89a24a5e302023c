package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2sim/synth"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// documented are the codes a stream may end with under faults (README,
// "Errors"): anything else — INTERNAL, UNKNOWN, ... — is a violation.
var documented = map[codes.Code]bool{
	codes.OK:                true,
	codes.Unavailable:       true,
	codes.Aborted:           true,
	codes.Canceled:          true,
	codes.DeadlineExceeded:  true,
	codes.ResourceExhausted: true,
}

// rpcSlack is how much later than its deadline an RPC may end: the client
// returns at the deadline itself, so slack covers only a loaded machine.
const rpcSlack = 5 * time.Second

// kinds of requests the workload sends.
const (
	kindLarge    = "large"    // synth.rows_N, every row checked
	kindSmall    = "small"    // a few rows
	kindCancel   = "cancel"   // the client cancels mid-stream
	kindDeadline = "deadline" // a deadline shorter than the query
	kindLimit    = "max_rows" // max_rows and a small fetch_size
)

// outcome is one finished Execute.
type outcome struct {
	replica  string
	kind     string
	code     codes.Code
	rows     int64
	schema   bool  // the schema reached the client (the stream sent something)
	want     int64 // rows a complete stream has
	took     time.Duration
	deadline time.Duration
	err      error // the stream's error or a row mismatch
	badRows  error // rows that disagree with synth
	twice    error // a row delivered twice (or a gap)
	// server is the HS2 the stream ran on: the one its error names, else
	// the first status's; "" if it never reached one.
	server string
	ended  time.Time
}

// workload runs Execute streams on every replica until stopped.
type workload struct {
	e    *env
	seed int64

	mu       sync.Mutex
	outcomes []outcome
}

func (w *workload) run(ctx context.Context, perReplica int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range w.e.replicas {
		for j := range perReplica {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w.seed), uint64(i*1000+j)))
				for ctx.Err() == nil {
					if !w.one(rng, i) {
						// A replica that is down fails at once: back
						// off instead of spinning.
						t := time.NewTimer(time.Duration(50+rng.IntN(200)) * time.Millisecond)
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
						}
					}
				}
			}()
		}
	}
	return &wg
}

// one sends a request to replica i. Stopping the workload does not
// interrupt it: a stream in flight ends on its own, so its outcome counts.
func (w *workload) one(rng *rand.Rand, i int) (ok bool) {
	c := w.e.fleet.Clients[i]
	o := outcome{replica: w.e.replicas[i].id, deadline: 60 * time.Second}
	var n int64
	req := &hiveqv1.ExecuteRequest{Connector: connector}
	var cancelAfter time.Duration
	switch p := rng.IntN(100); {
	case p < 40:
		o.kind, n = kindLarge, []int64{5000, 20000, 50000}[rng.IntN(3)]
	case p < 65:
		o.kind, n = kindSmall, int64(1+rng.IntN(200))
	case p < 77:
		o.kind, n = kindCancel, 50000
		cancelAfter = time.Duration(50+rng.IntN(1500)) * time.Millisecond
	case p < 89:
		o.kind, n = kindDeadline, 50000
		o.deadline = time.Duration(200+rng.IntN(2500)) * time.Millisecond
	default:
		o.kind, n = kindLimit, 20000
		req.MaxRows = int64(1 + rng.IntN(5000))
		req.FetchSize = int32(1 + rng.IntN(700))
	}
	req.Statement = "SELECT * FROM " + synth.Database + "." + synth.TableName(synth.Rows, n)
	o.want = n
	if req.MaxRows > 0 && req.MaxRows < n {
		o.want = req.MaxRows
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.deadline)
	defer cancel()
	if cancelAfter > 0 {
		t := time.AfterFunc(cancelAfter, cancel)
		defer t.Stop()
	}
	var next int64 // the row the next batch must start at
	res := c.Execute(ctx, req, func(b *hiveqv1.RowBatch) error {
		if err := checkRows(b); err != nil && o.badRows == nil {
			o.badRows = err
		}
		if b.GetStartRow() != next && o.twice == nil {
			o.twice = fmt.Errorf("batch starts at row %d after %d rows were delivered", b.GetStartRow(), next)
		}
		next = b.GetStartRow() + int64(b.GetRowCount())
		return nil
	}, nil)
	o.code, o.rows, o.took, o.err = res.Code(), res.Rows, res.Finished.Sub(res.Started), res.Err
	o.ended, o.server, o.schema = res.Finished, res.Server(), res.Schema != nil
	if _, info := harness.ErrorInfo(res.Err); info.GetMetadata()["server"] != "" {
		o.server = info.GetMetadata()["server"]
	}
	if res.Err == nil {
		switch {
		case res.Last.GetState() != hiveqv1.QueryState_QUERY_STATE_FINISHED:
			o.err = fmt.Errorf("stream ended OK in state %v", res.Last.GetState())
		case res.Rows != o.want:
			o.err = fmt.Errorf("stream ended OK with %d rows, want %d", res.Rows, o.want)
		}
	} else if res.Code() == codes.Unknown && errors.Is(res.Err, context.Canceled) {
		o.code = codes.Canceled
	}
	w.mu.Lock()
	w.outcomes = append(w.outcomes, o)
	w.mu.Unlock()
	return o.code == codes.OK
}

// checkRows compares every value of a batch of synth.rows_N with synth.
func checkRows(b *hiveqv1.RowBatch) error {
	cols := b.GetColumns()
	if len(cols) != len(synth.RowsColumns) {
		return fmt.Errorf("batch at %d: %d columns, want %d", b.GetStartRow(), len(cols), len(synth.RowsColumns))
	}
	n := int(b.GetRowCount())
	ids := cols[0].GetInt64Values().GetValues()
	is := cols[1].GetInt32Values().GetValues()
	ds := cols[2].GetDoubleValues().GetValues()
	ss := cols[3].GetStringValues().GetValues()
	bs := cols[4].GetBoolValues().GetValues()
	if len(ids) != n || len(is) != n || len(ds) != n || len(ss) != n || len(bs) != n {
		return fmt.Errorf("batch at %d: vector lengths %d %d %d %d %d for %d rows", b.GetStartRow(), len(ids), len(is), len(ds), len(ss), len(bs), n)
	}
	null := func(c int, k int) bool {
		m := cols[c].GetNulls()
		return k/8 < len(m) && m[k/8]&(1<<(k%8)) != 0
	}
	for k := range n {
		r := b.GetStartRow() + int64(k)
		bad := func(col string, got, want any) error {
			return fmt.Errorf("row %d column %s: %v, want %v", r, col, got, want)
		}
		if null(0, k) || ids[k] != synth.ID(r) {
			return bad("id", ids[k], synth.ID(r))
		}
		if null(1, k) != synth.INull(r) || (!synth.INull(r) && is[k] != synth.I(r)) {
			return bad("i", is[k], synth.RowAt(r).I)
		}
		if null(2, k) != synth.DNull(r) || (!synth.DNull(r) && math.Float64bits(ds[k]) != math.Float64bits(synth.D(r))) {
			return bad("d", ds[k], synth.RowAt(r).D)
		}
		if null(3, k) != synth.SNull(r) || (!synth.SNull(r) && ss[k] != synth.S(r)) {
			return bad("s", ss[k], synth.RowAt(r).S)
		}
		if null(4, k) != synth.BNull(r) || (!synth.BNull(r) && bs[k] != synth.B(r)) {
			return bad("b", bs[k], synth.RowAt(r).B)
		}
	}
	return nil
}
