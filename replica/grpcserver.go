package replica

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/service"
)

// ServerOptions are what every hiveqd gRPC server uses: call logging
// through logger and panic recovery (a panic becomes INTERNAL and is
// logged with its stack). Each front-end adds its own (codec, windows).
func ServerOptions(logger *slog.Logger) []grpc.ServerOption {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logFn := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	// A call that succeeded is logged at debug: a line per query at info
	// is a formatted write per query on the hot path (issue 17); failures
	// keep the library's levels.
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(callLevel)}
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in gRPC handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(logging.UnaryServerInterceptor(logFn, logOpts...), recovery.UnaryServerInterceptor(rec)),
		grpc.ChainStreamInterceptor(logging.StreamServerInterceptor(logFn, logOpts...), recovery.StreamServerInterceptor(rec)),
	}
}

// callLevel is the level a finished call is logged at.
func callLevel(c codes.Code) logging.Level {
	if c == codes.OK {
		return logging.LevelDebug
	}
	return logging.DefaultServerCodeToLevel(c)
}

// queryServiceOptions are the hiveq.v1 server's own: QueryService's codec,
// and fixed receive windows. hiveqd only receives small requests there, so
// its windows need no tuning: fixed windows turn off the
// bandwidth-estimation PING the server otherwise sends (and reads the
// answer to) for every request it receives, two syscalls and a client
// wake-up per query.
//
// Stream workers: a handler goroutine per stream grows its stack anew for
// every query (Execute runs deep: interceptors, the engine, the codec),
// which was about a tenth of hiveqd's CPU for a small query (issue 17).
// Workers keep their grown stacks; a stream that finds them all busy (long
// queries hold theirs) gets its own goroutine as before, so none waits.
// Server.Stop ends them. The option is marked experimental in grpc-go.
func queryServiceOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		service.ServerCodec(),
		grpc.InitialWindowSize(receiveWindow),
		grpc.InitialConnWindowSize(receiveWindow),
		grpc.NumStreamWorkers(uint32(streamWorkersPerCPU * runtime.GOMAXPROCS(0))),
	}
}

// streamWorkersPerCPU sizes the hiveq.v1 server's stream workers.
const streamWorkersPerCPU = 4

// receiveWindow is the hiveq.v1 server's per-stream and per-connection
// receive window: above the default statement limit (1 MiB); a larger
// request still arrives, in window-sized steps.
const receiveWindow = 1 << 20
