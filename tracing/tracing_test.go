package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/hs2"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOff(t *testing.T) {
	tr, err := New(context.Background(), Options{Config: config.Tracing{Exporter: "none", SampleRatio: 1}})
	if err != nil || tr != nil {
		t.Fatalf("none: %v, %v", tr, err)
	}
	// A nil *Tracing has no hooks.
	if tr.HS2Observer("hive") != nil || tr.QueryObserver() != nil || tr.ServerOptions() != nil || tr.DialOptions() != nil || tr.Shutdown(context.Background()) != nil {
		t.Fatal("a nil Tracing has hooks")
	}
}

func TestStdoutHS2Spans(t *testing.T) {
	var out bytes.Buffer
	tr, err := New(context.Background(), Options{Config: config.Tracing{Exporter: "stdout", SampleRatio: 1}, ReplicaID: "r1", Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	obs := tr.HS2Observer("hive")
	if done := obs(context.Background(), "OpenSession", "h:1"); done != nil {
		t.Fatal("an HS2 call without a parent span was traced")
	}
	ctx, parent := tr.tp.Tracer("test").Start(context.Background(), "Execute")
	obs(ctx, "ExecuteStatement", "hs2.example:10000")(&hs2.ServerError{SQLState: "42S02", ErrorCode: 10001, Message: "Table not found 'secret_literal'"})
	parent.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var child struct {
		Name   string
		Parent struct{ SpanID string }
		Status struct{ Code, Description string }
	}
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&child); err != nil {
		t.Fatalf("decode %q: %v", out.String(), err)
	}
	if child.Name != "TCLIService/ExecuteStatement" || child.Parent.SpanID != parent.SpanContext().SpanID().String() || child.Status.Code != "Error" {
		t.Errorf("child span %+v", child)
	}
	if strings.Contains(child.Status.Description, "secret_literal") || !strings.Contains(child.Status.Description, "42S02") {
		t.Errorf("status description %q", child.Status.Description)
	}
}

func TestOTLPConstructsLazily(t *testing.T) {
	// Nothing listens: start-up must not fail, and shutdown must not hang.
	tr, err := New(context.Background(), Options{Config: config.Tracing{Exporter: "otlp", Endpoint: "http://127.0.0.1:1", SampleRatio: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLogHandler(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := New(context.Background(), Options{Config: config.Tracing{SampleRatio: 1}, Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("replica", "r1")
	ctx, span := tr.tp.Tracer("test").Start(context.Background(), "x")
	log.InfoContext(ctx, "with span")
	span.End()
	log.Info("without")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"trace_id":"`+span.SpanContext().TraceID().String()) || strings.Contains(lines[1], "trace_id") {
		t.Fatalf("logs:\n%s", buf.String())
	}
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		t.Fatal("ratio 1 did not sample")
	}
}

func TestErrorDescription(t *testing.T) {
	if d := errorDescription(&hs2.AuthError{Message: "user alice"}); strings.Contains(d, "alice") {
		t.Errorf("auth error description %q names the user", d)
	}
	te := &hs2.TransportError{Server: "h:1", Call: "FetchResults", Err: errors.New("connection reset")}
	if d := errorDescription(te); !strings.Contains(d, "connection reset") {
		t.Errorf("transport description %q", d)
	}
}
