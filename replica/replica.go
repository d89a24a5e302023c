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

// Replica is one assembled hiveqd process. New builds it and binds its
// ports, Serve runs it, Shutdown stops it in order:
//
//	r, err := replica.New(ctx, cfg, opts)
//	if err != nil { ... }
//	err = r.Serve(ctx) // until ctx ends or a server fails
//	r.Shutdown()
type Replica struct {
	cfg       config.Config
	opts      Options
	log       *slog.Logger
	engineLog *slog.Logger // the engine adds the replica to its query logs itself
	addr      string       // where the gRPC port listens
	advertise string       // where peers reach it

	tr         *tracing.Tracing
	mets       *metrics.Metrics
	lis, mlis  net.Listener
	table      *routing.Table
	obs        *traffic.Observer
	history    *console.History
	coord      cluster.Coordinator
	engine     *query.Engine
	gs         *grpc.Server
	health     *service.Health
	fsql       *flightSQLFront
	admin      *adminServer
	metricsSrv *http.Server
	// stopping tells the cluster service that the replica shuts down.
	stopping chan struct{}
	// release undoes New, last step first.
	release []func()

	mu        sync.Mutex
	served    bool
	closing   chan struct{} // closed when Shutdown starts
	stopCoord context.CancelFunc
	wg        sync.WaitGroup // the serving goroutines
	errc      chan error     // their failures
	shutOnce  sync.Once
}

// ErrShutdown is returned by Serve once Shutdown has started.
var ErrShutdown = errors.New("replica: shut down")

// Run serves until ctx ends, then shuts down in order (see Shutdown). It is
// New, Serve and Shutdown in one call.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	r, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer r.Shutdown()
	return r.Serve(ctx)
}

// New assembles a replica from cfg and binds its ports; nothing serves
// until Serve. ctx bounds only the setup. On error everything New made is
// released.
func New(ctx context.Context, cfg config.Config, opts Options) (*Replica, error) {
	r := &Replica{cfg: cfg, opts: opts, stopping: make(chan struct{}), closing: make(chan struct{}),
		errc: make(chan error, 5)}
	for _, step := range []func(context.Context) error{
		r.setupTelemetry, r.listen, r.buildEngine, r.buildServers,
	} {
		if err := step(ctx); err != nil {
			if r.engine != nil {
				_ = r.engine.Close(context.Background()) // nothing runs on it yet
			}
			r.undo()
			return nil, err
		}
	}
	return r, nil
}

// Addr is where the gRPC port listens.
func (r *Replica) Addr() string { return r.addr }

// onRelease adds a step to undo at Shutdown (or when New fails).
func (r *Replica) onRelease(f func()) { r.release = append(r.release, f) }

func (r *Replica) undo() {
	for i := len(r.release) - 1; i >= 0; i-- {
		r.release[i]()
	}
	r.release = nil
}

// setupTelemetry starts tracing and the logger that goes with it.
func (r *Replica) setupTelemetry(ctx context.Context) error {
	log := r.opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := r.cfg
	tr, err := tracing.New(ctx, tracing.Options{Config: cfg.Tracing, ReplicaID: cfg.ReplicaID, Cluster: cfg.Cluster, Exporter: r.opts.SpanExporter})
	if err != nil {
		return err
	}
	r.tr = tr
	r.onRelease(func() { shutdownTracing(tr, log) })
	if tr != nil {
		log = slog.New(tracing.LogHandler(log.Handler()))
	}
	r.engineLog = log
	r.log = log.With("replica", cfg.ReplicaID)
	return nil
}

// listen binds the gRPC port and /metrics.
func (r *Replica) listen(context.Context) error {
	cfg := r.cfg
	lis := r.opts.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	r.lis = lis
	r.onRelease(func() { lis.Close() })
	mlis, err := metricsListener(cfg, r.opts)
	if err != nil {
		return err
	}
	if mlis != nil {
		r.mlis = mlis
		r.onRelease(func() { mlis.Close() })
		r.mets = metrics.New(metrics.Config{Connectors: connectorNames(cfg), QueryLimit: cfg.Limits.MaxConcurrentQueries})
	}
	r.addr = lis.Addr().String()
	r.advertise = cfg.AdvertiseAddr
	if r.advertise == "" || strings.HasSuffix(r.advertise, ":0") {
		r.advertise = r.addr
	}
	return nil
}

// buildEngine makes the routing table, the connectors' selectors, the
// coordinator and the query engine.
func (r *Replica) buildEngine(context.Context) error {
	cfg, log := r.cfg, r.log
	r.table = routing.NewTable()
	// Passive HS2 health: the engine's calls tell the selector whether a
	// server whose probes time out still answers (saturated) or not (hung).
	r.obs = traffic.New(nil)
	connectors, engineConnectors, err := buildConnectors(cfg, r.obs, log)
	if err != nil {
		return err
	}
	observeHS2(engineConnectors, r.mets, r.tr, r.obs)
	if r.mets != nil {
		r.table.OnSwitch(r.mets.OnSwitch)
	}
	r.history = console.NewHistory(1024, time.Hour, nil)
	r.table.OnSwitch(r.history.Record)
	if r.coord, err = buildCoordinator(cfg, r.table, connectors, r.advertise, r.obs, log); err != nil {
		return err
	}
	r.engine, err = query.New(query.Config{
		ReplicaID:        cfg.ReplicaID,
		Routes:           r.table,
		DefaultConnector: cfg.DefaultConnector,
		Connectors:       engineConnectors,
		Reporter:         r.coord,
		Limits:           engineLimits(cfg.Limits),
		Observe:          query.Observers(r.mets.QueryObserver(), r.tr.QueryObserver()),
		Logger:           r.engineLog,
	})
	return err
}

// buildServers makes the gRPC server with its services, the Flight SQL
// port and the web console.
func (r *Replica) buildServers(context.Context) error {
	cfg, log := r.cfg, r.log
	sec := cfg.Security
	auth, serverTLS, err := (&authn.Flags{
		TokenFile: sec.AuthTokenFile, Admins: strings.Join(sec.AuthAdmins, ","), ServicePrincipal: sec.ServicePrincipal,
		TLSCert: sec.TLSCert, TLSKey: sec.TLSKey, TLSClientCA: sec.TLSClientCA,
	}).Build(log)
	if err != nil {
		return fmt.Errorf("security: %w", err)
	}
	peerCreds, err := peerCredentials(sec)
	if err != nil {
		return err
	}
	userOf := func(ctx context.Context) string {
		p, _ := authn.FromContext(ctx)
		return p.Name
	}
	svc, err := service.New(service.Config{
		Engine: r.engine, Logger: log, UserFromContext: userOf,
		AdminFromContext: func(ctx context.Context) bool {
			p, _ := authn.FromContext(ctx)
			return p.Admin
		},
	})
	if err != nil {
		return err
	}
	// Metrics and tracing first: they see every call, refused ones too.
	baseOpts := append(r.mets.ServerOptions(), r.tr.ServerOptions()...)
	baseOpts = append(baseOpts, ServerOptions(log)...)
	var tlsOpts []grpc.ServerOption
	if serverTLS != nil {
		tlsOpts = append(tlsOpts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	serverOpts := append(append([]grpc.ServerOption{}, baseOpts...), queryServiceOptions()...)
	serverOpts = append(serverOpts, auth.ServerOptions()...)
	serverOpts = append(serverOpts, tlsOpts...)
	serverOpts = append(serverOpts, r.opts.ServerOptions...)
	r.gs = grpc.NewServer(serverOpts...)
	svc.Register(r.gs)
	r.health = service.NewHealth(service.HealthConfig{Routes: r.table, DefaultConnector: cfg.DefaultConnector,
		Services: []string{service.QueryServiceName}})
	r.onRelease(r.health.Close)
	r.health.Register(r.gs)
	reflection.Register(r.gs)
	fsqlOpts := append(append([]grpc.ServerOption{}, baseOpts...), flightsql.ServerOptions(auth)...)
	if r.fsql, err = newFlightSQL(cfg, r.opts, r.engine, userOf, append(fsqlOpts, tlsOpts...), r.health, log); err != nil {
		return err
	}
	if r.fsql != nil {
		r.onRelease(func() { r.fsql.lis.Close() })
	}
	clusterSvc := service.NewCluster(service.ClusterConfig{
		Stopping:    r.stopping,
		Coordinator: r.coord,
		ReplicaID:   cfg.ReplicaID,
		DialLeader: func(ctx context.Context, addr string) (*grpc.ClientConn, error) {
			return grpc.NewClient(addr, append(r.tr.DialOptions(), grpc.WithTransportCredentials(peerCreds))...)
		},
	})
	clusterSvc.Register(r.gs)
	r.admin, err = newAdminServer(cfg, r.opts, consoleDeps{coord: r.coord, engine: r.engine, history: r.history, auth: auth,
		tls: serverTLS, cluster: clusterSvc, log: log})
	if err != nil {
		return err
	}
	if r.admin != nil {
		r.onRelease(func() { r.admin.lis.Close(); r.admin.close() })
	}
	r.mets.InitializeServer(r.gs)
	r.mets.Watch(metrics.Sources{Engine: r.engine, Coordinator: r.coord})
	return nil
}

// Serve runs the coordinator and every port until ctx ends (nil), a server
// fails (its error) or Shutdown starts (nil). It may be called once; call
// Shutdown after it returns.
func (r *Replica) Serve(ctx context.Context) error {
	r.mu.Lock()
	select {
	case <-r.closing:
		r.mu.Unlock()
		return ErrShutdown
	default:
	}
	if r.served {
		r.mu.Unlock()
		return errors.New("replica: Serve called twice")
	}
	r.served = true
	// Coordination outlives ctx: Shutdown resigns it first, in order.
	coordCtx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	r.stopCoord = stopCoord
	r.start(coordCtx)
	r.mu.Unlock()
	r.announce()
	select {
	case <-ctx.Done():
		return nil
	case <-r.closing:
		return nil
	case err := <-r.errc:
		return err
	}
}

// start runs the coordinator and the servers, each in a goroutine that
// Shutdown waits for.
func (r *Replica) start(coordCtx context.Context) {
	r.goServe(func() error {
		if err := r.coord.Run(coordCtx); err != nil {
			return fmt.Errorf("coordination: %w", err)
		}
		return nil
	})
	r.goServe(func() error {
		if err := r.gs.Serve(r.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("grpc: %w", err)
		}
		return nil
	})
	if r.fsql != nil {
		r.mets.InitializeServer(r.fsql.gs)
		r.goServe(r.fsql.serve)
	}
	if r.admin != nil {
		r.goServe(r.admin.serve)
	}
	if r.mlis != nil {
		r.metricsSrv = &http.Server{Handler: metricsMux(r.mets), ReadHeaderTimeout: 10 * time.Second}
		r.goServe(func() error {
			if err := r.metricsSrv.Serve(r.mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics: %w", err)
			}
			return nil
		})
		r.log.Info("metrics serving", "addr", r.mlis.Addr().String(), "path", "/metrics")
	}
}

func (r *Replica) goServe(f func() error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := f(); err != nil {
			select {
			case r.errc <- err:
			default: // one failure is enough to stop
			}
		}
	}()
}

// announce logs that the replica serves and tells opts.Ready.
func (r *Replica) announce() {
	cfg := r.cfg
	r.log.Info("hiveqd serving", "addr", r.addr, "coordination", cfg.Coordination, "cluster", cfg.Cluster,
		"connectors", len(cfg.Connectors), "default_connector", cfg.DefaultConnector)
	if r.opts.Ready != nil {
		fmt.Fprintf(r.opts.Ready, "hiveqd listening on %s\n", r.addr)
		if r.fsql != nil {
			fmt.Fprintf(r.opts.Ready, "hiveqd flightsql listening on %s\n", r.fsql.lis.Addr())
		}
	}
}

// Shutdown stops the replica in order: leadership is given up at once
// (another replica takes over in milliseconds), health turns NOT_SERVING,
// running streams get cfg.ShutdownGrace to finish before they are
// cancelled, the servers stop and HS2 sessions are closed. It returns once
// every goroutine of the replica has ended; later calls do nothing. It
// also releases a replica that never served.
func (r *Replica) Shutdown() {
	r.shutOnce.Do(func() {
		r.mu.Lock()
		close(r.closing)
		stopCoord := r.stopCoord
		r.mu.Unlock()
		r.log.Info("hiveqd shutting down", "grace", r.cfg.ShutdownGrace, "running", r.engine.Running())
		if stopCoord != nil {
			stopCoord() // resign first: the next leader need not wait for our streams
		}
		r.health.SetServing(false)
		close(r.stopping)
		r.drainStreams()
		r.stopServers()
		r.wg.Wait()
		r.undo()
		r.log.Info("hiveqd stopped")
	})
}

// drainStreams gives running streams the grace period, then cancels them.
func (r *Replica) drainStreams() {
	graceCtx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownGrace)
	defer cancel()
	if err := r.engine.Close(graceCtx); err != nil {
		r.log.Warn("streams cancelled at the end of the grace period", "err", err)
	}
}

// stopServers stops the ports: gRPC gracefully (5 s at most), the console
// at once, /metrics last so that the shutdown itself can be watched.
func (r *Replica) stopServers() {
	if r.fsql != nil {
		r.fsql.stop()
	}
	stopped := make(chan struct{})
	go func() { r.gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		r.gs.Stop()
		<-stopped
	}
	r.health.Close()
	r.admin.close()
	stopMetrics(r.metricsSrv, r.log)
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
