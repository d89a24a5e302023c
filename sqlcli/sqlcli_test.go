package sqlcli_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/sqlcli"
	st "github.com/hiveqd/hiveqd/sqlcli/sqlclitest"
)

const (
	kBool   = hiveqv1.ColumnKind_COLUMN_KIND_BOOL
	kInt32  = hiveqv1.ColumnKind_COLUMN_KIND_INT32
	kInt64  = hiveqv1.ColumnKind_COLUMN_KIND_INT64
	kDouble = hiveqv1.ColumnKind_COLUMN_KIND_DOUBLE
	kString = hiveqv1.ColumnKind_COLUMN_KIND_STRING
	kBytes  = hiveqv1.ColumnKind_COLUMN_KIND_BYTES

	sSubmitted = hiveqv1.QueryState_QUERY_STATE_SUBMITTED
	sRunning   = hiveqv1.QueryState_QUERY_STATE_RUNNING
	sStreaming = hiveqv1.QueryState_QUERY_STATE_STREAMING
	sFinished  = hiveqv1.QueryState_QUERY_STATE_FINISHED
	sFailed    = hiveqv1.QueryState_QUERY_STATE_FAILED
)

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command with a fixed clock (every elapsed time is 1.5 s).
func run(t *testing.T, ctx context.Context, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := clock()
	cmd := &sqlcli.Command{
		Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] },
		Now:    c,
	}
	code := cmd.Run(ctx, args)
	return result{code, stdout.String(), stderr.String()}
}

func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := t
		t = t.Add(1500 * time.Millisecond)
		return now
	}
}

// allKinds is a result with one column of every kind, NULLs in each, in
// two batches.
func allKinds() []*hiveqv1.ExecuteResponse {
	return []*hiveqv1.ExecuteResponse{
		st.Status("q-1", sSubmitted, -1, 0),
		st.Status("q-1", sRunning, 0.5, 0),
		st.Schema(
			st.Col("t.b", "boolean", kBool),
			st.Col("t.i", "int", kInt32),
			st.Col("t.l", "bigint", kInt64),
			st.Col("t.d", "double", kDouble),
			st.Col("t.s", "string", kString),
			st.Col("t.bin", "binary", kBytes),
		),
		st.Batch(0, 2,
			st.Bools([]bool{true, false}),
			st.Int32s([]int32{-7, 0}, 1),
			st.Int64s([]int64{9007199254740993, 0}, 1),
			st.Doubles([]float64{1.5, 0}, 1),
			st.Strings([]string{"héllo, \"world\"", ""}, 1),
			st.Bytes([][]byte{{0, 1, 2, 0xff}, nil}, 1),
		),
		st.Batch(2, 1,
			st.Bools([]bool{false}, 0),
			st.Int32s([]int32{2147483647}),
			st.Int64s([]int64{-9223372036854775808}),
			st.Doubles([]float64{1e21}),
			st.Strings([]string{""}),
			st.Bytes([][]byte{{}}),
		),
		st.Status("q-1", sFinished, 1, 3),
	}
}

func TestTableAllKindsAndRequest(t *testing.T) {
	srv := st.Start(t, st.Canned(nil, allKinds()...))
	r := run(t, t.Context(), map[string]string{"HIVEQD_TOKEN": "s3cret\n"}, "",
		"--addr", srv.Addr, "--connector", "etl", "--database", "sales",
		"--conf", "hive.exec.parallel=true", "--hiveconf", "a=b=c", "--fetch-size", "500", "--max-rows", "10",
		"SELECT * FROM t ;;", "--format", "table")
	if r.code != sqlcli.ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	want := `+--------+-------------+-----------------------+--------+-----------------+-----------+
| t.b    | t.i         | t.l                   | t.d    | t.s             | t.bin     |
+--------+-------------+-----------------------+--------+-----------------+-----------+
| true   | -7          | 9007199254740993      | 1.5    | héllo, "world"  | AAEC/w==  |
| false  | NULL        | NULL                  | NULL   | NULL            | NULL      |
| NULL   | 2147483647  | -9223372036854775808  | 1e+21  |                 |           |
+--------+-------------+-----------------------+--------+-----------------+-----------+
`
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}
	if r.stderr != "3 rows selected (1.500 seconds)\n" {
		t.Errorf("stderr %q", r.stderr)
	}

	calls := srv.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	req := calls[0].Request
	if req.GetStatement() != "SELECT * FROM t" || req.GetConnector() != "etl" || req.GetDatabase() != "sales" ||
		req.GetFetchSize() != 500 || req.GetMaxRows() != 10 ||
		!reflect.DeepEqual(req.GetConfig(), map[string]string{"hive.exec.parallel": "true", "a": "b=c"}) {
		t.Errorf("request %v", req)
	}
	if got := calls[0].Metadata.Get("authorization"); !reflect.DeepEqual(got, []string{"Bearer s3cret"}) {
		t.Errorf("authorization %q", got)
	}
}

func TestCSV(t *testing.T) {
	srv := st.Start(t, st.Canned(nil, allKinds()...))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format", "csv", "SELECT 1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "t.b,t.i,t.l,t.d,t.s,t.bin\r\n" +
		"true,-7,9007199254740993,1.5,\"héllo, \"\"world\"\"\",AAEC/w==\r\n" +
		"false,,,,,\r\n" +
		",2147483647,-9223372036854775808,1e+21,\"\",\"\"\r\n"
	if r.stdout != want {
		t.Errorf("csv:\n%q\nwant:\n%q", r.stdout, want)
	}
}

func TestJSONLines(t *testing.T) {
	srv := st.Start(t, st.Canned(nil, allKinds()...))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format=json", "SELECT 1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := `{"t.b":true,"t.i":-7,"t.l":9007199254740993,"t.d":1.5,"t.s":"héllo, \"world\"","t.bin":"AAEC/w=="}
{"t.b":false,"t.i":null,"t.l":null,"t.d":null,"t.s":null,"t.bin":null}
{"t.b":null,"t.i":2147483647,"t.l":-9223372036854775808,"t.d":1e+21,"t.s":"","t.bin":""}
`
	if r.stdout != want {
		t.Errorf("json:\n%s\nwant:\n%s", r.stdout, want)
	}
	// Every line is valid JSON whose bigint survives exactly.
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if n, ok := m["t.l"].(json.Number); ok && n.String() != "9007199254740993" && n.String() != "-9223372036854775808" {
			t.Errorf("bigint %s", n)
		}
	}
}

func TestJSONSpecialValues(t *testing.T) {
	srv := st.Start(t, st.Canned(nil,
		st.Schema(st.Col("x", "double", kDouble), st.Col("x", "string", kString), st.Col("x_2", "int", kInt32)),
		st.Batch(0, 4,
			st.Doubles([]float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e-7}),
			st.Strings([]string{"tab\there", "nl\nq\"\\", "\x01\u2028", "ok"}),
			st.Int32s([]int32{1, 2, 3, 4}),
		),
	))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format", "json", "SELECT 1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := `{"x":"NaN","x_2":"tab\there","x_2_2":1}
{"x":"Infinity","x_2":"nl\nq\"\\","x_2_2":2}
{"x":"-Infinity","x_2":"\u0001\u2028","x_2_2":3}
{"x":1e-7,"x_2":"ok","x_2_2":4}
`
	if r.stdout != want {
		t.Errorf("json:\n%s\nwant:\n%s", r.stdout, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("invalid JSON %q", line)
		}
	}

	// The table shows control characters escaped, so borders stay aligned.
	r = run(t, t.Context(), nil, "", "--addr", srv.Addr, "SELECT 1")
	if !strings.Contains(r.stdout, `| nl\nq"\    |`) || !strings.Contains(r.stdout, `| NaN        |`) {
		t.Errorf("table:\n%s", r.stdout)
	}
}

// TestStreamsRows checks that csv and json print each batch as it arrives:
// the server sends the second batch only after the first row is on stdout.
func TestStreamsRows(t *testing.T) {
	for _, format := range []string{"csv", "json"} {
		t.Run(format, func(t *testing.T) {
			out := st.NewOutput()
			firstSeen := make(chan struct{})
			srv := st.Start(t, func(ctx context.Context, _ int, _ *hiveqv1.ExecuteRequest, send func(*hiveqv1.ExecuteResponse) error) error {
				if err := send(st.Schema(st.Col("s", "string", kString))); err != nil {
					return err
				}
				if err := send(st.Batch(0, 1, st.Strings([]string{"first-row"}))); err != nil {
					return err
				}
				select {
				case <-firstSeen:
				case <-ctx.Done():
					return ctx.Err()
				}
				return send(st.Batch(1, 1, st.Strings([]string{"second-row"})))
			})
			done := make(chan int)
			var stderr bytes.Buffer
			go func() {
				cmd := &sqlcli.Command{Stdout: out, Stderr: &stderr}
				done <- cmd.Run(t.Context(), []string{"--addr", srv.Addr, "--format", format, "SELECT s FROM t"})
			}()
			out.WaitFor(t, "first-row", 10*time.Second)
			if strings.Contains(out.String(), "second-row") {
				t.Fatal("second row before it was sent")
			}
			close(firstSeen)
			if code := <-done; code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if !strings.Contains(out.String(), "second-row") {
				t.Errorf("output %q", out.String())
			}
			if !strings.Contains(stderr.String(), "2 rows selected") {
				t.Errorf("stderr %q", stderr.String())
			}
		})
	}
}

func TestTableChunks(t *testing.T) {
	srv := st.Start(t, st.Canned(nil,
		st.Schema(st.Col("n", "int", kInt32)),
		st.Batch(0, 3, st.Int32s([]int32{1, 22, 333})),
		st.Batch(3, 2, st.Int32s([]int32{4444, 5})),
	))
	var stdout, stderr bytes.Buffer
	cmd := &sqlcli.Command{Stdout: &stdout, Stderr: &stderr, TableChunk: 2, Now: clock()}
	if code := cmd.Run(t.Context(), []string{"--addr", srv.Addr, "SELECT n"}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := `+-----+
| n   |
+-----+
| 1   |
| 22  |
+-----+
+-------+
| n     |
+-------+
| 333   |
| 4444  |
+-------+
+----+
| n  |
+----+
| 5  |
+----+
`
	if stdout.String() != want {
		t.Errorf("chunks:\n%s\nwant:\n%s", stdout.String(), want)
	}
	if stderr.String() != "5 rows selected (1.500 seconds)\n" {
		t.Errorf("stderr %q", stderr.String())
	}
}

func TestEmptyResultAndDDL(t *testing.T) {
	srv := st.Start(t, st.Canned(nil, st.Status("q", sRunning, -1, 0), st.Schema(st.Col("a", "int", kInt32), st.Col("bb", "string", kString)), st.Status("q", sFinished, 1, 0)))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "SELECT a, bb FROM empty")
	want := "+----+-----+\n| a  | bb  |\n+----+-----+\n+----+-----+\n"
	if r.code != 0 || r.stdout != want || r.stderr != "No rows selected (1.500 seconds)\n" {
		t.Errorf("exit %d\nstdout:\n%s\nstderr: %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format", "csv", "SELECT a, bb FROM empty")
	if r.stdout != "a,bb\r\n" {
		t.Errorf("csv %q", r.stdout)
	}

	ddl := st.Start(t, st.Canned(nil, st.Status("q", sRunning, -1, 0), st.Status("q", sFinished, 1, 0)))
	for _, f := range []string{"table", "csv", "json"} {
		r = run(t, t.Context(), nil, "", "--addr", ddl.Addr, "--format", f, "CREATE TABLE x (a int)")
		if r.code != 0 || r.stdout != "" || r.stderr != "No rows affected (1.500 seconds)\n" {
			t.Errorf("%s: exit %d stdout %q stderr %q", f, r.code, r.stdout, r.stderr)
		}
	}
	r = run(t, t.Context(), nil, "", "--addr", ddl.Addr, "--silent", "CREATE TABLE x (a int)")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("silent: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestErrorInfo(t *testing.T) {
	srv := st.Start(t, st.Canned(
		st.Error(codes.Unknown, "HiveServer2 hs2-a.example:10000: Error while compiling statement: FAILED: SemanticException [Error 10001]: Line 1:14 Table not found 'nope'",
			"HS2_COMPILE_ERROR", map[string]string{"sql_state": "42S02", "error_code": "10001", "server": "hs2-a.example:10000", "query_id": "q-9", "connector": "default"}),
		st.Status("q-9", sSubmitted, -1, 0),
	))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "SELECT * FROM nope")
	if r.code != sqlcli.ExitError {
		t.Errorf("exit %d", r.code)
	}
	want := "Error: HiveServer2 hs2-a.example:10000: Error while compiling statement: FAILED: SemanticException [Error 10001]: Line 1:14 Table not found 'nope'\n" +
		"  code=UNKNOWN reason=HS2_COMPILE_ERROR domain=hiveqd.io sql_state=42S02 error_code=10001 server=hs2-a.example:10000 connector=default query_id=q-9\n"
	if r.stderr != want || r.stdout != "" {
		t.Errorf("stdout %q\nstderr:\n%s\nwant:\n%s", r.stdout, r.stderr, want)
	}
	if calls := srv.Calls(); len(calls) != 1 {
		t.Errorf("UNKNOWN was retried: %d calls", len(calls))
	}
}

// TestErrorMidStream: rows that arrived before the failure are printed,
// then the error; a failure after the first response is not retried even
// when UNAVAILABLE.
func TestErrorMidStream(t *testing.T) {
	srv := st.Start(t, st.Canned(
		st.Error(codes.Unavailable, "lost HiveServer2 hs2-a.example:10000 mid-query", "HS2_LOST", map[string]string{"server": "hs2-a.example:10000", "new_server": "hs2-b.example:10000"}),
		st.Status("q", sStreaming, 1, 0),
		st.Schema(st.Col("n", "bigint", kInt64)),
		st.Batch(0, 2, st.Int64s([]int64{1, 2})),
		st.Status("q", sFailed, 1, 2),
	))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "SELECT n")
	if r.code != 1 {
		t.Errorf("exit %d", r.code)
	}
	if r.stdout != "+----+\n| n  |\n+----+\n| 1  |\n| 2  |\n+----+\n" {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "code=UNAVAILABLE reason=HS2_LOST domain=hiveqd.io server=hs2-a.example:10000 new_server=hs2-b.example:10000\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if calls := srv.Calls(); len(calls) != 1 {
		t.Errorf("%d calls; a started stream must not be retried", len(calls))
	}
}

// TestRetryUnavailable: UNAVAILABLE before any response (hiveqd with no
// HS2 yet) is retried by the service config.
func TestRetryUnavailable(t *testing.T) {
	srv := st.Start(t, func(ctx context.Context, attempt int, _ *hiveqv1.ExecuteRequest, send func(*hiveqv1.ExecuteResponse) error) error {
		if attempt == 1 {
			return st.Error(codes.Unavailable, "no HiveServer2 available", "NO_HS2_AVAILABLE", map[string]string{"connector": "default"})
		}
		return st.Canned(nil, st.Schema(st.Col("n", "int", kInt32)), st.Batch(0, 1, st.Int32s([]int32{42})))(ctx, attempt, nil, send)
	})
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format", "csv", "SELECT 42")
	if r.code != 0 || r.stdout != "n\r\n42\r\n" {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if calls := srv.Calls(); len(calls) != 2 {
		t.Errorf("%d calls, want 2", len(calls))
	}
}

func TestConnectionRefused(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	start := time.Now()
	r := run(t, t.Context(), nil, "", "--addr", addr, "SELECT 1")
	took := time.Since(start)
	want := "hiveqd sql: cannot reach hiveqd at " + addr + ": connect: connection refused\n  Check that hiveqd is running there"
	if r.code != 1 || !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "--addr") {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
	// No retries with backoff: refused is final at once (the issue's
	// floor is 1 s; this is a generous bound for a loaded machine).
	if took > 5*time.Second {
		t.Errorf("gave up after %v", took)
	}
	t.Logf("gave up after %v", took)
}

func TestMalformedBatch(t *testing.T) {
	for name, batch := range map[string]*hiveqv1.ExecuteResponse{
		"columns":      st.Batch(0, 1, st.Int32s([]int32{1}), st.Int32s([]int32{2})),
		"short vector": st.Batch(0, 3, st.Int32s([]int32{1})),
		"short bitmap": st.Batch(0, 9, &hiveqv1.ColumnVector{Nulls: []byte{1}, Values: &hiveqv1.ColumnVector_Int32Values{Int32Values: &hiveqv1.Int32Values{Values: make([]int32, 9)}}}),
	} {
		t.Run(name, func(t *testing.T) {
			srv := st.Start(t, st.Canned(nil, st.Schema(st.Col("n", "int", kInt32)), batch))
			r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "SELECT 1")
			if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: malformed response from server: ") {
				t.Errorf("exit %d stderr %q", r.code, r.stderr)
			}
		})
	}
	// A vector may be short (or absent) where the rows are NULL.
	srv := st.Start(t, st.Canned(nil, st.Schema(st.Col("n", "int", kInt32), st.Col("v", "void", hiveqv1.ColumnKind_COLUMN_KIND_UNSPECIFIED)),
		st.Batch(0, 2, st.Int32s([]int32{1}, 1), &hiveqv1.ColumnVector{Nulls: st.Nulls(2, 0, 1)})))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format", "csv", "SELECT 1")
	if r.code != 0 || r.stdout != "n,v\r\n1,\r\n,\r\n" {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// blockingServer streams one row and then waits for the client to go
// away; cancelled reports that the server saw the cancel.
func blockingServer(t *testing.T) (srv *st.Server, cancelled <-chan struct{}) {
	c := make(chan struct{})
	srv = st.Start(t, func(ctx context.Context, _ int, _ *hiveqv1.ExecuteRequest, send func(*hiveqv1.ExecuteResponse) error) error {
		for _, ev := range []*hiveqv1.ExecuteResponse{st.Status("q", sRunning, 0.1, 0), st.Schema(st.Col("n", "int", kInt32)), st.Batch(0, 1, st.Int32s([]int32{7}))} {
			if err := send(ev); err != nil {
				return err
			}
		}
		<-ctx.Done()
		close(c)
		return ctx.Err()
	})
	return srv, c
}

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestCancel(t *testing.T) {
	srv, serverSaw := blockingServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := st.NewOutput()
	var stderr bytes.Buffer
	done := make(chan int)
	go func() {
		cmd := &sqlcli.Command{Stdout: out, Stderr: &stderr}
		done <- cmd.Run(ctx, []string{"--addr", srv.Addr, "--format", "csv", "SELECT n"})
	}()
	out.WaitFor(t, "7\r\n", 10*time.Second)
	cancel()
	if code := <-done; code != sqlcli.ExitInterrupted {
		t.Errorf("exit %d", code)
	}
	waitClosed(t, serverSaw, "the server to see the cancel")
	if !strings.HasPrefix(stderr.String(), "Query canceled (1 row received, ") {
		t.Errorf("stderr %q", stderr.String())
	}
}

// TestInterrupt sends this process a real SIGINT while Main runs.
func TestInterrupt(t *testing.T) {
	srv, serverSaw := blockingServer(t)
	out := st.NewOutput()
	var stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- sqlcli.Main(t.Context(), []string{"--addr", srv.Addr, "--format", "json", "SELECT n"}, nil, out, &stderr)
	}()
	out.WaitFor(t, `{"n":7}`, 10*time.Second)
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != sqlcli.ExitInterrupted {
		t.Errorf("exit %d", code)
	}
	waitClosed(t, serverSaw, "the server to see the cancel")
}

func TestTimeout(t *testing.T) {
	srv, serverSaw := blockingServer(t)
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--timeout", "300ms", "SELECT n")
	if r.code != 1 || !strings.Contains(r.stderr, "code=DEADLINE_EXCEEDED") {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
	// The row that arrived is printed.
	if !strings.Contains(r.stdout, "| 7  |") {
		t.Errorf("stdout %q", r.stdout)
	}
	waitClosed(t, serverSaw, "the server to see the deadline")
}

func TestProgress(t *testing.T) {
	events := []*hiveqv1.ExecuteResponse{
		st.Status("q-5", sSubmitted, -1, 0),
		st.Status("q-5", sRunning, 0.1, 0),
		st.Status("q-5", sRunning, 0.1, 0),
		st.Status("q-5", sRunning, 0.55, 0),
		st.Status("q-5", sStreaming, 1, 0),
		st.Schema(st.Col("n", "int", kInt32)),
		st.Batch(0, 1, st.Int32s([]int32{1})),
		st.Status("q-5", sFinished, 1, 1),
	}
	srv := st.Start(t, st.Canned(nil, events...))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--progress", "--format", "csv", "SELECT 1")
	want := "INFO  : query q-5 SUBMITTED on hs2-a.example:10000 (connector default, epoch 7, replica replica-1)\n" +
		"INFO  : query q-5 RUNNING on hs2-a.example:10000 (connector default, epoch 7, replica replica-1) 10%\n" +
		"INFO  : query q-5 RUNNING 55%\n" +
		"INFO  : query q-5 STREAMING on hs2-a.example:10000 (connector default, epoch 7, replica replica-1) 100%\n" +
		"INFO  : query q-5 FINISHED on hs2-a.example:10000 (connector default, epoch 7, replica replica-1) 100%, 1 row in 0.000 s\n" +
		"1 row selected (1.500 seconds)\n"
	if r.code != 0 || r.stderr != want {
		t.Errorf("exit %d stderr:\n%s\nwant:\n%s", r.code, r.stderr, want)
	}
	// Not a terminal and no --progress: only the final line.
	r = run(t, t.Context(), nil, "", "--addr", srv.Addr, "SELECT 1")
	if r.stderr != "1 row selected (1.500 seconds)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	// A terminal shows one line updated in place, erased before the
	// results and at the end; --silent hides it.
	var stderr bytes.Buffer
	cmd := &sqlcli.Command{Stderr: &stderr, StderrIsTerminal: true, Now: clock()}
	cmd.Run(t.Context(), []string{"--addr", srv.Addr, "SELECT 1"})
	for _, want := range []string{`\rRUNNING on hs2-a\.example:10000  [0-9.]+s  55%\x1b\[K`, `\rSTREAMING on hs2-a\.example:10000  [0-9.]+s\x1b\[K`, `\r\x1b\[K1 row selected \([0-9.]+ seconds\)\n$`} {
		if !regexp.MustCompile(want).MatchString(stderr.String()) {
			t.Errorf("terminal stderr %q lacks %q", stderr.String(), want)
		}
	}
	if strings.Contains(stderr.String(), "INFO") {
		t.Errorf("terminal stderr %q has plain lines", stderr.String())
	}
	stderr.Reset()
	if cmd.Run(t.Context(), []string{"--addr", srv.Addr, "--silent", "SELECT 1"}); stderr.String() != "" {
		t.Errorf("silent stderr %q", stderr.String())
	}
}

func TestStatementFromStdin(t *testing.T) {
	srv := st.Start(t, st.Canned(nil))
	r := run(t, t.Context(), nil, "  SELECT 1\n  FROM t;\n", "--addr", srv.Addr, "-")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := srv.Calls()[0].Request.GetStatement(); got != "SELECT 1\n  FROM t" {
		t.Errorf("statement %q", got)
	}
	// "--" ends the flags: a statement may start with "-".
	r = run(t, t.Context(), map[string]string{"HIVEQD_ADDR": srv.Addr}, "", "--", "-- comment\nSELECT 2")
	if r.code != 0 || srv.Calls()[1].Request.GetStatement() != "SELECT 2" {
		t.Errorf("exit %d %s", r.code, r.stderr)
	}
}

func TestUsage(t *testing.T) {
	for name, args := range map[string][]string{
		"two statements":     {"SELECT 1", "SELECT 2"},
		"-e and a statement": {"-e", "SELECT 1", "SELECT 2"},
		"-f and -e":          {"-e", "SELECT 1", "-f", "x.sql"},
		"missing value":      {"--format"},
		"unknown flag":       {"--nope", "SELECT 1"},
		"bad format":         {"--format", "xml", "SELECT 1"},
		"bad conf":           {"--conf", "novalue", "SELECT 1"},
		"fetch size":         {"--fetch-size", "10001", "SELECT 1"},
		"max rows":           {"--max-rows", "-1", "SELECT 1"},
		"bad timeout":        {"--timeout", "soon", "SELECT 1"},
		"plaintext and tls":  {"--plaintext", "--tls-ca", "ca.pem", "SELECT 1"},
		"cert without key":   {"--tls-cert", "c.pem", "SELECT 1"},
	} {
		t.Run(name, func(t *testing.T) {
			r := run(t, t.Context(), nil, "", args...)
			if r.code != sqlcli.ExitUsage || !strings.HasPrefix(r.stderr, "hiveqd sql: ") || !strings.HasSuffix(r.stderr, " (see 'hiveqd sql --help')\n") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("exit %d stderr %q", r.code, r.stderr)
			}
		})
	}
	r := run(t, t.Context(), nil, "", "-h")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: hiveqd sql") || !strings.Contains(r.stdout, "-tls-server-name") {
		t.Errorf("help: exit %d stdout %q", r.code, r.stdout)
	}
	r = run(t, t.Context(), nil, "", "--token-file", filepath.Join(t.TempDir(), "missing"), "SELECT 1")
	if r.code != sqlcli.ExitError || !strings.Contains(r.stderr, "--token-file") {
		t.Errorf("missing token file: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestTLSAndTokenFile(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	serverCert := issue(t, ca, caKey, "hiveqd.test", x509.ExtKeyUsageServerAuth)
	clientDER, clientKey := issueRaw(t, ca, caKey, "alice", x509.ExtKeyUsageClientAuth)
	writePEM(t, filepath.Join(dir, "client.pem"), "CERTIFICATE", clientDER)
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "client-key.pem"), "EC PRIVATE KEY", keyDER)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("tok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	srv := st.Start(t, st.Canned(nil, st.Schema(st.Col("n", "int", kInt32)), st.Batch(0, 1, st.Int32s([]int32{1}))), grpc.Creds(creds))

	r := run(t, t.Context(), map[string]string{"HIVEQD_TOKEN": "from-env"}, "", "--addr", srv.Addr,
		"--tls-ca", filepath.Join(dir, "ca.pem"), "--tls-cert", filepath.Join(dir, "client.pem"), "--tls-key", filepath.Join(dir, "client-key.pem"),
		"--tls-server-name", "hiveqd.test", "--token-file", filepath.Join(dir, "token"), "--format", "csv", "SELECT 1")
	if r.code != 0 || r.stdout != "n\r\n1\r\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := srv.Calls()[0].Metadata.Get("authorization"); !reflect.DeepEqual(got, []string{"Bearer tok-from-file"}) {
		t.Errorf("authorization %q", got)
	}
	// Plaintext against the TLS server fails as UNAVAILABLE.
	r = run(t, t.Context(), nil, "", "--addr", srv.Addr, "--timeout", "1s", "SELECT 1")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach hiveqd at "+srv.Addr) || !strings.Contains(r.stderr, "--tls") {
		t.Errorf("plaintext to TLS: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestServiceConfigMatchesNode keeps examples/node/service-config.json and
// the Go client's config the same document.
func TestServiceConfigMatchesNode(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "examples", "node", "service-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var node, goCfg any
	if err := json.Unmarshal(b, &node); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(sqlcli.ServiceConfig), &goCfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(node, goCfg) {
		t.Errorf("examples/node/service-config.json differs from sqlcli.ServiceConfig:\n%s\nvs\n%s", b, sqlcli.ServiceConfig)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func issueRaw(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	der, key := issueRaw(t, ca, caKey, name, usage)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFloatColumn: HS2 sends a Hive float widened to a double; it prints
// as the float that was stored.
func TestFloatColumn(t *testing.T) {
	srv := st.Start(t, st.Canned(nil,
		st.Schema(st.Col("f", "float", kDouble), st.Col("d", "double", kDouble)),
		st.Batch(0, 1, st.Doubles([]float64{float64(float32(1.1))}), st.Doubles([]float64{float64(float32(1.1))}))))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format", "json", "SELECT f, d")
	if r.code != 0 || r.stdout != `{"f":1.1,"d":1.100000023841858}`+"\n" {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// BenchmarkFormats streams 100 batches of 1000 rows (int64, double,
// string) from a loopback server through each format into io.Discard.
//
//	go test -run XXX -bench Formats ./sqlcli/
func BenchmarkFormats(b *testing.B) {
	const batches, rows = 100, 1000
	ids, ds, ss := make([]int64, rows), make([]float64, rows), make([]string, rows)
	for i := range rows {
		ids[i], ds[i], ss[i] = int64(i)*7919, float64(i)/3, fmt.Sprintf("value-%d, with a comma", i)
	}
	events := []*hiveqv1.ExecuteResponse{st.Schema(st.Col("id", "bigint", kInt64), st.Col("d", "double", kDouble), st.Col("s", "string", kString))}
	for i := range batches {
		events = append(events, st.Batch(int64(i*rows), rows, st.Int64s(ids, 3), st.Doubles(ds), st.Strings(ss)))
	}
	srv := st.Start(b, st.Canned(nil, events...))
	for _, format := range []string{"table", "csv", "json"} {
		b.Run(format, func(b *testing.B) {
			cmd := &sqlcli.Command{Stdout: io.Discard, Stderr: io.Discard}
			for b.Loop() {
				if code := cmd.Run(b.Context(), []string{"--addr", srv.Addr, "--format", format, "SELECT"}); code != 0 {
					b.Fatalf("exit %d", code)
				}
			}
			b.ReportMetric(float64(batches*rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
