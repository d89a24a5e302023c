package replica_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/hiveqd/hiveqd/replica"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

// BenchmarkSmallQuery runs `SELECT 1` through a whole replica (its gRPC
// server options, interceptors and call log at the default info level,
// writing to io.Discard), sequentially, over loopback TCP, with metrics
// off and on. cpu-ns/op is this process's CPU per query (replica, gRPC
// client and the in-process simulator together), fairer than wall time on
// a loaded machine:
//
//	go test -run '^$' -bench SmallQuery -benchmem -count 8 ./replica
func BenchmarkSmallQuery(b *testing.B) {
	sim := startSim(b)
	for _, bc := range []struct {
		name    string
		metrics bool
	}{{"default", false}, {"metrics", true}} {
		b.Run(bc.name, func(b *testing.B) {
			f := startReplicaWith(b, []string{sim.Addr()}, nil, bc.metrics, func(o *replica.Options) {
				o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			})
			defer f.stop()
			ctx := context.Background()
			run := func() {
				if n, code := f.query(ctx, b, "SELECT 1"); n != 1 || code != codes.OK {
					b.Fatalf("%d rows, %v", n, code)
				}
			}
			run()
			testenv.MeasureCPU(b, run)
		})
	}
}
