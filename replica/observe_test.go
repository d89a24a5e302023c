package replica_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/config"
	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/replica"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 20 * time.Second

// readyWriter is closed at the replica's "hiveqd listening on" line.
type readyWriter struct {
	once sync.Once
	ch   chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.ch) })
	return len(p), nil
}

type fixture struct {
	metricsURL string
	conn       *grpc.ClientConn
	stop       func() error // stops the replica and returns Run's error
}

func startSim(t testing.TB) *hs2sim.Server {
	t.Helper()
	sim, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0", LongPoll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startReplica runs a standalone replica on servers with /metrics on a
// free port, and waits until it serves.
func startReplica(t testing.TB, servers []string, exp sdktrace.SpanExporter) *fixture {
	return startReplicaWith(t, servers, exp, true)
}

func startReplicaWith(t testing.TB, servers []string, exp sdktrace.SpanExporter, withMetrics bool, mods ...func(*replica.Options)) *fixture {
	t.Helper()
	cfg := config.Default()
	cfg.ReplicaID = "r1"
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownGrace = 2 * time.Second
	cfg.Connectors = []config.Connector{{Name: "hive", Discovery: "static", Static: servers}}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	glis := listen(t)
	opts := replica.Options{Listener: glis, Ready: &readyWriter{ch: make(chan struct{})}, SpanExporter: exp}
	f := &fixture{}
	if withMetrics {
		opts.MetricsListener = listen(t)
		f.metricsURL = "http://" + opts.MetricsListener.Addr().String() + "/metrics"
	}
	for _, m := range mods {
		m(&opts)
	}
	ready := opts.Ready.(*readyWriter)
	ctx, cancel := context.WithCancel(context.Background())
	rep, err := replica.New(ctx, cfg, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rep.Serve(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			rep.Shutdown()
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-ready.ch:
	case err := <-done:
		t.Fatalf("replica ended before serving: %v", err)
	case <-time.After(waitFor):
		t.Fatal("replica not ready")
	}
	conn, err := grpc.NewClient(glis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.conn, f.stop = conn, stop
	f.waitServing(t)
	return f
}

// waitServing waits for the health service to report SERVING (a route).
func (f *fixture) waitServing(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	w, err := healthpb.NewHealthClient(f.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("waiting for SERVING: %v", err)
		}
		if r.Status == healthpb.HealthCheckResponse_SERVING {
			return
		}
	}
}

// query runs stmt and returns the rows received and the final code.
func (f *fixture) query(ctx context.Context, t testing.TB, stmt string) (int64, codes.Code) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	stream, err := hiveqv1.NewQueryServiceClient(f.conn).Execute(ctx, &hiveqv1.ExecuteRequest{Statement: stmt})
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return rows, codes.OK
		}
		if err != nil {
			return rows, status.Code(err)
		}
		rows += int64(resp.GetBatch().GetRowCount())
	}
}

// scrape reads /metrics in the text format: series (name{labels}) to value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitMetrics scrapes until ok accepts the samples.
func waitMetrics(t *testing.T, url string, what string, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		m := scrape(t, url)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			dumpHiveqd(t, m)
			t.Fatalf("metrics never showed %s", what)
		}
		<-tick.C
	}
}

func dumpHiveqd(t *testing.T, m map[string]float64) {
	t.Helper()
	for k, v := range m {
		if strings.HasPrefix(k, "hiveqd_") && !strings.Contains(k, "_bucket") {
			t.Logf("%s %v", k, v)
		}
	}
}

func TestMetrics(t *testing.T) {
	sim := startSim(t)
	f := startReplica(t, []string{sim.Addr()}, nil)

	rows, code := f.query(context.Background(), t, "SELECT * FROM employees")
	if code != codes.OK || rows != 6 {
		t.Fatalf("query: %d rows, %v; want 6, OK", rows, code)
	}
	if _, code := f.query(context.Background(), t, "SELECT * FROM no_such_table"); code == codes.OK {
		t.Fatal("query of a missing table succeeded")
	}

	// A failed query returns its session in the background.
	m := waitMetrics(t, f.metricsURL, "the session back in the pool", func(m map[string]float64) bool {
		return m["hiveqd_hs2_pool_sessions_in_use"] == 0 && m["hiveqd_hs2_pool_sessions_idle"] == 1
	})
	want := map[string]func(float64) bool{
		`hiveqd_queries_total{connector="hive",frontend="hiveq.v1",outcome="OK"}`:              eq(1),
		`hiveqd_rows_streamed_total{connector="hive"}`:                                         eq(6),
		`hiveqd_bytes_streamed_total{connector="hive"}`:                                        gt(100),
		`hiveqd_hs2_call_duration_seconds_count{call="OpenSession",connector="hive"}`:          eq(1),
		`hiveqd_hs2_call_duration_seconds_count{call="ExecuteStatement",connector="hive"}`:     eq(2),
		`hiveqd_hs2_call_duration_seconds_count{call="GetOperationStatus",connector="hive"}`:   gt(0),
		`hiveqd_hs2_call_duration_seconds_count{call="FetchResults",connector="hive"}`:         gt(0),
		`hiveqd_hs2_call_errors_total{call="ExecuteStatement",connector="hive",kind="server"}`: eq(1),
		`hiveqd_hs2_pool_sessions_open`:                                                        eq(1),
		`hiveqd_hs2_pool_sessions_idle`:                                                        eq(1),
		`hiveqd_hs2_pool_sessions_in_use`:                                                      eq(0),
		`hiveqd_queries_running`:                                                               eq(0),
		`hiveqd_route_epoch{connector="hive"}`:                                                 eq(1),
		`hiveqd_route_available{connector="hive"}`:                                             eq(1),
		fmt.Sprintf(`hiveqd_route_info{connector="hive",server=%q}`, sim.Addr()):               eq(1),
		`hiveqd_leader`:               eq(1),
		`hiveqd_cluster_replicas`:     eq(1),
		`hiveqd_coordination_healthy`: eq(1),
		`hiveqd_discovery_candidates{connector="hive",healthy="true"}`:                                                                   eq(1),
		`hiveqd_discovery_candidates{connector="hive",healthy="false"}`:                                                                  eq(0),
		`hiveqd_failovers_total{connector="hive",kind="failure"}`:                                                                        eq(0),
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Execute",grpc_service="hiveq.v1.QueryService",grpc_type="server_stream"}`: eq(1),
		`grpc_server_handling_seconds_count{grpc_method="Execute",grpc_service="hiveq.v1.QueryService",grpc_type="server_stream"}`:       eq(2),
	}
	for series, ok := range want {
		v, found := m[series]
		if !found {
			t.Errorf("missing %s", series)
			continue
		}
		if !ok(v) {
			t.Errorf("%s = %v", series, v)
		}
	}
	// The missing table is an error of HS2's: whatever code it maps to,
	// it is counted under that code.
	failed := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, `hiveqd_queries_total{connector="hive",frontend="hiveq.v1",outcome=`) && !strings.Contains(k, `"OK"`) {
			failed += v
		}
	}
	if failed != 1 {
		t.Errorf("failed queries counted %v times, want 1", failed)
	}
	if t.Failed() {
		dumpHiveqd(t, m)
	}
	if err := f.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func gt(min float64) func(float64) bool  { return func(v float64) bool { return v > min } }

func TestFailoverMetrics(t *testing.T) {
	a, b := startSim(t), startSim(t)
	f := startReplica(t, []string{a.Addr(), b.Addr()}, nil)
	waitMetrics(t, f.metricsURL, "the first server routed", func(m map[string]float64) bool {
		return m[fmt.Sprintf(`hiveqd_route_info{connector="hive",server=%q}`, a.Addr())] == 1 &&
			m[`hiveqd_discovery_candidates{connector="hive",healthy="true"}`] == 2
	})
	if _, code := f.query(context.Background(), t, "SELECT 1"); code != codes.OK {
		t.Fatalf("query on the first server: %v", code)
	}
	a.Crash()
	m := waitMetrics(t, f.metricsURL, "a failover to the second server", func(m map[string]float64) bool {
		return m[fmt.Sprintf(`hiveqd_route_info{connector="hive",server=%q}`, b.Addr())] == 1
	})
	if v := m[`hiveqd_failovers_total{connector="hive",kind="dead"}`]; v != 1 {
		t.Errorf("failovers_total = %v, want 1", v)
	}
	if v := m[`hiveqd_route_epoch{connector="hive"}`]; v != 2 {
		t.Errorf("route_epoch = %v, want 2", v)
	}
	if v := m[`hiveqd_discovery_candidates{connector="hive",healthy="false"}`]; v != 1 {
		t.Errorf("unhealthy candidates = %v, want 1", v)
	}
	if _, code := f.query(context.Background(), t, "SELECT 1"); code != codes.OK {
		t.Fatalf("query after the failover: %v", code)
	}
	if err := f.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// keptSpans is an in-memory exporter whose spans survive the provider's
// shutdown (tracetest's clears them).
type keptSpans struct{ *tracetest.InMemoryExporter }

func (keptSpans) Shutdown(context.Context) error { return nil }

func TestTracing(t *testing.T) {
	sim := startSim(t)
	exp := keptSpans{tracetest.NewInMemoryExporter()}
	f := startReplica(t, []string{sim.Addr()}, exp)

	// The caller's W3C trace context is continued.
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	parentID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"traceparent", "00-"+traceID.String()+"-"+parentID.String()+"-01")
	if rows, code := f.query(ctx, t, "SELECT * FROM employees"); code != codes.OK || rows != 6 {
		t.Fatalf("query: %d rows, %v", rows, code)
	}
	if err := f.stop(); err != nil { // flushes the spans
		t.Fatalf("Run: %v", err)
	}

	spans := exp.GetSpans()
	var server *tracetest.SpanStub
	for i := range spans {
		s := &spans[i]
		if s.Name == "hiveq.v1.QueryService/Execute" && s.SpanKind == trace.SpanKindServer {
			server = s
		}
		if strings.Contains(s.Name, "grpc.health") {
			t.Errorf("health check traced: %s", s.Name)
		}
	}
	if server == nil {
		t.Fatalf("no Execute server span among %d spans", len(spans))
	}
	if server.SpanContext.TraceID() != traceID || server.Parent.SpanID() != parentID {
		t.Errorf("server span trace %s parent %s; want the caller's %s / %s",
			server.SpanContext.TraceID(), server.Parent.SpanID(), traceID, parentID)
	}
	attrs := map[string]string{}
	for _, a := range server.Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["hiveqd.connector"] != "hive" || attrs["hiveqd.query_id"] == "" || attrs["hiveqd.hs2_server"] != sim.Addr() ||
		attrs["hiveqd.epoch"] != "1" || attrs["hiveqd.rows"] != "6" {
		t.Errorf("server span attributes %v", attrs)
	}
	children := map[string]int{}
	for _, s := range spans {
		if s.Parent.SpanID() == server.SpanContext.SpanID() && s.SpanKind == trace.SpanKindClient {
			children[s.Name]++
		}
	}
	for _, call := range []string{"OpenSession", "ExecuteStatement", "GetOperationStatus", "GetResultSetMetadata", "FetchResults", "CloseOperation"} {
		if children["TCLIService/"+call] == 0 {
			t.Errorf("no HS2 %s span under the server span; children: %v", call, children)
		}
	}
}
