package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hiveqd/hiveqd/authn"
	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/console"
	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/service"
)

// adminServer is the web console's HTTP server on cfg.AdminListen. It is a
// listener of its own, not a path on /metrics: Prometheus scrapes stay
// plaintext and credential-free, while the console needs the gRPC port's
// TLS (and so mTLS) and authentication.
type adminServer struct {
	srv *http.Server
	lis net.Listener
	log *slog.Logger
}

type consoleDeps struct {
	coord   cluster.Coordinator
	engine  *query.Engine
	history *console.History
	auth    *authn.Authenticator
	tls     *tls.Config
	cluster *service.ClusterService
	log     *slog.Logger
}

// newAdminServer listens on cfg.AdminListen (nil when it is empty).
func newAdminServer(cfg config.Config, opts Options, d consoleDeps) (*adminServer, error) {
	lis := opts.AdminListener
	if lis == nil && cfg.AdminListen == "" {
		return nil, nil
	}
	h, err := console.New(console.Config{
		Topology:     d.coord.Topology,
		Watch:        d.coord.WatchTopology,
		Queries:      d.engine,
		History:      d.history,
		Authenticate: d.auth.Authenticate,
		Failover: func(ctx context.Context, connector string, epoch uint64, reason string) error {
			_, err := d.cluster.Failover(ctx, &hiveqv1.FailoverRequest{Connector: connector, ExpectedEpoch: epoch, Reason: reason})
			return err
		},
		Logger: d.log,
	})
	if err != nil {
		return nil, err
	}
	if lis == nil {
		if lis, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug)} // refused handshakes are not errors
	if d.tls != nil {
		tc := d.tls.Clone()
		tc.NextProtos = []string{"h2", "http/1.1"}
		srv.TLSConfig = tc
		lis = tls.NewListener(lis, tc)
	}
	return &adminServer{srv: srv, lis: lis, log: d.log}, nil
}

func (a *adminServer) serve() error {
	a.log.Info("web console serving", "addr", a.lis.Addr().String(), "path", "/console/", "tls", a.srv.TLSConfig != nil)
	if err := a.srv.Serve(a.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

// close ends the console's event streams at once: they would hold a
// graceful shutdown for ever.
func (a *adminServer) close() {
	if a != nil {
		a.srv.Close()
	}
}
