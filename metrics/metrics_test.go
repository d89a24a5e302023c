package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/routing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOnSwitch(t *testing.T) {
	m := New(Config{Connectors: []string{"hive"}})
	a, b := &hs2.Endpoint{Host: "a", Port: 1}, &hs2.Endpoint{Host: "b", Port: 1}
	m.OnSwitch(nil, &routing.Route{Connector: "hive", Epoch: 1, Endpoint: a})                                                      // first route
	m.OnSwitch(&routing.Route{Connector: "hive", Epoch: 1, Endpoint: a}, &routing.Route{Connector: "hive", Epoch: 2, Endpoint: a}) // same server
	m.OnSwitch(&routing.Route{Connector: "hive", Epoch: 2, Endpoint: a}, &routing.Route{Connector: "hive", Epoch: 3, Endpoint: b})
	m.OnSwitch(&routing.Route{Connector: "hive", Epoch: 3, Endpoint: b}, &routing.Route{Connector: "hive", Epoch: 4, Endpoint: a, Drain: true})
	m.OnSwitch(&routing.Route{Connector: "hive", Epoch: 4, Endpoint: a}, &routing.Route{Connector: "hive", Epoch: 5}) // none left
	m.OnSwitch(&routing.Route{Connector: "hive", Epoch: 5}, &routing.Route{Connector: "hive", Epoch: 6, Endpoint: b}) // from none
	m.OnSwitch(&routing.Route{Connector: "hive", Epoch: 6, Endpoint: b}, &routing.Route{Connector: "hive", Epoch: 7, Endpoint: a, PrevDead: true})
	if got := value(t, m.failovers.WithLabelValues("hive", "dead")); got != 1 {
		t.Errorf("dead %v, want 1", got)
	}
	if got := value(t, m.failovers.WithLabelValues("hive", "failure")); got != 2 {
		t.Errorf("failures %v, want 2", got)
	}
	if got := value(t, m.failovers.WithLabelValues("hive", "drain")); got != 1 {
		t.Errorf("drains %v, want 1", got)
	}
}

func TestLabelsAreBounded(t *testing.T) {
	m := New(Config{Connectors: []string{"hive"}})
	for i := range 50 {
		o := m.QueryObserver()(context.Background(), query.Observation{Connector: fmt.Sprintf("client-chosen-%d", i)})
		o.Sent(query.Event{Kind: query.EventBatch, Batch: &hs2.Batch{Rows: 2}})
		o.Done(&query.Error{Code: query.NotFound})
	}
	if got := value(t, m.queries.WithLabelValues(unknownConnector, query.FrontendHiveQ, "NotFound")); got != 50 {
		t.Errorf("unknown-connector queries %v, want 50", got)
	}
	if n := count(m.queries); n != 3 { // hive/{hiveq.v1,flightsql}/OK and unknown/hiveq.v1/NotFound
		t.Errorf("%d query series", n)
	}
	if got := value(t, m.rows.WithLabelValues(unknownConnector)); got != 100 {
		t.Errorf("rows %v", got)
	}
}

func TestErrorKind(t *testing.T) {
	for err, want := range map[error]string{
		&hs2.ServerError{}: "server",
		&hs2.AuthError{}:   "auth",
		&hs2.TransportError{Err: fmt.Errorf("%w: reset", context.Canceled)}:         "canceled",
		&hs2.TransportError{Err: fmt.Errorf("%w: reset", context.DeadlineExceeded)}: "timeout",
		&hs2.TransportError{Err: errors.New("connection refused")}:                  "transport",
	} {
		if got := errorKind(err); got != want {
			t.Errorf("errorKind(%v) = %s, want %s", err, got, want)
		}
	}
}

func TestNilMetricsHasNoHooks(t *testing.T) {
	var m *Metrics
	if m.HS2Observer("hive") != nil || m.QueryObserver() != nil || m.ServerOptions() != nil {
		t.Fatal("a nil Metrics has hooks")
	}
	m.OnSwitch(nil, nil)
	m.Watch(Sources{})
	m.InitializeServer(nil)
}

// value reads a counter (client_golang's testutil needs a module this
// repository does not have).
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

func count(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// BenchmarkHooks is the cost the hooks add per HS2 call and per batch:
//
//	go test -run '^$' -bench Hooks ./metrics
func BenchmarkHooks(b *testing.B) {
	m := New(Config{Connectors: []string{"hive"}})
	ctx := context.Background()
	b.Run("hs2-call", func(b *testing.B) {
		obs := m.HS2Observer("hive")
		b.ReportAllocs()
		for range b.N {
			obs(ctx, "FetchResults", "h:1")(nil)
		}
	})
	b.Run("query", func(b *testing.B) {
		// A small query's hooks: observer, two batches, done.
		obs := m.QueryObserver()
		ev := query.Event{Kind: query.EventBatch, Batch: &hs2.Batch{Rows: 1}}
		b.ReportAllocs()
		for range b.N {
			o := obs(ctx, query.Observation{Frontend: query.FrontendHiveQ, Connector: "hive"})
			o.Sent(ev)
			o.Sent(ev)
			o.Done(nil)
		}
	})
	b.Run("batch", func(b *testing.B) {
		o := m.QueryObserver()(ctx, query.Observation{Connector: "hive"})
		ev := query.Event{Kind: query.EventBatch, Batch: &hs2.Batch{Rows: 1000}}
		for range b.N {
			o.Sent(ev)
		}
	})
}
