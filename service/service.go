// Package service is hiveqd's gRPC layer: QueryService on the query
// engine, the gRPC health service driven by the routing table, reflection,
// and the server's interceptors.
package service

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/routing"
)

// QueryServiceName is the health-checked service name.
const QueryServiceName = "hiveq.v1.QueryService"

// Config configures a Service.
type Config struct {
	Engine *query.Engine
	// Routes drives health: the service is SERVING while the engine's
	// default connector has a server.
	Routes *routing.Table
	// UserFromContext names the authenticated caller (for impersonation
	// and per-user limits); nil: every caller is "".
	UserFromContext func(context.Context) string
	Logger          *slog.Logger
	// Observe, when set, follows every Execute call (metrics, tracing).
	Observe ObserveFunc
}

// Service implements hiveq.v1.QueryService and owns the health server.
type Service struct {
	hiveqv1.UnimplementedQueryServiceServer

	engine *query.Engine
	routes *routing.Table
	user   func(context.Context) string
	log    *slog.Logger
	health *health.Server
	// observeFn is Config.Observe.
	observeFn ObserveFunc

	mu      sync.Mutex
	serving bool // the SetServing hook
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  bool
}

// New returns a Service and starts its health watcher; Close stops it.
func New(cfg Config) (*Service, error) {
	if cfg.Engine == nil || cfg.Routes == nil {
		return nil, errors.New("service: Config.Engine and Config.Routes are required")
	}
	s := &Service{
		engine:  cfg.Engine,
		routes:  cfg.Routes,
		user:    cfg.UserFromContext,
		log:     cfg.Logger,
		health:  health.NewServer(),
		serving: true,
		stop:    make(chan struct{}),
	}
	s.observeFn = cfg.Observe
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.user == nil {
		s.user = func(context.Context) string { return "" }
	}
	s.updateHealth()
	s.wg.Add(1)
	go s.watchHealth()
	return s, nil
}

// Register registers QueryService, health and reflection on gs.
func (s *Service) Register(gs *grpc.Server) {
	hiveqv1.RegisterQueryServiceServer(gs, s)
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
}

// SetServing(false) makes health NOT_SERVING whatever the routes say (for
// shutdown: load balancers stop sending new calls); true undoes it.
func (s *Service) SetServing(on bool) {
	s.mu.Lock()
	s.serving = on
	s.mu.Unlock()
	s.updateHealth()
}

// Close stops the health watcher and reports NOT_SERVING from then on.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.health.Shutdown()
}

// watchHealth follows the routing table.
func (s *Service) watchHealth() {
	defer s.wg.Done()
	for {
		changed := s.routes.Changed()
		s.updateHealth()
		select {
		case <-changed:
		case <-s.stop:
			return
		}
	}
}

func (s *Service) updateHealth() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.serving {
		if cur, err := s.routes.Get(s.engine.DefaultConnector()); err == nil && cur.Endpoint != nil {
			st = healthpb.HealthCheckResponse_SERVING
		}
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(QueryServiceName, st)
}

// Execute runs one statement and streams its events.
func (s *Service) Execute(req *hiveqv1.ExecuteRequest, stream grpc.ServerStreamingServer[hiveqv1.ExecuteResponse]) error {
	ctx := stream.Context()
	qreq := query.Request{
		QueryID:   req.GetQueryId(),
		Statement: req.GetStatement(),
		Connector: req.GetConnector(),
		Database:  req.GetDatabase(),
		Config:    req.GetConfig(),
		FetchSize: int(req.GetFetchSize()),
		MaxRows:   req.GetMaxRows(),
		User:      s.user(ctx),
		// Re-runs of reads that sent nothing (query/rerun.go).
		DisableRerun: req.GetDisableRerun(),
	}
	emit, done := s.observe(ctx, req.GetConnector(), func(ev query.Event) error {
		if ev.Kind == query.EventBatch {
			// The codec encodes batches straight from hs2 (batchcodec.go).
			return stream.SendMsg(&batchMsg{b: ev.Batch})
		}
		return stream.Send(toResponse(ev))
	})
	err := s.engine.Execute(ctx, qreq, emit)
	return done(toStatus(err))
}

// Cancel cancels a query running on this replica.
func (s *Service) Cancel(ctx context.Context, req *hiveqv1.CancelRequest) (*hiveqv1.CancelResponse, error) {
	if req.GetQueryId() == "" {
		return nil, toStatus(&query.Error{Code: query.InvalidArgument, Reason: query.ReasonInvalidRequest, Message: "query_id is required", Metadata: map[string]string{query.MetaField: "query_id"}})
	}
	state, err := s.engine.Cancel(ctx, req.GetQueryId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &hiveqv1.CancelResponse{State: hiveqv1.QueryState(state)}, nil
}

// ServerOptions are what every hiveqd gRPC server uses: call logging
// through logger, panic recovery (a panic becomes INTERNAL and is logged
// with its stack), and a proto codec that lets requests with invalid UTF-8
// reach validation (INVALID_ARGUMENT) rather than fail decoding (INTERNAL).
func ServerOptions(logger *slog.Logger) []grpc.ServerOption {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logFn := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in gRPC handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(newLenientCodec()),
		grpc.ChainUnaryInterceptor(logging.UnaryServerInterceptor(logFn, logOpts...), recovery.UnaryServerInterceptor(rec)),
		grpc.ChainStreamInterceptor(logging.StreamServerInterceptor(logFn, logOpts...), recovery.StreamServerInterceptor(rec)),
		// hiveqd only receives small requests, so its receive windows need
		// no tuning: fixed windows turn off the bandwidth-estimation PING
		// the server otherwise sends (and reads the answer to) for every
		// request it receives, two syscalls and a client wake-up per query.
		grpc.InitialWindowSize(receiveWindow),
		grpc.InitialConnWindowSize(receiveWindow),
	}
}

// receiveWindow is the server's per-stream and per-connection receive
// window: above the default statement limit (1 MiB); a larger request
// still arrives, in window-sized steps.
const receiveWindow = 1 << 20
