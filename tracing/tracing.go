// Package tracing is hiveqd's OpenTelemetry tracing: a server span per
// gRPC call (otelgrpc, W3C trace context and baggage taken from callers),
// a client span per HiveServer2 Thrift call under it, and the query's id,
// connector, server and epoch on the server span. Spans go to stdout or to
// an OTLP gRPC collector; tracing is off unless configured. Spans carry no
// statement text and no user names.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/hiveqd/hiveqd/config"
)

// instrumentation is the tracer name of hiveqd's own spans.
const instrumentation = "github.com/hiveqd/hiveqd"

// Options configure New.
type Options struct {
	Config    config.Tracing
	ReplicaID string
	Cluster   string
	// Exporter, when set, receives the spans whatever Config.Exporter
	// says (tests use an in-memory exporter).
	Exporter sdktrace.SpanExporter
	// Stdout is where the stdout exporter writes; default os.Stdout.
	Stdout io.Writer
}

// Tracing is one replica's tracer provider. A nil *Tracing is valid and
// disables tracing: its hooks and options are nil.
type Tracing struct {
	tp     *sdktrace.TracerProvider
	prop   propagation.TextMapPropagator
	tracer trace.Tracer
}

// New builds the provider, or returns nil when tracing is off.
func New(ctx context.Context, o Options) (*Tracing, error) {
	exp := o.Exporter
	if exp == nil {
		var err error
		switch o.Config.Exporter {
		case "", "none":
			return nil, nil
		case "stdout":
			w := o.Stdout
			if w == nil {
				w = os.Stdout
			}
			exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
		case "otlp":
			var opts []otlptracegrpc.Option
			if o.Config.Endpoint != "" {
				// http:// means plaintext, https:// TLS with system roots.
				opts = append(opts, otlptracegrpc.WithEndpointURL(o.Config.Endpoint))
			}
			// The client connects lazily: a collector that is down does
			// not stop hiveqd, spans are dropped and retried.
			exp, err = otlptracegrpc.New(ctx, opts...)
		default:
			return nil, fmt.Errorf("tracing: unknown exporter %q", o.Config.Exporter)
		}
		if err != nil {
			return nil, fmt.Errorf("tracing: %s exporter: %w", o.Config.Exporter, err)
		}
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", "hiveqd")}
	if o.ReplicaID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", o.ReplicaID))
	}
	if o.Cluster != "" {
		attrs = append(attrs, attribute.String("service.namespace", o.Cluster))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.Config.SampleRatio))),
	)
	return &Tracing{
		tp:     tp,
		prop:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		tracer: tp.Tracer(instrumentation),
	}, nil
}

// TracerProvider is the provider's API side; nil when tracing is off.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.tp
}

// Propagator is W3C trace context plus baggage.
func (t *Tracing) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return nil
	}
	return t.prop
}

func (t *Tracing) grpcOptions() []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(t.tp),
		otelgrpc.WithPropagators(t.prop),
		// Metrics come from Prometheus; no global meter is touched.
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
	}
}

// ServerOptions trace a gRPC server's calls; health checks are not
// traced (load balancers poll them every few seconds).
func (t *Tracing) ServerOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	opts := append(t.grpcOptions(), otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(opts...))}
}

// DialOptions trace outgoing calls (admin calls forwarded to the leader)
// and pass the trace context on.
func (t *Tracing) DialOptions() []grpc.DialOption {
	if t == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(t.grpcOptions()...))}
}

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	err := t.tp.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: spans may have been lost at shutdown: %w", err)
	}
	return err
}
