package replica

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/metrics"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/tracing"
	"github.com/hiveqd/hiveqd/traffic"
)

// metricsListener is where /metrics is served, nil when it is off.
func metricsListener(cfg config.Config, opts Options) (net.Listener, error) {
	if opts.MetricsListener != nil {
		return opts.MetricsListener, nil
	}
	if cfg.MetricsListen == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", cfg.MetricsListen, err)
	}
	return lis, nil
}

func connectorNames(cfg config.Config) []string {
	names := make([]string, 0, len(cfg.Connectors))
	for _, c := range cfg.Connectors {
		names = append(names, c.Name)
	}
	return names
}

// observeHS2 hooks metrics, tracing and passive health evidence into the
// engine's HS2 sessions (not the health probes': their calls are no
// query's, and probes are the active half of health).
func observeHS2(conns map[string]query.Connector, m *metrics.Metrics, tr *tracing.Tracing, obs *traffic.Observer) {
	for name, c := range conns {
		c.Options.Observe = hs2.Observers(m.HS2Observer(name), tr.HS2Observer(name),
			func(_ context.Context, _, server string) func(error) { return obs.CallStarted(name, server) })
		conns[name] = c
	}
}

func metricsMux(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	return mux
}

// stopMetrics stops the /metrics server last, so that the shutdown itself
// can be watched; a scrape in progress gets a few seconds.
func stopMetrics(srv *http.Server, log *slog.Logger) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("metrics server shutdown", "err", err)
		srv.Close()
	}
}

// shutdownTracing exports the spans still buffered.
func shutdownTracing(tr *tracing.Tracing, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		log.Warn("tracing shutdown", "err", err)
	}
}
