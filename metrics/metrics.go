// Package metrics is hiveqd's Prometheus instrumentation: gRPC server
// metrics (go-grpc-middleware's provider, with handling-time histograms),
// queries by connector and outcome, rows and bytes streamed, HiveServer2
// call latency, and the replica's state (session pools, routes and epochs,
// failovers, leadership, discovery candidates, coordination health) read
// at scrape time. Labels carry connector names, gRPC codes and HS2 call
// names only: never query text, user names or secrets.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/routing"
)

// Namespace prefixes hiveqd's own metric names.
const Namespace = "hiveqd"

// unknownConnector labels requests naming a connector that is not
// configured: client-chosen names must not create series.
const unknownConnector = "unknown"

// gRPC handling time: Execute streams for as long as a query runs.
var grpcBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// HS2 call latency: FetchResults and most calls take milliseconds;
// GetOperationStatus long-polls up to 5s.
var hs2Buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Config configures Metrics.
type Config struct {
	// Connectors are the configured connector names: their series exist
	// from the start; any other name is labelled "unknown".
	Connectors []string
	// QueryLimit is the replica's limit of concurrent queries
	// (limits.max_concurrent_queries), exported as hiveqd_queries_limit
	// so that alerts can compare hiveqd_queries_running with it; 0: none.
	QueryLimit int
}

// Metrics is one replica's registry and instruments. A nil *Metrics is
// valid: it disables everything (its hooks are nil).
type Metrics struct {
	reg        *prometheus.Registry
	grpc       *grpcprom.ServerMetrics
	connectors map[string]bool
	// perConnector holds each connector's curried query counters, made
	// in New and read-only after: a query's hooks look them up once
	// instead of hashing label values per event. unknownConnector's are
	// made on first use (so that its series appear only then).
	perConnector map[string]*connectorMetrics
	unknownOnce  sync.Once
	unknown      *connectorMetrics
	state        *stateCollector

	queries    *prometheus.CounterVec
	rows       *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	hs2Latency *prometheus.HistogramVec
	hs2Errors  *prometheus.CounterVec
	failovers  *prometheus.CounterVec
}

// New returns Metrics with a fresh registry (not Prometheus' global one,
// so that several replicas can live in one test process).
func New(cfg Config) *Metrics {
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		connectors: map[string]bool{},
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets(grpcBuckets))),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "queries_total",
			Help: "Queries by connector, front-end (hiveq.v1, flightsql) and outcome (OK, or the engine's code: InvalidArgument, Unavailable, Aborted, Canceled, Failed, ...).",
		}, []string{"connector", "frontend", "outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rows_streamed_total",
			Help: "Result rows sent to clients, by connector.",
		}, []string{"connector"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "bytes_streamed_total",
			Help: "Bytes of Execute responses sent to clients (gRPC wire length), by connector.",
		}, []string{"connector"}),
		hs2Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "hs2_call_duration_seconds",
			Help:    "HiveServer2 Thrift call latency by connector and call (GetOperationStatus includes HS2's long poll).",
			Buckets: hs2Buckets,
		}, []string{"connector", "call"}),
		hs2Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "hs2_call_errors_total",
			Help: "Failed HiveServer2 calls by connector, call and kind (server, auth, transport, canceled, timeout).",
		}, []string{"connector", "call", "kind"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "failovers_total",
			Help: "Route changes that moved a connector off its server, by kind: dead (found dead or aborted by hand: its running queries ended), drain (planned, or probes timed out: running queries may finish), failure (any other failed health check).",
		}, []string{"connector", "kind"}),
	}
	m.state = &stateCollector{}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpc, m.queries, m.rows, m.bytes, m.hs2Latency, m.hs2Errors, m.failovers, m.state,
	)
	if cfg.QueryLimit > 0 {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "queries_limit",
			Help: "The replica's limit of concurrent queries (limits.max_concurrent_queries); absent when unlimited.",
		}, func() float64 { return float64(cfg.QueryLimit) }))
	}
	m.perConnector = map[string]*connectorMetrics{}
	for _, c := range cfg.Connectors {
		m.perConnector[c] = m.newConnectorMetrics(c)
	}
	for _, c := range cfg.Connectors {
		m.connectors[c] = true
		// Series exist from the start, so that rate() and absent() work
		// before the first query or failover.
		for _, f := range []string{query.FrontendHiveQ, query.FrontendFlightSQL} {
			m.queries.WithLabelValues(c, f, "OK")
		}
		m.rows.WithLabelValues(c)
		m.bytes.WithLabelValues(c)
		m.failovers.WithLabelValues(c, "dead")
		m.failovers.WithLabelValues(c, "failure")
		m.failovers.WithLabelValues(c, "drain")
	}
	return m
}

// Registry is where every hiveqd metric is registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry (OpenMetrics when asked for, which carries
// trace-id exemplars).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: m.reg})
}

// ServerOptions instrument a gRPC server; put them before the other
// interceptors so that every call is counted, refused ones included.
func (m *Metrics) ServerOptions() []grpc.ServerOption {
	if m == nil {
		return nil
	}
	ex := grpcprom.WithExemplarFromContext(exemplar)
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.grpc.UnaryServerInterceptor(ex)),
		grpc.ChainStreamInterceptor(m.grpc.StreamServerInterceptor(ex)),
		grpc.StatsHandler(bytesHandler{}),
	}
}

// InitializeServer creates the gRPC series of every registered method (at
// zero); call it after the services are registered.
func (m *Metrics) InitializeServer(gs *grpc.Server) {
	if m != nil {
		m.grpc.InitializeMetrics(gs)
	}
}

// Watch sets what the state metrics are read from at scrape time.
func (m *Metrics) Watch(src Sources) {
	if m != nil {
		m.state.set(src)
	}
}

// OnSwitch is a routing.SwitchFunc: it counts switches that moved a
// connector off its server.
func (m *Metrics) OnSwitch(old, new *routing.Route) {
	if m == nil || old == nil || old.Endpoint == nil || new == nil {
		return
	}
	if new.Endpoint != nil && *new.Endpoint == *old.Endpoint {
		return
	}
	kind := "failure"
	switch {
	case new.PrevDead:
		kind = "dead"
	case new.Drain:
		kind = "drain"
	}
	m.failovers.WithLabelValues(m.connector(new.Connector), kind).Inc()
}

// connector is the label for a connector name.
func (m *Metrics) connector(name string) string {
	if m.connectors[name] {
		return name
	}
	return unknownConnector
}

// exemplar links a sample to the trace of the call that made it.
func exemplar(ctx context.Context) prometheus.Labels {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return nil
	}
	return prometheus.Labels{"trace_id": sc.TraceID().String()}
}

// observe records v in h, with the trace as exemplar when there is one.
func observe(h prometheus.Observer, v float64, ctx context.Context) {
	if ex := exemplar(ctx); ex != nil {
		if eo, ok := h.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, ex)
			return
		}
	}
	h.Observe(v)
}

func since(start time.Time) float64 { return time.Since(start).Seconds() }

func boolLabel(b bool) string { return strconv.FormatBool(b) }
