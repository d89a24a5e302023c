package hs2

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// readerConn is a net.Conn that reads from a buffer.
type readerConn struct {
	net.Conn
	r *bytes.Reader
}

func (c readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// decodeAnswer reads one FetchResults answer into a Batch as Fetch does.
func decodeAnswer(ctx context.Context, p thrift.TProtocol, hints []int) (*Batch, error) {
	r := &fetchResult{hints: hints}
	if err := r.Read(ctx, p); err != nil {
		return nil, err
	}
	return r.batch, r.malformed
}

// BenchmarkDecodeFetch decodes a 10000-row answer shaped like
// synth.rows_N (bigint, int, double, string, boolean) from a raw
// transport's buffer: Thrift bytes to Batch.
func BenchmarkDecodeFetch(b *testing.B) {
	const rows = 10000
	cols := []*hiveserver.TColumn{
		{I64Val: &hiveserver.TI64Column{Nulls: []byte{}}},
		{I32Val: &hiveserver.TI32Column{Nulls: []byte{0x10}}},
		{DoubleVal: &hiveserver.TDoubleColumn{Nulls: []byte{}}},
		{StringVal: &hiveserver.TStringColumn{Nulls: []byte{}}},
		{BoolVal: &hiveserver.TBoolColumn{Nulls: []byte{}}},
	}
	for i := range rows {
		cols[0].I64Val.Values = append(cols[0].I64Val.Values, int64(i)*7919)
		cols[1].I32Val.Values = append(cols[1].I32Val.Values, int32(i%1000))
		cols[2].DoubleVal.Values = append(cols[2].DoubleVal.Values, float64(i)/3)
		cols[3].StringVal.Values = append(cols[3].StringVal.Values, "s-"+strconv.Itoa(i*7919))
		cols[4].BoolVal.Values = append(cols[4].BoolVal.Values, i%3 == 0)
	}
	ok := &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_SUCCESS_STATUS}
	mem := thrift.NewTMemoryBuffer()
	if err := (&hiveserver.TCLIServiceFetchResultsResult{Success: &hiveserver.TFetchResultsResp{
		Status: ok, Results: &hiveserver.TRowSet{Rows: []*hiveserver.TRow{}, Columns: cols},
	}}).Write(context.Background(), thrift.NewTBinaryProtocolConf(mem, &thrift.TConfiguration{})); err != nil {
		b.Fatal(err)
	}
	data := mem.Bytes()
	conn := readerConn{r: bytes.NewReader(data)}
	tr := newRawTransport(conn)
	p := newProtocol(tr, &thrift.TConfiguration{MaxMessageSize: maxMessageSize})
	var hints []int
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		conn.r.Reset(data)
		tr.r.Reset(conn)
		batch, err := decodeAnswer(context.Background(), p, hints)
		if err != nil || batch.Rows != rows {
			b.Fatal(err, batch.Rows)
		}
		hints = hints[:0]
		for i := range batch.Columns {
			hints = append(hints, batch.Columns[i].ValueBytes())
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// FuzzDecodeFetch: whatever bytes a server sends, the decoder returns an
// error or a batch whose vectors are consistent; it never panics.
//
//	go test -run '^$' -fuzz FuzzDecodeFetch -fuzztime 30s ./hs2
func FuzzDecodeFetch(f *testing.F) {
	ok := &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_SUCCESS_STATUS}
	for _, cols := range [][]*hiveserver.TColumn{
		{{StringVal: &hiveserver.TStringColumn{Values: []string{"a", "", "bcd"}, Nulls: []byte{2}}}, {I64Val: &hiveserver.TI64Column{Values: []int64{1, 2, 3}, Nulls: []byte{}}}},
		{{ByteVal: &hiveserver.TByteColumn{Values: []int8{1, -1}, Nulls: []byte{}}}, {I16Val: &hiveserver.TI16Column{Values: []int16{1, -1}, Nulls: []byte{}}}},
		{{BoolVal: &hiveserver.TBoolColumn{Values: []bool{true}, Nulls: []byte{}}}, {DoubleVal: &hiveserver.TDoubleColumn{Values: []float64{1}, Nulls: []byte{}}}},
	} {
		mem := thrift.NewTMemoryBuffer()
		_ = (&hiveserver.TCLIServiceFetchResultsResult{Success: &hiveserver.TFetchResultsResp{
			Status: ok, Results: &hiveserver.TRowSet{Rows: []*hiveserver.TRow{}, Columns: cols},
		}}).Write(context.Background(), thrift.NewTBinaryProtocolConf(mem, &thrift.TConfiguration{}))
		f.Add(mem.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := &thrift.TConfiguration{MaxMessageSize: 1 << 20}
		mem := thrift.NewTMemoryBuffer()
		mem.Write(data)
		for _, p := range []thrift.TProtocol{
			thrift.NewTBinaryProtocolConf(mem, cfg),
			newProtocol(newRawTransport(readerConn{r: bytes.NewReader(data)}), cfg),
		} {
			r := &fetchResult{hints: []int{1 << 10}}
			if err := r.Read(context.Background(), p); err != nil || r.malformed != nil || r.batch == nil {
				continue
			}
			for i := range r.batch.Columns {
				v := &r.batch.Columns[i]
				if v.Len() != r.batch.Rows {
					t.Fatalf("column %d has %d values for %d rows", i, v.Len(), r.batch.Rows)
				}
				for k := range v.Len() {
					_ = v.Value(k)
				}
			}
		}
	})
}
