package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// env is one simulator behind one hiveqd, both real processes.
type env struct {
	t      *testing.T
	sims   []*harness.Sim
	hiveqd *harness.Hiveqd
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// start runs nSims simulators and a hiveqd that knows them as a static list.
func start(t *testing.T, nSims int, hiveqdArgs ...string) *env {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	e := &env{t: t}
	var addrs []string
	for i := 0; i < nSims; i++ {
		s, err := harness.StartSim(ctx, bins["hs2sim"], t.TempDir(), fmt.Sprintf("hs2sim-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop(10 * time.Second) })
		e.sims = append(e.sims, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--hs2", strings.Join(addrs, ","), "--replica-id", "e2e", "--shutdown-grace", "2s"}, hiveqdArgs...)
	h, err := harness.StartHiveqd(ctx, bins["hiveqd"], t.TempDir(), "hiveqd", nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Stop(15 * time.Second); err != nil {
			t.Errorf("hiveqd did not stop cleanly: %v\n%s", err, h.Output())
		}
	})
	e.hiveqd = h
	// Served once the static server passed its first probe.
	testenv.Eventually(t, 20*time.Second, func() error {
		out, _, code, err := harness.Grpcurl(ctx, "-plaintext", "-d", `{"service":"hiveq.v1.QueryService"}`, h.Addr, "grpc.health.v1.Health/Check")
		if err != nil || code != 0 || !strings.Contains(out, `"SERVING"`) {
			return fmt.Errorf("health: %s %v %d", out, err, code)
		}
		return nil
	})
	// Whatever a test does, the simulators are left with no operation and
	// no session beyond hiveqd's pool.
	t.Cleanup(func() { e.requireNoLeaks() })
	return e
}

func (e *env) requireNoLeaks() {
	t := e.t
	for _, s := range e.sims {
		if s.Proc == nil {
			continue
		}
		select {
		case <-s.Done():
			continue
		default:
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			st, err := s.Stats(context.Background())
			if err != nil {
				return err
			}
			if st.OpenOperations != 0 {
				return fmt.Errorf("%s: %d open operations", s.Name, st.OpenOperations)
			}
			return nil
		})
	}
}

// result is one Execute call as grpcurl saw it.
type result struct {
	msgs   []map[string]any
	code   int            // gRPC code; 0 = OK
	errMsg string         // the status message
	reason string         // ErrorInfo.reason
	meta   map[string]any // ErrorInfo.metadata
	stderr string
}

func execute(t *testing.T, ctx context.Context, addr string, req any, extra ...string) result {
	t.Helper()
	b := mustJSON(t, req)
	args := append([]string{"-plaintext", "-format-error", "-max-msg-sz", strconv.Itoa(8 << 20)}, extra...)
	args = append(args, "-d", "@", addr, "hiveq.v1.QueryService/Execute")
	return grpcurlStdin(t, ctx, b, args...)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func grpcurlStdin(t *testing.T, ctx context.Context, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(ctx, grpcurlPath(), args...)
	cmd.Stdin = strings.NewReader(string(stdin))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	r := result{stderr: errb.String()}
	if ee, ok := runErr.(*exec.ExitError); ok {
		r.code = ee.ExitCode() - 64 // grpcurl exits 64 + the status code
	} else if runErr != nil {
		t.Fatalf("grpcurl: %v\n%s", runErr, errb.String())
	}
	r.msgs = decodeAll(t, out.String())
	if r.code > 0 {
		var st struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Details []struct {
				Reason   string         `json:"reason"`
				Metadata map[string]any `json:"metadata"`
			} `json:"details"`
		}
		if err := json.Unmarshal([]byte(r.stderr), &st); err != nil {
			t.Fatalf("grpcurl exit %d, stderr not a status: %v\n%s", r.code+64, err, r.stderr)
		}
		r.code, r.errMsg = st.Code, st.Message
		for _, d := range st.Details {
			if d.Reason != "" {
				r.reason, r.meta = d.Reason, d.Metadata
			}
		}
	}
	return r
}

func grpcurlPath() string {
	p := harness.RepoRoot() + "/.tools/bin/grpcurl"
	if _, err := exec.LookPath(p); err == nil {
		return p
	}
	return "grpcurl"
}

func decodeAll(t *testing.T, s string) []map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	var out []map[string]any
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("grpcurl output: %v\n%s", err, s)
		}
		out = append(out, m)
	}
}

func (r result) of(kind string) []map[string]any {
	var out []map[string]any
	for _, m := range r.msgs {
		if v, ok := m[kind].(map[string]any); ok {
			out = append(out, v)
		}
	}
	return out
}

// rows flattens the batches into rows of Go values (nil for NULL).
func (r result) rows(t *testing.T) [][]any {
	t.Helper()
	var rows [][]any
	for _, b := range r.of("batch") {
		n := int(b["rowCount"].(float64))
		cols := b["columns"].([]any)
		block := make([][]any, n)
		for i := range block {
			block[i] = make([]any, len(cols))
		}
		for c, cv := range cols {
			col := cv.(map[string]any)
			var nulls []byte
			if s, ok := col["nulls"].(string); ok {
				nulls, _ = base64.StdEncoding.DecodeString(s)
			}
			var vals []any
			for k, v := range col {
				if strings.HasSuffix(k, "Values") {
					vals = v.(map[string]any)["values"].([]any)
				}
			}
			if len(vals) != n {
				t.Fatalf("column %d has %d values, batch has %d rows", c, len(vals), n)
			}
			for i := 0; i < n; i++ {
				if i/8 < len(nulls) && nulls[i/8]&(1<<(i%8)) != 0 {
					continue
				}
				block[i][c] = vals[i]
			}
		}
		rows = append(rows, block...)
	}
	return rows
}

func (r result) lastStatus() map[string]any {
	st := r.of("status")
	if len(st) == 0 {
		return nil
	}
	return st[len(st)-1]
}

func TestGrpcurlListAndDescribe(t *testing.T) {
	e := start(t, 1)
	ctx := ctxT(t, 30*time.Second)
	out, errOut, code, err := harness.Grpcurl(ctx, "-plaintext", e.hiveqd.Addr, "list")
	if err != nil || code != 0 {
		t.Fatalf("list: %v %d %s", err, code, errOut)
	}
	for _, svc := range []string{"hiveq.v1.QueryService", "hiveq.v1.ClusterService", "grpc.health.v1.Health"} {
		if !strings.Contains(out, svc) {
			t.Errorf("list lacks %s:\n%s", svc, out)
		}
	}
	out, errOut, code, err = harness.Grpcurl(ctx, "-plaintext", e.hiveqd.Addr, "describe", "hiveq.v1.QueryService")
	if err != nil || code != 0 || !strings.Contains(out, "rpc Execute ( .hiveq.v1.ExecuteRequest ) returns ( stream .hiveq.v1.ExecuteResponse )") {
		t.Fatalf("describe: %v %d %s\n%s", err, code, errOut, out)
	}
}

func TestExecuteAllTypes(t *testing.T) {
	e := start(t, 1)
	ctx := ctxT(t, 30*time.Second)
	r := execute(t, ctx, e.hiveqd.Addr, map[string]any{"statement": "SELECT * FROM all_types ORDER BY id"})
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	first := r.of("status")[0]
	if first["state"] != "QUERY_STATE_SUBMITTED" || first["server"] != e.sims[0].Addr || first["replicaId"] != "e2e" || first["epoch"] == nil {
		t.Errorf("first status: %v", first)
	}
	last := r.lastStatus()
	if last["state"] != "QUERY_STATE_FINISHED" || last["rows"] != "4" || last["elapsed"] == nil {
		t.Errorf("last status: %v", last)
	}
	schema := r.of("schema")
	if len(schema) != 1 {
		t.Fatalf("schemas: %v", schema)
	}
	wantTypes := map[string][2]string{
		"all_types.id": {"int", "COLUMN_KIND_INT32"}, "all_types.c_boolean": {"boolean", "COLUMN_KIND_BOOL"},
		"all_types.c_tinyint": {"tinyint", "COLUMN_KIND_INT32"}, "all_types.c_smallint": {"smallint", "COLUMN_KIND_INT32"},
		"all_types.c_bigint": {"bigint", "COLUMN_KIND_INT64"}, "all_types.c_float": {"float", "COLUMN_KIND_DOUBLE"},
		"all_types.c_double": {"double", "COLUMN_KIND_DOUBLE"}, "all_types.c_decimal": {"decimal(10,2)", "COLUMN_KIND_STRING"},
		"all_types.c_varchar": {"varchar(20)", "COLUMN_KIND_STRING"}, "all_types.c_char": {"char(5)", "COLUMN_KIND_STRING"},
		"all_types.c_date": {"date", "COLUMN_KIND_STRING"}, "all_types.c_timestamp": {"timestamp", "COLUMN_KIND_STRING"},
		"all_types.c_binary": {"binary", "COLUMN_KIND_BYTES"},
	}
	cols := schema[0]["columns"].([]any)
	if len(cols) != 15 {
		t.Fatalf("%d columns", len(cols))
	}
	for i, c := range cols {
		c := c.(map[string]any)
		if int(c["position"].(float64)) != i+1 {
			t.Errorf("column %v position", c)
		}
		if w, ok := wantTypes[c["name"].(string)]; ok && (c["type"] != w[0] || c["kind"] != w[1]) {
			t.Errorf("column %s: type %v kind %v, want %v", c["name"], c["type"], c["kind"], w)
		}
	}
	rows := r.rows(t)
	if len(rows) != 4 {
		t.Fatalf("%d rows", len(rows))
	}
	// Row 3 is NULL in every column but id; JSON carries int64 as strings
	// and bytes as base64.
	for c := 1; c < 15; c++ {
		if rows[2][c] != nil {
			t.Errorf("row 3 column %d = %v, want NULL", c, rows[2][c])
		}
	}
	checks := []struct {
		row, col int
		want     any
	}{
		{0, 1, true}, {0, 2, 1.0}, {1, 2, -128.0}, {1, 3, -32768.0}, {1, 5, "-9223372036854775808"},
		{3, 5, "9223372036854775807"}, {0, 7, 2.25}, {0, 8, "12.50"}, {3, 9, "unicode ✓ é"}, {0, 11, "ab   "},
		{3, 13, "2099-12-31 23:59:59.999999"}, {0, 14, base64.StdEncoding.EncodeToString([]byte{1, 2, 0xff})}, {1, 9, ""},
	}
	for _, c := range checks {
		if rows[c.row][c.col] != c.want {
			t.Errorf("row %d col %d = %#v, want %#v", c.row+1, c.col, rows[c.row][c.col], c.want)
		}
	}
}

func TestErrorsAndBadRequests(t *testing.T) {
	e := start(t, 1)
	ctx := ctxT(t, 2*time.Minute)
	tests := []struct {
		name   string
		req    map[string]any
		code   int
		reason string
		meta   map[string]string
	}{
		{"parse error", map[string]any{"statement": "SELEC 1"}, 3, "HS2_COMPILE_ERROR", map[string]string{"sql_state": "42000", "error_code": "40000", "server": e.sims[0].Addr}},
		{"table not found", map[string]any{"statement": "SELECT * FROM nope"}, 5, "HS2_NOT_FOUND", map[string]string{"sql_state": "42S02", "error_code": "10001"}},
		{"database not found", map[string]any{"statement": "SELECT 1", "database": "nodb"}, 5, "HS2_NOT_FOUND", nil},
		{"empty statement", map[string]any{"statement": ""}, 3, "INVALID_REQUEST", nil},
		{"whitespace statement", map[string]any{"statement": " \n\t "}, 3, "INVALID_REQUEST", nil},
		{"statement over 1 MiB", map[string]any{"statement": "SELECT '" + strings.Repeat("x", 1<<20) + "'"}, 3, "INVALID_REQUEST", nil},
		{"unknown connector", map[string]any{"statement": "SELECT 1", "connector": "nope"}, 3, "INVALID_REQUEST", nil},
		{"fetch size too big", map[string]any{"statement": "SELECT 1", "fetchSize": 100001}, 3, "INVALID_REQUEST", nil},
		{"negative fetch size", map[string]any{"statement": "SELECT 1", "fetchSize": -1}, 3, "INVALID_REQUEST", nil},
		{"negative max rows", map[string]any{"statement": "SELECT 1", "maxRows": -5}, 3, "INVALID_REQUEST", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := execute(t, ctx, e.hiveqd.Addr, tc.req)
			if r.code != tc.code || r.reason != tc.reason {
				t.Fatalf("code %d reason %q, want %d %q\n%s", r.code, r.reason, tc.code, tc.reason, r.stderr)
			}
			for k, v := range tc.meta {
				if r.meta[k] != v {
					t.Errorf("metadata %s = %v, want %v", k, r.meta[k], v)
				}
			}
		})
	}
}

func TestRuntimeFailureAndDeadline(t *testing.T) {
	e := start(t, 1)
	ctx := ctxT(t, time.Minute)
	sim := e.sims[0]

	if err := sim.Fault(ctx, "fail", "on", "true"); err != nil {
		t.Fatal(err)
	}
	r := execute(t, ctx, e.hiveqd.Addr, map[string]any{"statement": "SELECT * FROM employees"})
	if r.code != 2 || r.reason != "HS2_QUERY_FAILED" || r.meta["sql_state"] != "08S01" {
		t.Fatalf("runtime failure: code %d reason %q meta %v\n%s", r.code, r.reason, r.meta, r.stderr)
	}
	if err := sim.Fault(ctx, "heal"); err != nil {
		t.Fatal(err)
	}

	// A deadline reaches HS2: the operation is cancelled and closed.
	if err := sim.Pace(ctx, 1000, 0); err != nil {
		t.Fatal(err)
	}
	r = execute(t, ctx, e.hiveqd.Addr, map[string]any{"statement": "SELECT * FROM synth.rows_1000000"}, "-max-time", "1.5")
	if r.code != 4 {
		t.Fatalf("deadline: code %d, want DEADLINE_EXCEEDED(4)\n%s", r.code, r.stderr)
	}
}

// A client that goes away mid-result gets its HS2 operation cancelled and
// closed within a second.
func TestClientCancelClosesOperation(t *testing.T) {
	e := start(t, 1)
	ctx := ctxT(t, time.Minute)
	sim := e.sims[0]
	if err := sim.Pace(ctx, 20000, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, grpcurlPath(), "-plaintext", "-d", `{"statement":"SELECT * FROM synth.rows_10000000","fetchSize":1000}`,
		e.hiveqd.Addr, "hiveq.v1.QueryService/Execute")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for rows to flow, then kill the client.
	buf := make([]byte, 64<<10)
	seen := ""
	for !strings.Contains(seen, `"batch"`) {
		n, err := stdout.Read(buf)
		if err != nil {
			t.Fatalf("stream ended before a batch: %v\n%s", err, seen)
		}
		seen += string(buf[:n])
		if len(seen) > 1<<20 {
			seen = seen[len(seen)-1024:]
		}
	}
	st, err := sim.Stats(ctx)
	if err != nil || st.OpenOperations != 1 {
		t.Fatalf("while streaming: %+v %v", st, err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	_ = cmd.Wait()
	testenv.Eventually(t, time.Second, func() error {
		st, err := sim.Stats(ctx)
		if err != nil {
			return err
		}
		if st.OpenOperations != 0 {
			return fmt.Errorf("%d open operations", st.OpenOperations)
		}
		return nil
	})
	t.Logf("operation closed %v after the client died", time.Since(killed).Round(time.Millisecond))
}

// A crash of the HS2 running a query ends it with ABORTED naming both
// servers, and the next query runs on the other server.
func TestHS2CrashAbortsRunningQuery(t *testing.T) {
	e := start(t, 2)
	ctx := ctxT(t, time.Minute)
	active, standby := e.sims[0], e.sims[1]
	if err := active.Pace(ctx, 20000, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		done <- execute(t, ctx, e.hiveqd.Addr, map[string]any{"statement": "SELECT * FROM synth.rows_10000000", "fetchSize": 1000})
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		st, err := active.Stats(ctx)
		if err != nil || st.OpenOperations == 0 {
			return fmt.Errorf("query not running yet: %+v %v", st, err)
		}
		return nil
	})
	if err := active.Fault(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != 10 || r.reason != "HS2_LOST" {
		t.Fatalf("code %d reason %q, want ABORTED HS2_LOST\n%s", r.code, r.reason, r.stderr)
	}
	if r.meta["server"] != active.Addr {
		t.Errorf("metadata %v does not name the lost server %s", r.meta, active.Addr)
	}
	// The next query runs on the standby, possibly after a transparent
	// retry if it was routed before the failover was published.
	r = execute(t, ctx, e.hiveqd.Addr, map[string]any{"statement": "SELECT * FROM employees"})
	if r.code != 0 || r.lastStatus()["server"] != standby.Addr || len(r.rows(t)) != 6 {
		t.Fatalf("after failover: code %d first status %v\n%s", r.code, r.of("status"), r.stderr)
	}
	if err := active.Fault(ctx, "heal"); err != nil {
		t.Fatal(err)
	}
}

func TestNoHS2Reachable(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dead := "127.0.0.1:" + strconv.Itoa(port)
	h, err := harness.StartHiveqd(ctx, bins["hiveqd"], t.TempDir(), "hiveqd", nil, "--hs2", dead, "--replica-id", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(10 * time.Second)
	testenv.Eventually(t, 10*time.Second, func() error {
		out, _, _, err := harness.Grpcurl(ctx, "-plaintext", "-d", `{"service":"hiveq.v1.QueryService"}`, h.Addr, "grpc.health.v1.Health/Check")
		if err != nil || !strings.Contains(out, "NOT_SERVING") {
			return fmt.Errorf("health: %s %v", out, err)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		r := execute(t, ctx, h.Addr, map[string]any{"statement": "SELECT 1"})
		if r.code != 14 || r.reason != "NO_HS2_AVAILABLE" || !strings.Contains(r.errMsg, "hive") {
			return fmt.Errorf("code %d reason %q: %s", r.code, r.reason, r.errMsg)
		}
		return nil
	})
}
