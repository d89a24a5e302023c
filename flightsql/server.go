// Package flightsql is hiveqd's Arrow Flight SQL front-end: a second door
// to the same query engine as hiveq.v1, for ADBC, the Flight SQL JDBC
// driver and every tool built on them.
//
// A statement starts on GetFlightInfo (or PollFlightInfo): the engine
// routes it, opens or reuses an HS2 session and runs it; the FlightInfo
// comes back once HS2 has finished it and the schema is known, with one
// endpoint whose ticket names the running query. DoGet then streams the
// result. Batches pass from the engine to the client one at a time, so a
// slow reader slows the fetches from HS2 and memory stays bounded. A
// ticket that no DoGet claims within Config.TicketTimeout cancels its
// query. Metadata calls (catalogs, schemas, tables, table types) run HS2's
// own metadata calls through the engine.
package flightsql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/service"
)

// Engine is what the front-end needs of the query engine.
type Engine interface {
	Execute(ctx context.Context, req query.Request, emit func(query.Event) error) error
}

// Config configures a Server.
type Config struct {
	Engine Engine
	// UserFromContext names the authenticated caller (impersonation,
	// per-user limits, and who may read a ticket); nil: "".
	UserFromContext func(context.Context) string
	// Version is hiveqd's version, reported in SqlInfo.
	Version string
	// TicketTimeout cancels a query whose ticket no DoGet claimed in time
	// (default 60s).
	TicketTimeout time.Duration
	// PollWait bounds how long one PollFlightInfo waits for the query to
	// finish on HS2 before it reports progress (default 1s).
	PollWait time.Duration
	// BatchRows and BatchBytes bound each Arrow record batch (defaults
	// 10000 rows, 1.5 MiB by the engine's estimate of the hiveq.v1
	// encoding). Arrow is at most 2.3× that estimate (a decimal "0" is 7
	// estimated bytes and 16 in Arrow), so a batch stays below gRPC's
	// usual 4 MiB receive limit.
	BatchRows  int
	BatchBytes int
	Logger     *slog.Logger
}

// Defaults.
const (
	DefaultTicketTimeout = 60 * time.Second
	DefaultPollWait      = time.Second
	DefaultBatchRows     = 10000
	DefaultBatchBytes    = 3 << 19
)

// Server implements flightsql.Server on the engine.
type Server struct {
	flightsql.BaseServer
	cfg   Config
	log   *slog.Logger
	alloc memory.Allocator

	mu      sync.Mutex
	queries map[string]*running
	closed  bool
	wg      sync.WaitGroup
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("flightsql: Config.Engine is required")
	}
	if cfg.UserFromContext == nil {
		cfg.UserFromContext = func(context.Context) string { return "" }
	}
	if cfg.TicketTimeout <= 0 {
		cfg.TicketTimeout = DefaultTicketTimeout
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = DefaultPollWait
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = DefaultBatchRows
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = DefaultBatchBytes
	}
	s := &Server{cfg: cfg, log: cfg.Logger, alloc: memory.DefaultAllocator, queries: map[string]*running{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.BaseServer.Alloc = s.alloc
	if err := s.registerSqlInfo(); err != nil {
		return nil, err
	}
	return s, nil
}

// Register registers the Flight service on gs.
func (s *Server) Register(gs *grpc.Server) {
	flight.RegisterFlightServiceServer(gs, &flightService{FlightServer: flightsql.NewFlightServerWithAllocator(s, s.alloc), srv: s})
}

// flightService adds the Handshake (answered by the auth interceptor,
// which hands back the bearer token) to the Flight SQL server, and streams
// statement results itself (DoGet).
type flightService struct {
	flight.FlightServer
	srv *Server
}

func (flightService) Handshake(stream flight.FlightService_HandshakeServer) error {
	// The client may send a payload; Basic credentials came in headers and
	// the bearer token goes back in the response header (set by the auth
	// interceptor). Answer with an empty payload.
	if _, err := stream.Recv(); err != nil && !isEOF(err) {
		return err
	}
	return stream.Send(&flight.HandshakeResponse{})
}

// Close cancels running queries and waits for them to end.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for _, r := range s.queries {
		r.abandon(errShutdown)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

var (
	errShutdown      = errors.New("the Flight SQL server is shutting down")
	errTicketExpired = errors.New("no DoGet claimed the ticket in time")
	errReaderGone    = errors.New("the DoGet stream ended")
)

// toStatus maps an engine error to a gRPC status: the one mapping,
// service.ToStatus, which keeps HS2's SQLSTATE in google.rpc.ErrorInfo.
func toStatus(err error) error { return service.ToStatus(err) }

func newHandle() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// emptySchema is the schema of a statement without a result set.
var emptySchema = arrow.NewSchema(nil, nil)
