package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/apache/arrow-adbc/go/adbc"
	"github.com/beltran/gohive"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"
)

// The client side of every measurement runs in worker processes (this
// binary with -worker), one per client kind, so that each client's CPU is
// its own and none of them shares a process with hiveqd or the simulator.
// The parent sends one JSON request per line on stdin; the worker answers
// one JSON response per line on stdout.

// Client kinds.
const (
	modeDirect    = "direct"      // hs2 package, one session reused across queries
	modeDirectNew = "direct-new"  // hs2 package, a new session per query
	modeGRPC      = "grpc"        // generated gRPC client through hiveqd, compact batch layout
	modeGRPCOld   = "grpc-values" // the same, asking for the original (values) layout
	modeGohive    = "gohive"      // github.com/beltran/gohive cursor, row by row
	modeThrift    = "thrift"      // generated TCLIService code over Apache Thrift, columnar (thrift.go)
)

const (
	envWorkerProfile = "BENCH_WORKER_PPROF"
	envGRPCWindow    = "BENCH_GRPC_WINDOW"
)

type workerRequest struct {
	Op        string `json:"op"` // stream | latency | concurrent
	Mode      string `json:"mode"`
	Addr      string `json:"addr"` // HS2 (direct, gohive) or gRPC (grpc) host:port
	Stmt      string `json:"stmt"`
	FetchSize int    `json:"fetch_size"`
	// N is the number of queries (latency) or of streams (concurrent).
	N int `json:"n"`
	// ReadRowsPerSecond makes a gRPC stream a slow reader (0: as fast as
	// it can decode).
	ReadRowsPerSecond int64 `json:"read_rows_per_second,omitempty"`
	// Conns is the number of gRPC connections the concurrent streams share.
	Conns int `json:"conns,omitempty"`
}

type workerResponse struct {
	Rows    int64   `json:"rows"`
	Seconds float64 `json:"seconds"` // wall time of the operation
	CPU     float64 `json:"cpu"`     // this worker's CPU seconds during it
	// Latencies (latency op) and TTFR (concurrent: time to first row),
	// seconds each.
	Latencies []float64 `json:"latencies,omitempty"`
	TTFR      []float64 `json:"ttfr,omitempty"`
	Errors    int       `json:"errors,omitempty"`
	FirstErr  string    `json:"first_err,omitempty"`
	Err       string    `json:"err,omitempty"`
}

// workerMain serves requests until stdin closes; with BENCH_WORKER_PPROF
// set it writes a CPU profile there.
func workerMain() int {
	if path := os.Getenv(envWorkerProfile); path != "" {
		if f, err := os.Create(path); err == nil {
			defer f.Close()
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	w := &worker{sessions: map[string]*hs2.Session{}, conns: map[string]*grpc.ClientConn{}, gohives: map[string]*gohive.Connection{}, thrifts: map[string]*thriftClient{}, adbcs: map[string]adbc.Connection{}}
	defer w.close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req workerRequest
		var resp workerResponse
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp.Err = err.Error()
		} else {
			resp = w.do(req)
		}
		if err := out.Encode(resp); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			return 1
		}
	}
	return 0
}

type worker struct {
	sessions map[string]*hs2.Session
	conns    map[string]*grpc.ClientConn
	gohives  map[string]*gohive.Connection
	thrifts  map[string]*thriftClient
	adbcs    map[string]adbc.Connection
}

func (w *worker) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range w.sessions {
		_ = s.Close(ctx)
	}
	for _, c := range w.conns {
		_ = c.Close()
	}
	for _, c := range w.gohives {
		_ = c.Close()
	}
	for _, c := range w.adbcs {
		_ = c.Close()
	}
}

func (w *worker) do(req workerRequest) workerResponse {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Garbage of the previous request must not be collected on this one's
	// CPU bill.
	runtime.GC()
	cpu0 := selfCPU()
	start := time.Now()
	var resp workerResponse
	var err error
	switch req.Op {
	case "stream":
		resp.Rows, err = w.stream(ctx, req)
	case "latency":
		resp.Latencies, err = w.latency(ctx, req)
	case "concurrent":
		resp, err = w.concurrent(ctx, req)
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	resp.Seconds = time.Since(start).Seconds()
	resp.CPU = selfCPU() - cpu0
	if err != nil {
		resp.Err = err.Error()
	}
	return resp
}

func (w *worker) stream(ctx context.Context, req workerRequest) (int64, error) {
	switch req.Mode {
	case modeDirect, modeDirectNew:
		return w.direct(ctx, req)
	case modeGRPC, modeGRPCOld:
		c, err := w.conn(req.Addr)
		if err != nil {
			return 0, err
		}
		rows, _, err := grpcStream(ctx, hiveqv1.NewQueryServiceClient(c), req, time.Now())
		return rows, err
	case modeGohive:
		return w.gohive(ctx, req)
	case modeThrift:
		return w.thrift(ctx, req)
	case modeADBC:
		return w.adbc(ctx, req)
	}
	return 0, fmt.Errorf("unknown mode %q", req.Mode)
}

func splitAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	return host, p, err
}

// session returns the worker's reused session on addr (direct) or a new
// one (direct-new) with a func to release it.
func (w *worker) session(ctx context.Context, mode, addr string) (*hs2.Session, func(), error) {
	if s := w.sessions[addr]; s != nil && mode == modeDirect && !s.Broken() {
		return s, func() {}, nil
	}
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, nil, err
	}
	s, err := hs2.Open(ctx, hs2.Endpoint{Host: host, Port: port}, hs2.Options{}, hs2.SessionConfig{})
	if err != nil {
		return nil, nil, err
	}
	if mode == modeDirect {
		w.sessions[addr] = s
		return s, func() {}, nil
	}
	return s, func() { _ = s.Close(ctx) }, nil
}

// direct runs the statement the way a careful HS2 client does: execute
// asynchronously, wait, read the schema, fetch until an empty batch, close
// the operation.
func (w *worker) direct(ctx context.Context, req workerRequest) (int64, error) {
	s, done, err := w.session(ctx, req.Mode, req.Addr)
	if err != nil {
		return 0, err
	}
	defer done()
	op, err := s.Execute(ctx, req.Stmt, nil)
	if err != nil {
		return 0, err
	}
	defer op.Close(ctx)
	if _, err := op.Wait(ctx, nil); err != nil {
		return 0, err
	}
	if _, err := op.Schema(ctx); err != nil {
		return 0, err
	}
	size := req.FetchSize
	if size == 0 {
		size = hs2.MaxFetchRows
	}
	var rows int64
	for {
		b, err := op.Fetch(ctx, size)
		if err != nil {
			return rows, err
		}
		if b.Rows == 0 {
			break
		}
		rows += int64(b.Rows)
	}
	return rows, op.Close(ctx)
}

func (w *worker) conn(addr string) (*grpc.ClientConn, error) {
	if c := w.conns[addr]; c != nil {
		return c, nil
	}
	c, err := dialGRPC(addr)
	if err != nil {
		return nil, err
	}
	w.conns[addr] = c
	return c, nil
}

func dialGRPC(addr string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if w, _ := strconv.Atoi(os.Getenv(envGRPCWindow)); w > 0 {
		// -grpc-window: fixed receive windows instead of gRPC's default
		// (64 KiB, grown by bandwidth estimation).
		opts = append(opts, grpc.WithInitialWindowSize(int32(w)), grpc.WithInitialConnWindowSize(int32(2*w)))
	}
	return grpc.NewClient(addr, opts...)
}

// grpcStream runs one Execute and drains it; every message is decoded by
// the generated protobuf code, as a user's client would. It returns the
// rows and the time the first batch arrived (zero if none).
func grpcStream(ctx context.Context, c hiveqv1.QueryServiceClient, req workerRequest, start time.Time) (int64, time.Time, error) {
	layout := hiveqv1.BatchLayout_BATCH_LAYOUT_COMPACT
	if req.Mode == modeGRPCOld {
		layout = hiveqv1.BatchLayout_BATCH_LAYOUT_VALUES
	}
	stream, err := c.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: req.Stmt, FetchSize: int32(req.FetchSize), BatchLayout: layout})
	if err != nil {
		return 0, time.Time{}, err
	}
	var rows int64
	var first time.Time
	var finished bool
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rows, first, err
		}
		switch e := ev.GetEvent().(type) {
		case *hiveqv1.ExecuteResponse_Batch:
			if first.IsZero() {
				first = time.Now()
				if err := checkLayout(e.Batch, layout); err != nil {
					return rows, first, err
				}
			}
			rows += int64(e.Batch.GetRowCount())
			if r := req.ReadRowsPerSecond; r > 0 {
				// A slow reader: no faster than r rows per second overall.
				due := start.Add(time.Duration(float64(rows) / float64(r) * float64(time.Second)))
				time.Sleep(time.Until(due))
			}
		case *hiveqv1.ExecuteResponse_Status:
			switch e.Status.GetState() {
			case hiveqv1.QueryState_QUERY_STATE_FINISHED:
				finished = true
			case hiveqv1.QueryState_QUERY_STATE_FAILED, hiveqv1.QueryState_QUERY_STATE_CANCELED:
				return rows, first, fmt.Errorf("query %s: %s", e.Status.GetState(), e.Status.GetMessage())
			}
		}
	}
	if !finished {
		return rows, first, errors.New("stream ended without FINISHED")
	}
	return rows, first, nil
}

// checkLayout makes sure the server sent the layout asked for (a server
// that predates batch_layout sends the values layout to everyone).
func checkLayout(b *hiveqv1.RowBatch, layout hiveqv1.BatchLayout) error {
	for _, c := range b.GetColumns() {
		switch c.GetValues().(type) {
		case *hiveqv1.ColumnVector_Int32Values, *hiveqv1.ColumnVector_Int64Values, *hiveqv1.ColumnVector_StringValues, *hiveqv1.ColumnVector_BytesValues:
			if layout == hiveqv1.BatchLayout_BATCH_LAYOUT_COMPACT {
				return errors.New("asked for the compact batch layout, got the values layout")
			}
		case *hiveqv1.ColumnVector_Fixed32Values, *hiveqv1.ColumnVector_Fixed64Values, *hiveqv1.ColumnVector_StringBuffer, *hiveqv1.ColumnVector_BytesBuffer:
			if layout != hiveqv1.BatchLayout_BATCH_LAYOUT_COMPACT {
				return errors.New("asked for the values batch layout, got the compact layout")
			}
		}
	}
	return nil
}

// gohive reads the rows one at a time through gohive's cursor into typed
// destinations (NULL-able ones as pointers), its documented way.
func (w *worker) gohive(ctx context.Context, req workerRequest) (int64, error) {
	conn := w.gohives[req.Addr]
	if conn == nil {
		host, port, err := splitAddr(req.Addr)
		if err != nil {
			return 0, err
		}
		cfg := gohive.NewConnectConfiguration()
		cfg.FetchSize = int64(req.FetchSize)
		conn, err = gohive.Connect(host, port, "NONE", cfg)
		if err != nil {
			return 0, err
		}
		w.gohives[req.Addr] = conn
	}
	cur := conn.Cursor()
	defer cur.Close()
	cur.Exec(ctx, req.Stmt)
	if cur.Err != nil {
		return 0, cur.Err
	}
	dests, err := gohiveDests(cur.Description())
	if err != nil {
		return 0, err
	}
	var rows int64
	for cur.HasMore(ctx) {
		if cur.Err != nil {
			return rows, cur.Err
		}
		cur.FetchOne(ctx, dests...)
		if cur.Err != nil {
			return rows, cur.Err
		}
		rows++
	}
	return rows, cur.Err
}

func gohiveDests(desc [][]string) ([]any, error) {
	out := make([]any, len(desc))
	for i, d := range desc {
		switch d[1] {
		case "BIGINT_TYPE":
			out[i] = new(*int64)
		case "INT_TYPE":
			out[i] = new(*int32)
		case "DOUBLE_TYPE":
			out[i] = new(*float64)
		case "STRING_TYPE":
			out[i] = new(*string)
		case "BOOLEAN_TYPE":
			out[i] = new(*bool)
		default:
			return nil, fmt.Errorf("gohive client: column type %s not handled", d[1])
		}
	}
	return out, nil
}

// latency runs N statements one after another and times each.
func (w *worker) latency(ctx context.Context, req workerRequest) ([]float64, error) {
	out := make([]float64, 0, req.N)
	for range req.N {
		start := time.Now()
		var rows int64
		var err error
		if req.Mode == modeGRPC || req.Mode == modeGRPCOld {
			var c *grpc.ClientConn
			if c, err = w.conn(req.Addr); err == nil {
				rows, _, err = grpcStream(ctx, hiveqv1.NewQueryServiceClient(c), req, start)
			}
		} else {
			rows, err = w.direct(ctx, req)
		}
		if err != nil {
			return out, err
		}
		if rows == 0 {
			return out, errors.New("no rows")
		}
		out = append(out, time.Since(start).Seconds())
	}
	return out, nil
}

// concurrent runs N gRPC streams at once over Conns connections.
func (w *worker) concurrent(ctx context.Context, req workerRequest) (workerResponse, error) {
	nconns := max(req.Conns, 1)
	clients := make([]hiveqv1.QueryServiceClient, nconns)
	for i := range clients {
		c, err := dialGRPC(req.Addr)
		if err != nil {
			return workerResponse{}, err
		}
		defer c.Close()
		c.Connect()
		clients[i] = hiveqv1.NewQueryServiceClient(c)
	}
	var (
		mu   sync.Mutex
		resp = workerResponse{TTFR: make([]float64, 0, req.N)}
		wg   sync.WaitGroup
		gate = make(chan struct{})
	)
	for i := range req.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			start := time.Now()
			rows, first, err := grpcStream(ctx, clients[i%nconns], req, start)
			mu.Lock()
			defer mu.Unlock()
			resp.Rows += rows
			if err != nil {
				resp.Errors++
				if resp.FirstErr == "" {
					resp.FirstErr = err.Error()
				}
				return
			}
			if !first.IsZero() {
				resp.TTFR = append(resp.TTFR, first.Sub(start).Seconds())
			}
		}()
	}
	close(gate)
	wg.Wait()
	return resp, nil
}

// selfCPU is this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}
