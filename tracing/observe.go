package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/query"
)

// Attribute keys of hiveqd's own span attributes.
const (
	AttrConnector = attribute.Key("hiveqd.connector")
	AttrFrontend  = attribute.Key("hiveqd.frontend")
	AttrQueryID   = attribute.Key("hiveqd.query_id")
	AttrEpoch     = attribute.Key("hiveqd.epoch")
	AttrServer    = attribute.Key("hiveqd.hs2_server")
	AttrReplica   = attribute.Key("hiveqd.replica")
	AttrRows      = attribute.Key("hiveqd.rows")
	AttrSQLState  = attribute.Key("hive.sql_state")
	AttrErrorCode = attribute.Key("hive.error_code")
)

// HS2Observer is the hs2.Options.Observe hook of one connector's query
// sessions: a client span per Thrift call, under the caller's span. Calls
// without a span in their context (pool housekeeping) are not traced, so
// they do not start traces of their own.
func (t *Tracing) HS2Observer(connector string) hs2.ObserveFunc {
	if t == nil {
		return nil
	}
	return func(ctx context.Context, call, server string) func(error) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return nil
		}
		attrs := []attribute.KeyValue{
			attribute.String("rpc.system", "apache_thrift"),
			attribute.String("rpc.service", "TCLIService"),
			attribute.String("rpc.method", call),
			AttrConnector.String(connector),
		}
		if host, port, err := net.SplitHostPort(server); err == nil {
			attrs = append(attrs, attribute.String("server.address", host))
			if p, err := strconv.Atoi(port); err == nil {
				attrs = append(attrs, attribute.Int("server.port", p))
			}
		}
		_, span := t.tracer.Start(ctx, "TCLIService/"+call,
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
		if !span.IsRecording() {
			return nil
		}
		return func(err error) {
			if err != nil {
				span.SetStatus(codes.Error, errorDescription(err))
				var se *hs2.ServerError
				if errors.As(err, &se) {
					span.SetAttributes(AttrSQLState.String(se.SQLState), AttrErrorCode.Int(int(se.ErrorCode)))
				}
			}
			span.End()
		}
	}
}

// errorDescription describes an HS2 call's failure without HS2's message,
// which may quote the statement.
func errorDescription(err error) string {
	var se *hs2.ServerError
	var ae *hs2.AuthError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("HiveServer2 error (SQLState %s, error code %d)", se.SQLState, se.ErrorCode)
	case errors.As(err, &ae):
		return "HiveServer2 refused the credentials"
	}
	return err.Error() // transport errors name addresses and network causes
}

// QueryObserver is the query.Config.Observe hook: it puts the query's
// id, front-end, connector, server and epoch on the call's span, and an
// event per state change.
func (t *Tracing) QueryObserver() query.ObserveFunc {
	if t == nil {
		return nil
	}
	return func(ctx context.Context, qo query.Observation) query.QueryObserver {
		span := trace.SpanFromContext(ctx)
		if !span.IsRecording() {
			return nil
		}
		span.SetAttributes(AttrConnector.String(qo.Connector))
		if qo.Frontend != "" {
			span.SetAttributes(AttrFrontend.String(qo.Frontend))
		}
		return &queryObserver{span: span, state: -1}
	}
}

type queryObserver struct {
	span  trace.Span
	state query.State
	epoch uint64
}

func (o *queryObserver) Sent(ev query.Event) {
	if ev.Kind != query.EventStatus {
		return
	}
	st := ev.Status
	if o.state == -1 {
		o.span.SetAttributes(AttrQueryID.String(st.QueryID), AttrReplica.String(st.ReplicaID))
	}
	if st.State == o.state && st.Epoch == o.epoch {
		return // progress only
	}
	o.state, o.epoch = st.State, st.Epoch
	attrs := []attribute.KeyValue{attribute.String("state", st.State.String()), AttrRows.Int64(st.Rows)}
	if st.Server != "" {
		attrs = append(attrs, AttrServer.String(st.Server), AttrEpoch.Int64(int64(st.Epoch)))
		o.span.SetAttributes(AttrServer.String(st.Server), AttrEpoch.Int64(int64(st.Epoch)))
	}
	o.span.AddEvent("query "+st.State.String(), trace.WithAttributes(attrs...))
	if st.State.Terminal() {
		o.span.SetAttributes(AttrRows.Int64(st.Rows))
	}
}

func (o *queryObserver) Done(*query.Error) {} // otelgrpc sets the span's status

// LogHandler adds trace_id and span_id to records logged with a context
// that carries a span, so that logs and traces can be joined.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }
