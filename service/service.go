// Package service is hiveqd's hiveq.v1 front-end: QueryService on the
// query engine, the gRPC health service driven by the routing table, and
// the one mapping of engine errors to gRPC statuses (ToStatus), which
// every gRPC front-end uses.
package service

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/query"
)

// Config configures a Service.
type Config struct {
	Engine *query.Engine
	// UserFromContext names the authenticated caller (for impersonation
	// and per-user limits); nil: every caller is "".
	UserFromContext func(context.Context) string
	// AdminFromContext reports whether the caller is an admin, who may
	// cancel any query; nil: nobody is. Others may cancel only the
	// queries they started.
	AdminFromContext func(context.Context) bool
	Logger           *slog.Logger
	// MaxMessageBytes is the largest response message sent; a result row
	// larger than this fails the query with RESOURCE_EXHAUSTED. Default
	// DefaultMaxMessageBytes, what gRPC clients accept by default.
	MaxMessageBytes int
}

// Service implements hiveq.v1.QueryService on the engine. The server it is
// registered on must use ServerCodec; health, reflection and the server's
// interceptors belong to the process (package replica).
type Service struct {
	hiveqv1.UnimplementedQueryServiceServer

	engine *query.Engine
	user   func(context.Context) string
	admin  func(context.Context) bool
	log    *slog.Logger
	maxMsg int
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Engine == nil {
		return nil, errors.New("service: Config.Engine is required")
	}
	s := &Service{engine: cfg.Engine, user: cfg.UserFromContext, admin: cfg.AdminFromContext, log: cfg.Logger, maxMsg: cfg.MaxMessageBytes}
	if s.maxMsg <= 0 {
		s.maxMsg = DefaultMaxMessageBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.user == nil {
		s.user = func(context.Context) string { return "" }
	}
	if s.admin == nil {
		s.admin = func(context.Context) bool { return false }
	}
	return s, nil
}

// Register registers QueryService on gs.
func (s *Service) Register(gs *grpc.Server) {
	hiveqv1.RegisterQueryServiceServer(gs, s)
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
		Frontend:  query.FrontendHiveQ,
		// Re-runs of reads that sent nothing (query/rerun.go).
		DisableRerun: req.GetDisableRerun(),
	}
	var schema hs2.Schema
	compact := req.GetBatchLayout() == hiveqv1.BatchLayout_BATCH_LAYOUT_COMPACT
	err := s.engine.Execute(ctx, qreq, func(ev query.Event) error {
		switch ev.Kind {
		case query.EventBatch:
			if err := checkBatchSize(ev.Batch, schema, s.maxMsg); err != nil {
				return err
			}
			// The codec encodes batches straight from hs2 (batchcodec.go).
			return stream.SendMsg(&batchMsg{b: ev.Batch, compact: compact})
		case query.EventSchema:
			schema = ev.Schema
		}
		return stream.Send(toResponse(ev))
	})
	return ToStatus(err)
}

// Cancel cancels a query running on this replica.
func (s *Service) Cancel(ctx context.Context, req *hiveqv1.CancelRequest) (*hiveqv1.CancelResponse, error) {
	if req.GetQueryId() == "" {
		return nil, ToStatus(&query.Error{Code: query.InvalidArgument, Reason: query.ReasonInvalidRequest, Message: "query_id is required", Metadata: map[string]string{query.MetaField: "query_id"}})
	}
	caller := query.Caller{User: s.user(ctx), Admin: s.admin(ctx)}
	state, err := s.engine.Cancel(ctx, req.GetQueryId(), caller)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &hiveqv1.CancelResponse{State: hiveqv1.QueryState(state)}, nil
}

// ServerCodec is the codec the server that registers QueryService must
// use: it encodes batches straight from hs2 (batchcodec.go) and lets
// requests with invalid UTF-8 reach validation (INVALID_ARGUMENT) rather
// than fail decoding (INTERNAL). Other services' messages use the standard
// proto codec through it.
func ServerCodec() grpc.ServerOption { return grpc.ForceServerCodecV2(newLenientCodec()) }
