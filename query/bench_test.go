package query_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/routing"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

// countingDialer counts what the engine writes to and reads from HS2.
type countingDialer struct{ writes, reads atomic.Int64 }

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, d: d}, nil
}

type countingConn struct {
	net.Conn
	d *countingDialer
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.d.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.d.reads.Add(1)
	return c.Conn.Read(p)
}

// BenchmarkSmallQuery runs `SELECT 1` through the engine, sequentially, on
// a pooled session of an in-process simulator (whose CPU the figures
// include), and reports the writes and reads on the HS2 connection per
// query (each write is a system call and a wake-up of HS2):
//
//	go test -run '^$' -bench SmallQuery -benchmem -count 10 ./query
func BenchmarkSmallQuery(b *testing.B) {
	s, err := hs2sim.Start(context.Background(), hs2sim.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	table := routing.NewTable()
	table.Update(routing.Route{Connector: conn, Epoch: 1, Endpoint: &hs2.Endpoint{Host: s.Host(), Port: s.Port()}, ChosenAt: time.Now()})
	var d countingDialer
	eng, err := query.New(query.Config{
		ReplicaID: "replica-1", Routes: table, DefaultConnector: conn,
		Connectors: map[string]query.Connector{conn: {MaxSessions: 8, Options: hs2.Options{DialContext: d.dial}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Close(ctx)
	}()
	ctx := context.Background()
	run := func() {
		rows := 0
		err := eng.Execute(ctx, query.Request{Statement: "SELECT 1"}, func(ev query.Event) error {
			if ev.Kind == query.EventBatch {
				rows += ev.Batch.Rows
			}
			return nil
		})
		if err != nil || rows != 1 {
			b.Fatalf("%d rows, %v", rows, err)
		}
	}
	run() // the session is pooled from here on
	w0, r0 := d.writes.Load(), d.reads.Load()
	testenv.MeasureCPU(b, run)
	b.ReportMetric(float64(d.writes.Load()-w0)/float64(b.N), "hs2-writes/op")
	b.ReportMetric(float64(d.reads.Load()-r0)/float64(b.N), "hs2-reads/op")
}
