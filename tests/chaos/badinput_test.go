package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// The bad-input tests run one standalone hiveqd process against a static
// HS2 (a simulator or a misbehaving fake) and check the process from the
// outside: codes, deadlines, HS2 leaks and the process's RSS.

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func startSim(t *testing.T) *harness.Sim {
	t.Helper()
	s, err := harness.StartSim(ctxFor(t, 30*time.Second), bins["hs2sim"], t.TempDir(), "sim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(5 * time.Second) })
	return s
}

// standalone starts hiveqd with the static HS2 addr and extra YAML and
// waits until the probe has published addr as the route.
func standalone(t *testing.T, addr, extra string) (*harness.Hiveqd, *harness.Client) {
	t.Helper()
	h, c := startStandalone(t, addr, extra)
	ctx := ctxFor(t, 30*time.Second)
	if err := testenv.WaitFor(ctx, func() error {
		r, _, err := c.RouteOf(ctx, connector)
		if err == nil && r.Server != addr {
			err = fmt.Errorf("route %+v", r)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h, c
}

func startStandalone(t *testing.T, addr, extra string) (*harness.Hiveqd, *harness.Client) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("coordination: standalone\nshutdown_grace: 2s\n%sconnectors:\n  - name: hive\n    discovery: static\n    static: [%q]\n", extra, addr)
	path := filepath.Join(dir, "hiveqd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := harness.StartHiveqd(ctxFor(t, 60*time.Second), bins["hiveqd"], dir, "hiveqd", nil, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := harness.Dial(h.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("hiveqd output:\n%s", h.Output())
		}
		_ = h.Stop(10 * time.Second)
	})
	return h, c
}

func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	st, err := readProc(context.Background(), pid, "")
	if err != nil {
		t.Fatal(err)
	}
	return st.RSSKiB
}

// noLeak waits until the simulator has no open operation.
func noLeak(t *testing.T, s *harness.Sim) {
	t.Helper()
	ctx := ctxFor(t, 20*time.Second)
	if err := testenv.WaitFor(ctx, func() error {
		st, err := s.Stats(ctx)
		if err != nil {
			return err
		}
		if st.OpenOperations != 0 {
			return fmt.Errorf("%d HS2 operations open", st.OpenOperations)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func small(t *testing.T, c *harness.Client) {
	t.Helper()
	r := c.Execute(ctxFor(t, 30*time.Second), &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_100"}, checkRows, nil)
	if r.Err != nil || r.Rows != 100 {
		t.Errorf("a well-behaved client's query: %d rows, %v", r.Rows, r.Err)
	}
}

// A client opens a stream over an endless result and never reads it: gRPC
// flow control must push back to the HS2 fetch loop, so the replica's RSS
// stays bounded, it keeps serving others, and the HS2 operation is closed
// when the client goes away.
func TestAbusiveClientNeverReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s := startSim(t)
	h, c := standalone(t, s.Addr, "")
	small(t, c) // warm up: pools, TLS-less connections, first allocations
	before := rssKiB(t, h.Pid())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var streams []hiveqv1.QueryService_ExecuteClient
	for range 4 {
		st, err := c.Query.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_100000000000"})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	// The streams are open; wait until HS2 runs them, then give the
	// replica time to (not) buffer.
	if err := testenv.WaitFor(ctxFor(t, 20*time.Second), func() error {
		st, err := s.Stats(ctx)
		if err != nil || st.OpenOperations < 4 {
			return fmt.Errorf("%+v %v", st, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var peak int64
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); {
		peak = max(peak, rssKiB(t, h.Pid()))
		small(t, c)
	}
	t.Logf("RSS %d MiB before, peak %d MiB with 4 unread endless streams", before>>10, peak>>10)
	if peak-before > 256<<10 {
		t.Errorf("RSS grew by %d MiB with unread streams: no backpressure", (peak-before)>>10)
	}
	cancel()
	_ = streams
	noLeak(t, s)
}

// HS2 sends rows forever; the client's deadline ends the stream with
// DEADLINE_EXCEEDED on time and hiveqd cancels the HS2 operation.
func TestEndlessResultDeadlinePropagates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s := startSim(t)
	_, c := standalone(t, s.Addr, "")
	const deadline = 3 * time.Second
	r := c.Execute(ctxFor(t, deadline), &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_100000000000"}, checkRows, nil)
	if r.Code() != codes.DeadlineExceeded {
		t.Errorf("endless stream ended %v after %d rows, want DEADLINE_EXCEEDED", r.Err, r.Rows)
	}
	if took := r.Finished.Sub(r.Started); took > deadline+2*time.Second {
		t.Errorf("stream ended after %v, deadline %v", took, deadline)
	}
	noLeak(t, s)
	small(t, c)
}

// Oversized messages, absurd sizes and unknown connectors get clear codes
// from the real process (the service tests cover the in-process cases).
func TestBadRequestsOverTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s := startSim(t)
	_, c := standalone(t, s.Addr, "")
	ctx := ctxFor(t, 60*time.Second)
	for name, tc := range map[string]struct {
		req  *hiveqv1.ExecuteRequest
		want codes.Code // anyCode: whatever is documented
	}{
		"statement over 1 MiB":  {&hiveqv1.ExecuteRequest{Statement: "SELECT '" + strings.Repeat("x", 1<<20) + "'"}, codes.InvalidArgument},
		"message over 4 MiB":    {&hiveqv1.ExecuteRequest{Statement: "SELECT '" + strings.Repeat("x", 5<<20) + "'"}, codes.ResourceExhausted},
		"unknown connector":     {&hiveqv1.ExecuteRequest{Statement: "SELECT 1", Connector: "nope"}, codes.InvalidArgument},
		"fetch size 2^31-1":     {&hiveqv1.ExecuteRequest{Statement: "SELECT 1", FetchSize: 1<<31 - 1}, codes.InvalidArgument},
		"negative row limit":    {&hiveqv1.ExecuteRequest{Statement: "SELECT 1", MaxRows: -5}, codes.InvalidArgument},
		"huge row limit":        {&hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_10", MaxRows: 1<<63 - 1}, codes.OK},
		"NUL in statement":      {&hiveqv1.ExecuteRequest{Statement: "SELECT 1\x00"}, anyCode},
		"10k config entries":    {&hiveqv1.ExecuteRequest{Statement: "SELECT 1", Config: manyConfig(10000)}, anyCode},
		"database with a quote": {&hiveqv1.ExecuteRequest{Statement: "SELECT 1", Database: "x'; DROP"}, anyCode},
	} {
		r := c.Execute(ctx, tc.req, nil, nil)
		code := r.Code()
		switch {
		case code == codes.Internal || code == codes.Unknown && !strings.Contains(r.Err.Error(), "HS2"):
			t.Errorf("%s: %v", name, r.Err)
		case tc.want != anyCode && code != tc.want:
			t.Errorf("%s: %v, want %v", name, r.Err, tc.want)
		default:
			t.Logf("%s: %v", name, code)
		}
	}
	small(t, c)
	noLeak(t, s)
}

const anyCode = codes.Code(1 << 31)

func manyConfig(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

// The global and per-user limits of running queries answer
// RESOURCE_EXHAUSTED at once and free their slot when a query ends.
func TestConcurrencyLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s := startSim(t)
	// 20 rows a second: synth.rows_100000 runs until cancelled.
	if err := s.Pace(ctxFor(t, 10*time.Second), 20, 0); err != nil {
		t.Fatal(err)
	}
	for name, limits := range map[string]string{
		"global":   "limits:\n  max_concurrent_queries: 2\n  max_queries_per_user: 100\n",
		"per user": "limits:\n  max_concurrent_queries: 100\n  max_queries_per_user: 2\n",
	} {
		t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
			_, c := standalone(t, s.Addr, limits)
			ctx, cancel := context.WithCancel(ctxFor(t, 60*time.Second))
			var wg sync.WaitGroup
			started := make(chan struct{}, 2)
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var once sync.Once
					c.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_100000"}, nil,
						func(*hiveqv1.ExecuteResponse) { once.Do(func() { started <- struct{}{} }) })
				}()
			}
			<-started
			<-started
			r := c.Execute(ctxFor(t, 10*time.Second), &hiveqv1.ExecuteRequest{Statement: "SELECT 1"}, nil, nil)
			if code, info := harness.ErrorInfo(r.Err); code != codes.ResourceExhausted {
				t.Errorf("third query: %v, want RESOURCE_EXHAUSTED", r.Err)
			} else {
				t.Logf("third query: %v %v", code, info.GetReason())
			}
			cancel()
			wg.Wait()
			// The client saw its streams end; the replica frees their
			// slots as its handlers return, a moment later.
			wctx := ctxFor(t, 5*time.Second)
			if err := testenv.WaitFor(wctx, func() error {
				return c.Execute(wctx, &hiveqv1.ExecuteRequest{Statement: "SELECT 1"}, nil, nil).Err
			}); err != nil {
				t.Errorf("slots not freed after the queries ended: %v", err)
			}
		})
	}
	noLeak(t, s)
}

// A "HiveServer2" that answers with garbage (no Thrift at all), or accepts
// and closes, or accepts and says nothing: the query fails with a clear
// UNAVAILABLE within its deadline and the replica stays up.
func TestGarbageHS2(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for name, serve := range map[string]func(net.Conn){
		"garbage": func(c net.Conn) {
			_, _ = c.Write([]byte(strings.Repeat("\x80\x01\x00\x02\xff\xff\xff\xffHTTP/1.1 500 nope\r\n", 200)))
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		},
		"closes": func(c net.Conn) {},
		"silent": func(c net.Conn) {
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var conns []net.Conn
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					wg.Add(1)
					go func() { defer wg.Done(); defer c.Close(); serve(c) }()
				}
			}()
			t.Cleanup(func() {
				ln.Close()
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				mu.Unlock()
				wg.Wait()
			})
			// The probe never passes: queries must fail fast and clearly.
			h, c := startStandalone(t, ln.Addr().String(), "")
			for range 3 {
				const deadline = 15 * time.Second
				r := c.Execute(ctxFor(t, deadline), &hiveqv1.ExecuteRequest{Statement: "SELECT 1"}, nil, nil)
				switch r.Code() {
				case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
				default:
					t.Errorf("query against a %s HS2: %v", name, r.Err)
				}
				if took := r.Finished.Sub(r.Started); took > deadline+2*time.Second {
					t.Errorf("took %v", took)
				}
			}
			select {
			case <-h.Done():
				t.Fatalf("hiveqd exited: %v", h.Err())
			default:
			}
		})
	}
}

// corrupter is a TCP proxy to HS2 that, once armed, flips bytes of what
// HS2 sends after the first skip bytes of every connection: malformed
// Thrift, lengths that lie, bitmaps and values that disagree.
type corrupter struct {
	ln     net.Listener
	target string
	skip   int64
	armed  atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newCorrupter(t *testing.T, target string, skip int64) *corrupter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &corrupter{ln: ln, target: target, skip: skip}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(c.close)
	return c
}

func (c *corrupter) accept() {
	defer c.wg.Done()
	for n := uint64(1); ; n++ {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", c.target)
		if err != nil {
			down.Close()
			continue
		}
		c.mu.Lock()
		c.conns = append(c.conns, down, up)
		c.mu.Unlock()
		rng := rand.New(rand.NewPCG(n, 7))
		c.wg.Add(2)
		go func() { defer c.wg.Done(); _, _ = io.Copy(up, down); up.Close() }()
		go func() {
			defer c.wg.Done()
			defer down.Close()
			buf := make([]byte, 16<<10)
			var sent int64
			for {
				n, err := up.Read(buf)
				if n > 0 {
					if c.armed.Load() {
						for i := range n {
							if sent+int64(i) >= c.skip && rng.IntN(64) == 0 {
								buf[i] ^= byte(1 + rng.IntN(255))
							}
						}
					}
					sent += int64(n)
					if _, werr := down.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (c *corrupter) close() {
	c.ln.Close()
	c.mu.Lock()
	for _, x := range c.conns {
		x.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// HS2 replies corrupted in flight: every query ends with a documented code
// (or, when the flips hit only values, completes), hiveqd neither panics
// nor balloons, and it serves normally once HS2 behaves again.
func TestCorruptedHS2Replies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s := startSim(t)
	cp := newCorrupter(t, s.Addr, 256)
	h, c := standalone(t, cp.ln.Addr().String(), "")
	small(t, c)
	before := rssKiB(t, h.Pid())
	cp.armed.Store(true)
	byCode := map[codes.Code]int{}
	var peak int64
	for i := range 12 {
		stmt := "SELECT * FROM synth.rows_" + fmt.Sprint([]int{10, 1000, 20000}[i%3])
		r := c.Execute(ctxFor(t, 3*time.Second), &hiveqv1.ExecuteRequest{Statement: stmt}, nil, nil)
		byCode[r.Code()]++
		switch r.Code() {
		case codes.OK, codes.Unavailable, codes.Aborted, codes.DeadlineExceeded:
		case codes.Unknown:
			if _, info := harness.ErrorInfo(r.Err); info.GetReason() != "HS2_QUERY_FAILED" {
				t.Errorf("%s: %v", stmt, r.Err)
			}
		default:
			t.Errorf("%s: %v", stmt, r.Err)
		}
		peak = max(peak, rssKiB(t, h.Pid()))
		select {
		case <-h.Done():
			t.Fatalf("hiveqd exited: %v", h.Err())
		default:
		}
	}
	t.Logf("corrupted replies: %v; RSS %d MiB before, peak %d MiB", byCode, before>>10, peak>>10)
	if peak-before > 512<<10 {
		t.Errorf("RSS grew by %d MiB on corrupted replies", (peak-before)>>10)
	}
	cp.armed.Store(false)
	// Poisoned pooled sessions are dropped; the probe may have given the
	// route up and must publish it again.
	ctx := ctxFor(t, 60*time.Second)
	if err := testenv.WaitFor(ctx, func() error {
		r := c.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT * FROM synth.rows_1000"}, checkRows, nil)
		if r.Err == nil && r.Rows != 1000 {
			return fmt.Errorf("%d rows", r.Rows)
		}
		return r.Err
	}); err != nil {
		t.Errorf("hiveqd does not recover once HS2 behaves: %v", err)
	}
	noLeak(t, s)
}
