package hs2sim

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/beltran/gohive/hiveserver"
	"github.com/hiveqd/hiveqd/hs2sim/synth"
)

// BenchmarkServeSynth measures rows per second the simulator serves from
// synth.rows_10000000 to a raw Thrift client over loopback (SASL PLAIN,
// 10,000-row fetches: HS2's max fetch size). Client decoding is included.
func BenchmarkServeSynth(b *testing.B) {
	for _, tc := range []struct{ name, table, mode string }{
		{"rows/sasl", "synth.rows_10000000", "sasl"},
		{"rows/nosasl", "synth.rows_10000000", "nosasl"},
		{"rows/http", "synth.rows_10000000", "http"},
		{"wide/sasl", "synth.wide_100000", "sasl"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{}
			if tc.mode == "nosasl" {
				cfg.Auth = "nosasl"
			}
			if tc.mode == "http" {
				cfg.Transport = "http"
			}
			s := startServer(b, cfg)
			c := dialRaw(b, s, dialOpts{mode: tc.mode})
			h := c.open(nil)
			defer c.closeSession(h)
			op, _ := c.run(h, "SELECT * FROM "+tc.table)
			defer c.closeOp(op)
			var rows, bytes int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp := c.fetch(op, 10000, hiveserver.TFetchOrientation_FETCH_NEXT)
				n := len(resp.Results.Columns[0].I64Val.Values)
				if n == 0 {
					resp = c.fetch(op, 10000, hiveserver.TFetchOrientation_FETCH_FIRST)
					n = len(resp.Results.Columns[0].I64Val.Values)
				}
				rows += int64(n)
				if tc.table != "synth.rows_10000000" {
					for _, col := range resp.Results.Columns[1:] {
						for _, v := range col.StringVal.Values {
							bytes += int64(len(v))
						}
					}
				}
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			if bytes > 0 {
				b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
			}
		})
	}
}

// BenchmarkGenerateSynth measures columnar generation alone.
func BenchmarkGenerateSynth(b *testing.B) {
	src := &synthSource{kind: synth.Rows, total: 1 << 62, cols: []int{0, 1, 2, 3, 4}}
	var rows int64
	for i := 0; i < b.N; i++ {
		_, n := src.read(int64(i)*10000, 10000)
		rows += int64(n)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkServeSynthRaw measures the server alone: a minimal SASL client
// sends pre-encoded FetchResults calls and reads each reply frame without
// decoding it, so the client costs next to nothing.
func BenchmarkServeSynthRaw(b *testing.B) {
	for _, tc := range []struct{ name, table string }{
		{"rows", "synth.rows_10000000"},
		{"wide", "synth.wide_1000000"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := startServer(b, Config{})
			c := dialRaw(b, s, dialOpts{})
			h := c.open(nil)
			defer c.closeSession(h)
			op, _ := c.run(h, "SELECT * FROM "+tc.table)
			defer c.closeOp(op)

			conn, err := net.Dial("tcp", s.Addr())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			if err := writeSASL(conn, saslStart, "PLAIN"); err != nil {
				b.Fatal(err)
			}
			if err := writeSASL(conn, saslOK, "\x00bench\x00x"); err != nil {
				b.Fatal(err)
			}
			r := bufio.NewReaderSize(conn, 1<<20)
			if st, _, err := readSASL(r); err != nil || st != saslComplete {
				b.Fatalf("sasl: %d %v", st, err)
			}
			// This connection has no session; the operation handle is
			// enough for FetchResults.
			next := encodeCall(b, "FetchResults", &hiveserver.TCLIServiceFetchResultsArgs{Req: &hiveserver.TFetchResultsReq{
				OperationHandle: op, Orientation: hiveserver.TFetchOrientation_FETCH_NEXT, MaxRows: 10000}})
			first := encodeCall(b, "FetchResults", &hiveserver.TCLIServiceFetchResultsArgs{Req: &hiveserver.TFetchResultsReq{
				OperationHandle: op, Orientation: hiveserver.TFetchOrientation_FETCH_FIRST, MaxRows: 10000}})
			var bytes int64
			var hdr [4]byte
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := next
				if i%100 == 99 { // stay inside the table
					req = first
				}
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					b.Fatal(err)
				}
				n := int64(binary.BigEndian.Uint32(hdr[:]))
				if _, err := r.Discard(int(n)); err != nil {
					b.Fatal(err)
				}
				bytes += n
			}
			b.ReportMetric(float64(b.N)*10000/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
		})
	}
}

// encodeCall is a framed TBinaryProtocol CALL message.
func encodeCall(b testing.TB, name string, args thrift.TStruct) []byte {
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})
	ctx := context.Background()
	if err := p.WriteMessageBegin(ctx, name, thrift.CALL, 1); err != nil {
		b.Fatal(err)
	}
	if err := args.Write(ctx, p); err != nil {
		b.Fatal(err)
	}
	_ = p.WriteMessageEnd(ctx)
	out := binary.BigEndian.AppendUint32(nil, uint32(buf.Len()))
	return append(out, buf.Bytes()...)
}
