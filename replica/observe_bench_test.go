package replica_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/codes"
)

// BenchmarkObservability streams synth.rows_200000 through a whole replica
// with observability off, with metrics, and with metrics and tracing
// (every trace sampled, spans dropped by a no-op exporter):
//
//	go test -run '^$' -bench Observability -benchtime 20x ./replica
func BenchmarkObservability(b *testing.B) {
	const rows = 200_000
	sim := startSim(b)
	for _, bc := range []struct {
		name             string
		metrics, tracing bool
	}{{"off", false, false}, {"metrics", true, false}, {"metrics+tracing", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			var exp *tracetest.NoopExporter
			if bc.tracing {
				exp = tracetest.NewNoopExporter()
			}
			var f *fixture
			if exp != nil {
				f = startReplicaWith(b, []string{sim.Addr()}, exp, bc.metrics)
			} else {
				f = startReplicaWith(b, []string{sim.Addr()}, nil, bc.metrics)
			}
			defer f.stop()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if n, code := f.query(context.Background(), b, "SELECT * FROM synth.rows_200000"); n != rows || code != codes.OK {
					b.Fatalf("%d rows, %v", n, code)
				}
			}
			b.ReportMetric(float64(b.N*rows)/time.Since(start).Seconds(), "rows/s")
		})
	}
}
