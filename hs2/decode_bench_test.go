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
