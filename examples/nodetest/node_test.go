package nodetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	st "github.com/hiveqd/hiveqd/sqlcli/sqlclitest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var nodeDir = filepath.Join("..", "node")

var (
	installOnce sync.Once
	installErr  error
	installOut  []byte
)

// needNode skips without node/npm and runs `npm ci` once per test binary.
func needNode(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: skipping the Node.js example tests", tool)
		}
	}
	installOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
		cmd.Dir = nodeDir
		installOut, installErr = cmd.CombinedOutput()
	})
	if installErr != nil {
		t.Fatalf("npm ci in examples/node: %v\n%s", installErr, installOut)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func runNode(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{"query.js"}, args...)...)
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("node: %v", err)
	}
	return result{code, stdout.String(), stderr.String()}
}

const (
	kBool   = hiveqv1.ColumnKind_COLUMN_KIND_BOOL
	kInt32  = hiveqv1.ColumnKind_COLUMN_KIND_INT32
	kInt64  = hiveqv1.ColumnKind_COLUMN_KIND_INT64
	kDouble = hiveqv1.ColumnKind_COLUMN_KIND_DOUBLE
	kString = hiveqv1.ColumnKind_COLUMN_KIND_STRING
	kBytes  = hiveqv1.ColumnKind_COLUMN_KIND_BYTES
)

func TestRowsEveryKind(t *testing.T) {
	t.Run("values layout", func(t *testing.T) { testRowsEveryKind(t, false) })
	t.Run("compact layout", func(t *testing.T) { testRowsEveryKind(t, true) })
}

// testRowsEveryKind: the example prints the same rows whichever layout
// the server sends (it asks for the compact one; an older server sends the
// values layout).
func testRowsEveryKind(t *testing.T, compact bool) {
	needNode(t)
	layout := func(ev *hiveqv1.ExecuteResponse) *hiveqv1.ExecuteResponse {
		if b := ev.GetBatch(); b != nil && compact {
			for i, c := range b.Columns {
				b.Columns[i] = st.Compact(c)
			}
		}
		return ev
	}
	srv := st.Start(t, st.Canned(nil,
		st.Status("q-1", hiveqv1.QueryState_QUERY_STATE_RUNNING, 0.5, 0),
		st.Schema(st.Col("t.b", "boolean", kBool), st.Col("t.i", "int", kInt32), st.Col("t.l", "bigint", kInt64),
			st.Col("t.d", "double", kDouble), st.Col("t.s", "string", kString), st.Col("t.bin", "binary", kBytes)),
		layout(st.Batch(0, 2,
			st.Bools([]bool{true, false}),
			st.Int32s([]int32{-7, 0}, 1),
			st.Int64s([]int64{9007199254740993, 0}, 1),
			st.Doubles([]float64{1.5, 0}, 1),
			st.Strings([]string{"héllo, \"world\"", ""}, 1),
			st.Bytes([][]byte{{0, 1, 2, 0xff}, nil}, 1),
		)),
		// Nine rows: the NULL bitmap spans two bytes.
		layout(st.Batch(2, 9,
			st.Bools(make([]bool, 9), 0, 8),
			st.Int32s([]int32{1, 2, 3, 4, 5, 6, 7, 8, 2147483647}, 7),
			st.Int64s([]int64{-9223372036854775808, 0, 0, 0, 0, 0, 0, 0, 0}, 1, 2, 3, 4, 5, 6, 7, 8),
			st.Doubles([]float64{1e21, 0, 0, 0, 0, 0, 0, 0, 0}, 1, 2, 3, 4, 5, 6, 7, 8),
			st.Strings(make([]string, 9), 1, 2, 3, 4, 5, 6, 7, 8),
			st.Bytes(make([][]byte, 9), 1, 2, 3, 4, 5, 6, 7, 8),
		)),
		st.Status("q-1", hiveqv1.QueryState_QUERY_STATE_FINISHED, 1, 11),
	))
	r := runNode(t, []string{"HIVEQD_TOKEN=node-token"}, srv.Addr, "SELECT * FROM t", "--connector", "etl", "--database", "sales",
		"--conf", "hive.exec.parallel=true", "--fetch-size", "100", "--max-rows", "20")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := `status: RUNNING 50% query=q-1 server=hs2-a.example:10000 epoch=7 replica=replica-1 rows=0
schema: t.b boolean, t.i int, t.l bigint, t.d double, t.s string, t.bin binary
row: [true,-7,9007199254740993,1.5,"héllo, \"world\"","AAEC/w=="]
row: [false,null,null,null,null,null]
row: [null,1,-9223372036854775808,1e+21,"",""]
row: [false,2,null,null,null,null]
row: [false,3,null,null,null,null]
row: [false,4,null,null,null,null]
row: [false,5,null,null,null,null]
row: [false,6,null,null,null,null]
row: [false,7,null,null,null,null]
row: [false,null,null,null,null,null]
row: [null,2147483647,null,null,null,null]
status: FINISHED 100% query=q-1 server=hs2-a.example:10000 epoch=7 replica=replica-1 rows=11
end: OK, 11 rows
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	calls := srv.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	req := calls[0].Request
	if req.GetBatchLayout() != hiveqv1.BatchLayout_BATCH_LAYOUT_COMPACT {
		t.Errorf("batch_layout %v, want COMPACT", req.GetBatchLayout())
	}
	if req.GetStatement() != "SELECT * FROM t" || req.GetConnector() != "etl" || req.GetDatabase() != "sales" || req.GetFetchSize() != 100 || req.GetMaxRows() != 20 ||
		!reflect.DeepEqual(req.GetConfig(), map[string]string{"hive.exec.parallel": "true"}) {
		t.Errorf("request %v", req)
	}
	if got := calls[0].Metadata.Get("authorization"); !reflect.DeepEqual(got, []string{"Bearer node-token"}) {
		t.Errorf("authorization %q", got)
	}
}

func TestErrorInfo(t *testing.T) {
	needNode(t)
	srv := st.Start(t, st.Canned(
		st.Error(codes.Unknown, "HiveServer2 hs2-a.example:10000: Error while compiling statement: FAILED: SemanticException Table not found 'nope'",
			"HS2_COMPILE_ERROR", map[string]string{"sql_state": "42S02", "error_code": "10001", "server": "hs2-a.example:10000", "query_id": "q-9"}),
		st.Status("q-9", hiveqv1.QueryState_QUERY_STATE_SUBMITTED, -1, 0),
	))
	r := runNode(t, nil, srv.Addr, "SELECT * FROM nope")
	want := "error: UNKNOWN (2): HiveServer2 hs2-a.example:10000: Error while compiling statement: FAILED: SemanticException Table not found 'nope'\n" +
		"  ErrorInfo reason=HS2_COMPILE_ERROR domain=hiveqd.io sql_state=42S02 error_code=10001 server=hs2-a.example:10000 query_id=q-9\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("exit %d\nstderr:\n%s\nwant:\n%s", r.code, r.stderr, want)
	}
	if !strings.HasPrefix(r.stdout, "status: SUBMITTED query=q-9") {
		t.Errorf("stdout %q", r.stdout)
	}
}

// TestRetryUnavailable checks that the service config's retry policy is
// in effect in grpc-js: UNAVAILABLE before any response is retried.
func TestRetryUnavailable(t *testing.T) {
	needNode(t)
	srv := st.Start(t, func(ctx context.Context, attempt int, req *hiveqv1.ExecuteRequest, send func(*hiveqv1.ExecuteResponse) error) error {
		if attempt < 3 {
			return st.Error(codes.Unavailable, "no HiveServer2 available", "NO_HS2_AVAILABLE", nil)
		}
		return st.Canned(nil, st.Schema(st.Col("n", "int", kInt32)), st.Batch(0, 1, st.Int32s([]int32{42})))(ctx, attempt, req, send)
	})
	r := runNode(t, nil, srv.Addr, "SELECT 42")
	if r.code != 0 || r.stdout != "schema: n int\nrow: [42]\nend: OK, 1 row\n" {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := len(srv.Calls()); n != 3 {
		t.Errorf("%d calls, want 3", n)
	}
}

// TestInterrupt: Ctrl-C (SIGINT) cancels the call; the server sees it.
func TestInterrupt(t *testing.T) {
	needNode(t)
	serverSaw := make(chan struct{})
	srv := st.Start(t, func(ctx context.Context, _ int, _ *hiveqv1.ExecuteRequest, send func(*hiveqv1.ExecuteResponse) error) error {
		if err := st.Canned(nil, st.Schema(st.Col("n", "int", kInt32)), st.Batch(0, 1, st.Int32s([]int32{7})))(ctx, 1, nil, send); err != nil {
			return err
		}
		<-ctx.Done()
		close(serverSaw)
		return ctx.Err()
	})
	cmd := exec.CommandContext(t.Context(), "node", "query.js", srv.Addr, "SELECT n")
	cmd.Dir = nodeDir
	out := st.NewOutput()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.WaitFor(t, "row: [7]\n", time.Minute)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("node exit: %v; stderr %q", err, stderr.String())
	}
	select {
	case <-serverSaw:
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the cancel")
	}
	if !strings.Contains(stderr.String(), "error: CANCELLED (1)") {
		t.Errorf("stderr %q", stderr.String())
	}
}
