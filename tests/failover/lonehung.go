package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// loneHung measures a lone HS2 that hangs (accepts connections, never
// answers) under three etcd replicas with default probe settings:
//
//   - lone_hung_not_serving: hang → every replica's gRPC health NOT_SERVING;
//   - lone_hung_unavailable: hang → the first new query (one started every
//     50 ms on a follower) that ends UNAVAILABLE;
//   - lone_hung_serving_again: heal → every replica SERVING again.
func (b *bench) loneHung(ctx context.Context, zk *testenv.ZooKeeper, etcd *testenv.Etcd) (err error) {
	if err := os.Mkdir(filepath.Join(b.dir, "lone"), 0o755); err != nil {
		return err
	}
	f, err := harness.NewFleet(b.bins, filepath.Join(b.dir, "lone"), harness.ReplicaConfig{
		Cluster: "lone", Etcd: etcd.Endpoints(), LeaseTTL: b.o.leaseTTL,
		ZooKeeper: zk.Servers(), Namespace: "hiveserver2-lone", LogLevel: "warn",
		ShutdownGrace: 5 * time.Second,
	})
	if err != nil {
		return err
	}
	defer f.Close()
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "process output:\n%s\n", f.Logs(4000))
		}
	}()
	fmt.Fprintln(os.Stderr, "failover: starting 1 simulator and 3 replicas (lone HS2)")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sim, err := f.StartSim(sctx, "lone-sim")
	if err != nil {
		return err
	}
	for _, id := range []string{"l1", "l2", "l3"} {
		if _, _, err := f.StartReplica(sctx, id); err != nil {
			return err
		}
	}
	for i := range b.o.runs {
		fmt.Fprintf(os.Stderr, "failover: lone hung HS2 run %d/%d\n", i+1, b.o.runs)
		if _, _, err := agreed(ctx, f.Clients, 3); err != nil {
			return err
		}
		if err := b.loneHungRun(ctx, sim, f.Clients); err != nil {
			return fmt.Errorf("lone hung run %d: %w", i+1, err)
		}
	}
	return nil
}

func (b *bench) loneHungRun(ctx context.Context, sim *harness.Sim, clients []*harness.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitHealth(ctx, clients, healthpb.HealthCheckResponse_SERVING); err != nil {
		return err
	}
	t0 := time.Now()
	if err := sim.Fault(ctx, "hang"); err != nil {
		return err
	}
	unavail := make(chan time.Time, 1)
	qctx, qcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a new query every 50 ms until one ends UNAVAILABLE
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for qctx.Err() == nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, cancel := context.WithTimeout(qctx, 30*time.Second)
				defer cancel()
				r := clients[len(clients)-1].Execute(c, &hiveqv1.ExecuteRequest{Statement: "SELECT 1"}, nil, nil)
				if r.Code() == codes.Unavailable && qctx.Err() == nil {
					select {
					case unavail <- r.Finished:
					default:
					}
				}
			}()
			select {
			case <-tick.C:
			case <-qctx.Done():
			}
		}
	}()
	err := waitHealth(ctx, clients, healthpb.HealthCheckResponse_NOT_SERVING)
	notServing := time.Since(t0)
	var first time.Time
	if err == nil {
		select {
		case first = <-unavail:
		case <-ctx.Done():
			err = errors.New("no query ended UNAVAILABLE")
		}
	}
	qcancel()
	wg.Wait()
	if err != nil {
		return err
	}
	b.add("lone_hung_not_serving", "lone HS2 hangs → every replica NOT_SERVING", "ms", ms(notServing))
	b.add("lone_hung_unavailable", "lone HS2 hangs → first new query UNAVAILABLE", "ms", ms(first.Sub(t0)))
	b.logf("lone hung: NOT_SERVING after %v, UNAVAILABLE after %v", notServing, first.Sub(t0))
	t1 := time.Now()
	if err := sim.Fault(ctx, "heal"); err != nil {
		return err
	}
	if err := waitHealth(ctx, clients, healthpb.HealthCheckResponse_SERVING); err != nil {
		return err
	}
	b.add("lone_hung_serving_again", "lone HS2 answers again → every replica SERVING", "ms", ms(time.Since(t1)))
	return nil
}

// waitHealth polls every client's gRPC health until all report want.
func waitHealth(ctx context.Context, clients []*harness.Client, want healthpb.HealthCheckResponse_ServingStatus) error {
	for {
		all := true
		for _, c := range clients {
			hctx, cancel := context.WithTimeout(ctx, time.Second)
			r, err := healthpb.NewHealthClient(c.Conn).Check(hctx, &healthpb.HealthCheckRequest{})
			cancel()
			if err != nil || r.GetStatus() != want {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("health never %v: %w", want, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
