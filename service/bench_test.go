package service_test

import (
	"context"
	"io"
	"testing"
	"time"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

// benchRows is the result size of one benchmark iteration.
const benchRows = 200_000

// BenchmarkThroughput streams synth.rows_200000 (bigint, int, double,
// string, boolean) through the gRPC service over bufconn, and through a
// bare hs2 client on the same simulator, and reports rows/s for each:
//
//	go test -run '^$' -bench Throughput -benchtime 10x ./service
func BenchmarkThroughput(b *testing.B) {
	s := startSim(b)
	stmt := "SELECT * FROM synth.rows_200000"
	b.Run("service", func(b *testing.B) {
		f := newFixture(b, s, nil)
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			cl, err := f.client.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: stmt})
			if err != nil {
				b.Fatal(err)
			}
			rows := int64(0)
			for {
				m, err := cl.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				if bt := m.GetBatch(); bt != nil {
					rows += int64(bt.RowCount)
				}
			}
			if rows != benchRows {
				b.Fatalf("%d rows", rows)
			}
		}
		b.ReportMetric(float64(b.N*benchRows)/time.Since(start).Seconds(), "rows/s")
	})
	b.Run("hs2-direct", func(b *testing.B) {
		ctx := context.Background()
		ep := hs2.Endpoint{Host: s.Host(), Port: s.Port()}
		sess, err := hs2.Open(ctx, ep, hs2.Options{}, hs2.SessionConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close(ctx)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			op, err := sess.Execute(ctx, stmt, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := op.Wait(ctx, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := op.Schema(ctx); err != nil {
				b.Fatal(err)
			}
			rows := int64(0)
			for {
				bt, err := op.Fetch(ctx, hs2.MaxFetchRows)
				if err != nil {
					b.Fatal(err)
				}
				if bt.Rows == 0 {
					break
				}
				rows += int64(bt.Rows)
			}
			if err := op.Close(ctx); err != nil {
				b.Fatal(err)
			}
			if rows != benchRows {
				b.Fatalf("%d rows", rows)
			}
		}
		b.ReportMetric(float64(b.N*benchRows)/time.Since(start).Seconds(), "rows/s")
	})
}

// BenchmarkSmallQuery runs `SELECT 1` through the gRPC service over
// bufconn, sequentially, on a pooled session of an in-process simulator
// (the figures include the simulator's and the gRPC client's CPU):
//
//	go test -run '^$' -bench SmallQuery -benchmem -count 10 ./service
func BenchmarkSmallQuery(b *testing.B) {
	s := startSim(b)
	f := newFixture(b, s, nil)
	ctx := context.Background()
	run := func() {
		cl, err := f.client.Execute(ctx, &hiveqv1.ExecuteRequest{Statement: "SELECT 1"})
		if err != nil {
			b.Fatal(err)
		}
		rows := int64(0)
		for {
			m, err := cl.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if bt := m.GetBatch(); bt != nil {
				rows += int64(bt.RowCount)
			}
		}
		if rows != 1 {
			b.Fatalf("%d rows", rows)
		}
	}
	run()
	testenv.MeasureCPU(b, run)
}
