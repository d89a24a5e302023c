// Package replica assembles one hiveqd process from its configuration:
// discovery and selectors per connector, the coordinator (standalone or
// etcd), the query engine, and the gRPC server with its services.
package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/reflection"

	"github.com/hiveqd/hiveqd/authn"
	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/console"
	"github.com/hiveqd/hiveqd/flightsql"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/metrics"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
	"github.com/hiveqd/hiveqd/service"
	"github.com/hiveqd/hiveqd/tlsutil"
	"github.com/hiveqd/hiveqd/tracing"
	"github.com/hiveqd/hiveqd/traffic"
)

// Options are what the process around a replica provides.
type Options struct {
	Logger *slog.Logger
	// Listener, when set, is used instead of listening on cfg.Listen.
	Listener net.Listener
	// Ready, when set, is told the bound address once the server accepts
	// calls; the binary prints "hiveqd listening on ADDR" there.
	Ready io.Writer
	// ServerOptions are added after hiveqd's own (logging, recovery,
	// authentication, TLS).
	ServerOptions []grpc.ServerOption
	// MetricsListener, when set, serves /metrics instead of listening on
	// cfg.MetricsListen.
	MetricsListener net.Listener
	// AdminListener, when set, serves the web console instead of
	// listening on cfg.AdminListen.
	AdminListener net.Listener
	// SpanExporter, when set, receives trace spans whatever
	// cfg.Tracing.Exporter says (tests).
	SpanExporter sdktrace.SpanExporter
	// FlightSQLListener, when set, serves Arrow Flight SQL instead of
	// listening on cfg.FlightSQL.Listen.
	FlightSQLListener net.Listener
	// Version is reported to Flight SQL clients (SqlInfo).
	Version string
}

// peerCredentials are how a follower reaches the leader to forward an admin
// call: plaintext when the port is; otherwise TLS trusting the client CA
// (replicas share one PKI) and presenting the replica's own certificate, so
// that mTLS deployments accept it.
func peerCredentials(sec config.Security) (credentials.TransportCredentials, error) {
	if sec.TLSCert == "" {
		return insecure.NewCredentials(), nil
	}
	tc, err := tlsutil.ClientConfig(sec.TLSClientCA, sec.TLSCert, sec.TLSKey, "")
	if err != nil {
		return nil, fmt.Errorf("security: peer TLS: %w", err)
	}
	return credentials.NewTLS(tc), nil
}

// Run serves until ctx ends, then shuts down in order: leadership is given
// up at once (another replica takes over in milliseconds), health turns
// NOT_SERVING, running streams get cfg.ShutdownGrace to finish before they
// are cancelled, and HS2 sessions are closed.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr, err := tracing.New(ctx, tracing.Options{Config: cfg.Tracing, ReplicaID: cfg.ReplicaID, Cluster: cfg.Cluster, Exporter: opts.SpanExporter})
	if err != nil {
		return err
	}
	defer shutdownTracing(tr, log)
	if tr != nil {
		log = slog.New(tracing.LogHandler(log.Handler()))
	}
	engineLog := log // the engine adds the replica to its query logs itself
	log = log.With("replica", cfg.ReplicaID)

	lis := opts.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	defer lis.Close()
	mlis, err := metricsListener(cfg, opts)
	if err != nil {
		return err
	}
	var mets *metrics.Metrics
	if mlis != nil {
		defer mlis.Close()
		mets = metrics.New(metrics.Config{Connectors: connectorNames(cfg), QueryLimit: cfg.Limits.MaxConcurrentQueries})
	}
	addr := lis.Addr().String()
	advertise := cfg.AdvertiseAddr
	if advertise == "" || strings.HasSuffix(advertise, ":0") {
		advertise = addr
	}

	table := routing.NewTable()
	// Passive HS2 health: the engine's calls tell the selector whether a
	// server whose probes time out still answers (saturated) or not (hung).
	obs := traffic.New(nil)
	connectors, engineConnectors, err := buildConnectors(cfg, obs, log)
	if err != nil {
		return err
	}
	observeHS2(engineConnectors, mets, tr, obs)
	if mets != nil {
		table.OnSwitch(mets.OnSwitch)
	}
	history := console.NewHistory(1024, time.Hour, nil)
	table.OnSwitch(history.Record)
	coord, err := buildCoordinator(cfg, table, connectors, advertise, obs, log)
	if err != nil {
		return err
	}
	engine, err := query.New(query.Config{
		ReplicaID:        cfg.ReplicaID,
		Routes:           table,
		DefaultConnector: cfg.DefaultConnector,
		Connectors:       engineConnectors,
		Reporter:         coord,
		Limits:           engineLimits(cfg.Limits),
		Observe:          query.Observers(mets.QueryObserver(), tr.QueryObserver()),
		Logger:           engineLog,
	})
	if err != nil {
		return err
	}
	sec := cfg.Security
	auth, serverTLS, err := (&authn.Flags{
		TokenFile: sec.AuthTokenFile, Admins: strings.Join(sec.AuthAdmins, ","), ServicePrincipal: sec.ServicePrincipal,
		TLSCert: sec.TLSCert, TLSKey: sec.TLSKey, TLSClientCA: sec.TLSClientCA,
	}).Build(log)
	if err != nil {
		return fmt.Errorf("security: %w", err)
	}
	// Everything that can fail on configuration comes before NewHealth,
	// whose watcher only Close stops.
	peerCreds, err := peerCredentials(sec)
	if err != nil {
		return err
	}
	userOf := func(ctx context.Context) string {
		p, _ := authn.FromContext(ctx)
		return p.Name
	}
	svc, err := service.New(service.Config{
		Engine: engine, Logger: log, UserFromContext: userOf,
		AdminFromContext: func(ctx context.Context) bool {
			p, _ := authn.FromContext(ctx)
			return p.Admin
		},
	})
	if err != nil {
		return err
	}
	// Metrics and tracing first: they see every call, refused ones too.
	baseOpts := append(mets.ServerOptions(), tr.ServerOptions()...)
	baseOpts = append(baseOpts, ServerOptions(log)...)
	var tlsOpts []grpc.ServerOption
	if serverTLS != nil {
		tlsOpts = append(tlsOpts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	serverOpts := append(append([]grpc.ServerOption{}, baseOpts...), queryServiceOptions()...)
	serverOpts = append(serverOpts, auth.ServerOptions()...)
	serverOpts = append(serverOpts, tlsOpts...)
	serverOpts = append(serverOpts, opts.ServerOptions...)
	gs := grpc.NewServer(serverOpts...)
	svc.Register(gs)
	health := service.NewHealth(service.HealthConfig{Routes: table, DefaultConnector: cfg.DefaultConnector,
		Services: []string{service.QueryServiceName}})
	defer health.Close()
	health.Register(gs)
	reflection.Register(gs)
	fsqlOpts := append(append([]grpc.ServerOption{}, baseOpts...), flightsql.ServerOptions(auth)...)
	fsql, err := newFlightSQL(cfg, opts, engine, userOf, append(fsqlOpts, tlsOpts...), health, log)
	if err != nil {
		return err
	}
	stopping := make(chan struct{})
	clusterSvc := service.NewCluster(service.ClusterConfig{
		Stopping:    stopping,
		Coordinator: coord,
		ReplicaID:   cfg.ReplicaID,
		DialLeader: func(ctx context.Context, addr string) (*grpc.ClientConn, error) {
			return grpc.NewClient(addr, append(tr.DialOptions(), grpc.WithTransportCredentials(peerCreds))...)
		},
	})
	clusterSvc.Register(gs)
	admin, err := newAdminServer(cfg, opts, consoleDeps{coord: coord, engine: engine, history: history, auth: auth,
		tls: serverTLS, cluster: clusterSvc, log: log})
	if err != nil {
		return err
	}
	defer admin.close()
	mets.InitializeServer(gs)
	mets.Watch(metrics.Sources{Engine: engine, Coordinator: coord})

	coordCtx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCoord()
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := coord.Run(coordCtx); err != nil {
			errc <- fmt.Errorf("coordination: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
	if fsql != nil {
		mets.InitializeServer(fsql.gs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fsql.serve(); err != nil {
				errc <- err
			}
		}()
	}
	if admin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := admin.serve(); err != nil {
				errc <- err
			}
		}()
	}
	var metricsSrv *http.Server
	if mlis != nil {
		metricsSrv = &http.Server{Handler: metricsMux(mets), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := metricsSrv.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
		log.Info("metrics serving", "addr", mlis.Addr().String(), "path", "/metrics")
	}
	log.Info("hiveqd serving", "addr", addr, "coordination", cfg.Coordination, "cluster", cfg.Cluster,
		"connectors", len(cfg.Connectors), "default_connector", cfg.DefaultConnector)
	if opts.Ready != nil {
		fmt.Fprintf(opts.Ready, "hiveqd listening on %s\n", addr)
		if fsql != nil {
			fmt.Fprintf(opts.Ready, "hiveqd flightsql listening on %s\n", fsql.lis.Addr())
		}
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("hiveqd shutting down", "grace", cfg.ShutdownGrace, "running", engine.Running())
	stopCoord() // resign first: the next leader need not wait for our streams
	health.SetServing(false)
	close(stopping)
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	if err := engine.Close(graceCtx); err != nil {
		log.Warn("streams cancelled at the end of the grace period", "err", err)
	}
	cancel()
	if fsql != nil {
		fsql.stop()
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		gs.Stop()
		<-stopped
	}
	health.Close()
	admin.close()
	stopMetrics(metricsSrv, log)
	wg.Wait()
	log.Info("hiveqd stopped")
	return runErr
}

// hs2Options are hiveqd's own credentials and client settings for one
// connector's servers.
func hs2Options(c config.Connector, krb *hs2.Kerberos) (hs2.Options, error) {
	pw, err := config.ReadSecret(c.PasswordFile)
	if err != nil {
		return hs2.Options{}, fmt.Errorf("connector %s: password_file: %w", c.Name, err)
	}
	o := hs2.Options{User: c.User, Password: pw, Kerberos: krb}
	if c.HS2TLS.Enabled() || (c.TLS != nil && *c.TLS) {
		tc, err := clientTLS(c.HS2TLS)
		if err != nil {
			return o, fmt.Errorf("connector %s: hs2_tls: %w", c.Name, err)
		}
		o.TLSConfig = tc
	}
	return o, nil
}

func overrides(c config.Connector) registry.EndpointOverrides {
	return registry.EndpointOverrides{
		Transport: hs2.Transport(strings.ToLower(c.Transport)),
		Auth:      hs2.Auth(strings.ToUpper(c.Auth)),
		HTTPPath:  c.HTTPPath,
		TLS:       c.TLS,
	}
}

func staticEndpoints(c config.Connector) ([]hs2.Endpoint, error) {
	o := overrides(c)
	eps := make([]hs2.Endpoint, 0, len(c.Static))
	for _, s := range c.Static {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("connector %s: static %q: %w", c.Name, s, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("connector %s: static %q: bad port", c.Name, s)
		}
		ep := hs2.Endpoint{Host: host, Port: p, Transport: o.Transport, Auth: o.Auth, HTTPPath: o.HTTPPath}
		if ep.Transport == "" {
			ep.Transport = hs2.TransportBinary
		}
		if ep.Auth == "" {
			ep.Auth = hs2.AuthNone
		}
		if ep.Transport == hs2.TransportHTTP && ep.HTTPPath == "" {
			ep.HTTPPath = hs2.DefaultHTTPPath
		}
		if o.TLS != nil {
			ep.TLS = *o.TLS
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

func buildConnectors(cfg config.Config, obs *traffic.Observer, log *slog.Logger) ([]cluster.ConnectorConfig, map[string]query.Connector, error) {
	var ccs []cluster.ConnectorConfig
	engine := map[string]query.Connector{}
	id, err := kerberosIdentity(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cfg.Connectors {
		opts, err := hs2Options(c, kerberosOptions(c, id))
		if err != nil {
			return nil, nil, err
		}
		engine[c.Name] = query.Connector{
			Options:       opts,
			MaxSessions:   c.Pool.MaxSessions,
			MaxIdlePerKey: c.Pool.MaxIdlePerKey,
			IdleTimeout:   c.Pool.IdleTimeout,
			ValidateAfter: c.Pool.ValidateAfter,
			Impersonate:   c.Impersonation,
			StallTimeout:  c.StallTimeout,
			DisableRerun:  c.RerunReads != nil && !*c.RerunReads,
		}
		newDiscovery, err := discovery(c, log)
		if err != nil {
			return nil, nil, err
		}
		probeOpts := opts
		probeOpts.ConnectTimeout = c.Probe.Timeout
		c := c
		ccs = append(ccs, cluster.ConnectorConfig{
			Name: c.Name,
			NewSelector: func() cluster.Selector {
				return registry.NewSelector(registry.SelectorConfig{
					Connector:     c.Name,
					Discovery:     newDiscovery(),
					Prober:        &registry.HS2Prober{Options: probeOpts},
					Policy:        c.Policy,
					ProbeInterval: c.Probe.Interval,
					ProbeTimeout:  c.Probe.Timeout,
					Cooldown:      c.Probe.Cooldown,
					FailThreshold: c.Probe.Failures,
					Traffic:       obs,
					Logger:        log, // the selector adds component and connector
				})
			},
		})
	}
	return ccs, engine, nil
}

func discovery(c config.Connector, log *slog.Logger) (func() registry.Discovery, error) {
	switch c.Discovery {
	case "static":
		eps, err := staticEndpoints(c)
		if err != nil {
			return nil, err
		}
		return func() registry.Discovery { return registry.NewStatic(eps) }, nil
	case "zookeeper", "zookeeper-ha":
		digest, err := config.ReadSecret(c.ZooKeeper.DigestFile)
		if err != nil {
			return nil, fmt.Errorf("connector %s: zookeeper.digest_file: %w", c.Name, err)
		}
		var tc *tls.Config
		if c.ZooKeeper.TLS.Enabled() {
			if tc, err = clientTLS(c.ZooKeeper.TLS); err != nil {
				return nil, fmt.Errorf("connector %s: zookeeper.tls: %w", c.Name, err)
			}
		}
		zc := registry.ZKConfig{
			Servers:        c.ZooKeeper.Servers,
			Namespace:      c.ZooKeeper.Namespace,
			Chroot:         c.ZooKeeper.Chroot,
			Digest:         digest,
			TLS:            tc,
			SessionTimeout: c.ZooKeeper.SessionTimeout,
			Logger:         log.With("connector", c.Name),
			Overrides:      overrides(c),
		}
		if c.Discovery == "zookeeper-ha" {
			return func() registry.Discovery { return registry.NewZooKeeperHA(zc) }, nil
		}
		return func() registry.Discovery { return registry.NewZooKeeper(zc) }, nil
	}
	return nil, fmt.Errorf("connector %s: unknown discovery %q", c.Name, c.Discovery)
}

func buildCoordinator(cfg config.Config, table *routing.Table, ccs []cluster.ConnectorConfig, addr string, obs *traffic.Observer, log *slog.Logger) (cluster.Coordinator, error) {
	if cfg.Coordination == "standalone" {
		return cluster.NewStandalone(cluster.StandaloneConfig{
			Cluster: cfg.Cluster, ReplicaID: cfg.ReplicaID, Address: addr,
			Connectors: ccs, Table: table, Logger: log,
		})
	}
	pw, err := config.ReadSecret(cfg.Etcd.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("etcd.password_file: %w", err)
	}
	ec := clientv3.Config{
		Endpoints:   cfg.Etcd.Endpoints,
		Username:    cfg.Etcd.Username,
		Password:    pw,
		DialTimeout: cfg.Etcd.DialTimeout,
		Logger:      nil,
	}
	if cfg.Etcd.TLS.Enabled() {
		if ec.TLS, err = clientTLS(cfg.Etcd.TLS); err != nil {
			return nil, fmt.Errorf("etcd.tls: %w", err)
		}
	}
	return cluster.NewEtcd(cluster.EtcdConfig{
		Etcd: ec, Cluster: cfg.Cluster, ReplicaID: cfg.ReplicaID, Address: addr,
		Connectors: ccs, Table: table, LeaseTTL: cfg.Etcd.LeaseTTL, Traffic: obs, Logger: log,
	})
}

func clientTLS(f config.TLSFiles) (*tls.Config, error) {
	return tlsutil.ClientConfig(f.CAFile, f.CertFile, f.KeyFile, f.ServerName)
}

// engineLimits maps the limits section onto the engine's limits.
func engineLimits(l config.Limits) query.Limits {
	return query.Limits{
		MaxConcurrent:     l.MaxConcurrentQueries,
		MaxPerUser:        l.MaxQueriesPerUser,
		MaxStatementBytes: l.MaxStatementBytes,
		MaxRowsPerQuery:   l.MaxRowsPerQuery,
		MaxBatchBytes:     l.MaxBatchBytes,
		DefaultFetchSize:  l.DefaultFetchSize,
	}
}
