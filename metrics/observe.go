package metrics

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/stats"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/query"
)

// HS2Observer is the hs2.Options.Observe hook of one connector's query
// sessions: call latency and failures.
func (m *Metrics) HS2Observer(connector string) hs2.ObserveFunc {
	if m == nil {
		return nil
	}
	connector = m.connector(connector)
	// The latency histogram of each call hiveqd makes, curried once.
	latency := make(map[string]prometheus.Observer, len(hs2Calls))
	for _, c := range hs2Calls {
		latency[c] = m.hs2Latency.WithLabelValues(connector, c)
	}
	return func(ctx context.Context, call, _ string) func(error) {
		start := time.Now()
		return func(err error) {
			h := latency[call]
			if h == nil {
				h = m.hs2Latency.WithLabelValues(connector, call)
			}
			observe(h, since(start), ctx)
			if err != nil {
				m.hs2Errors.WithLabelValues(connector, call, errorKind(err)).Inc()
			}
		}
	}
}

// errorKind classes an HS2 call's error for hs2_call_errors_total.
func errorKind(err error) string {
	var se *hs2.ServerError
	var ae *hs2.AuthError
	switch {
	case errors.As(err, &se):
		return "server"
	case errors.As(err, &ae):
		return "auth"
	case errors.Is(err, context.Canceled):
		return "canceled" // the query ended, or the server was replaced
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "transport"
}

// QueryObserver is the query.Config.Observe hook: queries by front-end
// and outcome, rows and bytes streamed.
func (m *Metrics) QueryObserver() query.ObserveFunc {
	if m == nil {
		return nil
	}
	return func(ctx context.Context, qo query.Observation) query.QueryObserver {
		cm := m.connectorMetrics(qo.Connector)
		if sb, _ := ctx.Value(streamBytesKey{}).(*streamBytes); sb != nil {
			sb.c.Store(cm.bytes)
		}
		return &queryObserver{m: m, ctx: ctx, c: cm, frontend: frontend(qo.Frontend)}
	}
}

// hs2Calls are the Thrift calls hiveqd's sessions make.
var hs2Calls = []string{
	"OpenSession", "CloseSession", "GetInfo", "ExecuteStatement", "GetOperationStatus",
	"GetResultSetMetadata", "FetchResults", "CancelOperation", "CloseOperation",
	"GetCatalogs", "GetSchemas", "GetTables", "GetTableTypes", "GetColumns", "GetFunctions",
	"GetTypeInfo", "GetPrimaryKeys", "GetCrossReference",
}

// connectorMetrics are one connector's query counters, curried.
type connectorMetrics struct {
	name  string
	rows  prometheus.Counter
	bytes counterRef
	ok    map[string]prometheus.Counter // queries_total{outcome="OK"} by front-end
}

// connectorMetrics are name's counters, or unknownConnector's.
func (m *Metrics) connectorMetrics(name string) *connectorMetrics {
	if cm := m.perConnector[name]; cm != nil {
		return cm
	}
	m.unknownOnce.Do(func() { m.unknown = m.newConnectorMetrics(unknownConnector) })
	return m.unknown
}

func (m *Metrics) newConnectorMetrics(c string) *connectorMetrics {
	cm := &connectorMetrics{name: c, rows: m.rows.WithLabelValues(c), bytes: counterRef{m.bytes.WithLabelValues(c)}}
	if c != unknownConnector { // its OK series appear with its first success
		cm.ok = map[string]prometheus.Counter{}
		for _, f := range []string{query.FrontendHiveQ, query.FrontendFlightSQL} {
			cm.ok[f] = m.queries.WithLabelValues(c, f, "OK")
		}
	}
	return cm
}

type queryObserver struct {
	m        *Metrics
	ctx      context.Context
	c        *connectorMetrics
	frontend string
}

func (o *queryObserver) Sent(ev query.Event) {
	if ev.Kind == query.EventBatch && ev.Batch != nil {
		o.c.rows.Add(float64(ev.Batch.Rows))
	}
}

func (o *queryObserver) Done(err *query.Error) {
	c := o.c.ok[o.frontend]
	if err != nil || c == nil {
		c = o.m.queries.WithLabelValues(o.c.name, o.frontend, Outcome(err))
	}
	if ex := exemplar(o.ctx); ex != nil {
		c.(prometheus.ExemplarAdder).AddWithExemplar(1, ex)
		return
	}
	c.Inc()
}

// Outcome is a query's outcome label: "OK", or the engine's code name
// (InvalidArgument, Unavailable, Aborted, ..., Failed for a statement HS2
// failed at run time).
func Outcome(err *query.Error) string {
	if err == nil {
		return "OK"
	}
	return err.Code.String()
}

// frontend is the front-end label; queries that name none came by hiveq.v1.
func frontend(f string) string {
	switch f {
	case query.FrontendFlightSQL:
		return f
	}
	return query.FrontendHiveQ
}

// bytesHandler counts the wire bytes of Execute responses. The stream's
// connector is only known once its request is read, so TagRPC leaves a
// slot in the context that the query observer fills.
type bytesHandler struct{}

type streamBytesKey struct{}

type counterRef struct{ prometheus.Counter }

type streamBytes struct{ c atomic.Value } // counterRef

func (bytesHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if info.FullMethodName != hiveqv1.QueryService_Execute_FullMethodName {
		return ctx
	}
	return context.WithValue(ctx, streamBytesKey{}, &streamBytes{})
}

func (bytesHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	p, ok := s.(*stats.OutPayload)
	if !ok {
		return
	}
	if sb, _ := ctx.Value(streamBytesKey{}).(*streamBytes); sb != nil {
		if c, ok := sb.c.Load().(counterRef); ok {
			c.Add(float64(p.WireLength))
		}
	}
}

func (bytesHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (bytesHandler) HandleConn(context.Context, stats.ConnStats) {}
