package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/flightsql"
	"github.com/hiveqd/hiveqd/service"
)

// flightSQLFront is the Arrow Flight SQL port: its own gRPC server on the
// same engine, authentication, TLS and health as the hiveq.v1 port.
type flightSQLFront struct {
	lis net.Listener
	gs  *grpc.Server
	srv *flightsql.Server
}

// newFlightSQL listens on cfg.FlightSQL.Listen (or opts.FlightSQLListener);
// nil when the port is off.
func newFlightSQL(cfg config.Config, opts Options, engine flightsql.Engine, user func(context.Context) string,
	serverOpts []grpc.ServerOption, health *service.Health, log *slog.Logger) (*flightSQLFront, error) {
	lis := opts.FlightSQLListener
	if lis == nil {
		if cfg.FlightSQL.Listen == "" {
			return nil, nil
		}
		var err error
		if lis, err = net.Listen("tcp", cfg.FlightSQL.Listen); err != nil {
			return nil, fmt.Errorf("flightsql listen %s: %w", cfg.FlightSQL.Listen, err)
		}
	}
	srv, err := flightsql.New(flightsql.Config{
		Engine: engine, UserFromContext: user, Version: opts.Version,
		Logger: log.With("frontend", "flightsql"),
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	gs := grpc.NewServer(serverOpts...)
	srv.Register(gs)
	health.Register(gs)
	return &flightSQLFront{lis: lis, gs: gs, srv: srv}, nil
}

// serve runs until stop.
func (f *flightSQLFront) serve() error {
	if err := f.gs.Serve(f.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("flightsql: %w", err)
	}
	return nil
}

// stop ends running reads (the engine cancelled them already), then the
// server.
func (f *flightSQLFront) stop() {
	f.srv.Close()
	stopped := make(chan struct{})
	go func() { f.gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		f.gs.Stop()
		<-stopped
	}
}
