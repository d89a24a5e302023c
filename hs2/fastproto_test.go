package hs2

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// sampleFetch is a FetchResults answer of every column kind, large enough
// (≈ 300 KB) to cross the transports' 64 KiB buffers many times, with
// strings of every length class.
func sampleFetch(r *rand.Rand) *hiveserver.TCLIServiceFetchResultsResult {
	const n = 5000
	cols := []*hiveserver.TColumn{
		{BoolVal: &hiveserver.TBoolColumn{Nulls: []byte{1}}},
		{ByteVal: &hiveserver.TByteColumn{Nulls: []byte{}}},
		{I16Val: &hiveserver.TI16Column{Nulls: []byte{}}},
		{I32Val: &hiveserver.TI32Column{Nulls: []byte{2, 0, 4}}},
		{I64Val: &hiveserver.TI64Column{Nulls: []byte{}}},
		{DoubleVal: &hiveserver.TDoubleColumn{Nulls: []byte{}}},
		{StringVal: &hiveserver.TStringColumn{Nulls: []byte{}}},
		{BinaryVal: &hiveserver.TBinaryColumn{Nulls: []byte{}}},
	}
	for i := range n {
		cols[0].BoolVal.Values = append(cols[0].BoolVal.Values, r.IntN(2) == 0)
		cols[1].ByteVal.Values = append(cols[1].ByteVal.Values, int8(r.Int()))
		cols[2].I16Val.Values = append(cols[2].I16Val.Values, int16(r.Int()))
		cols[3].I32Val.Values = append(cols[3].I32Val.Values, r.Int32())
		cols[4].I64Val.Values = append(cols[4].I64Val.Values, r.Int64()-r.Int64())
		cols[5].DoubleVal.Values = append(cols[5].DoubleVal.Values, r.NormFloat64())
		cols[6].StringVal.Values = append(cols[6].StringVal.Values, strings.Repeat("ü", r.IntN(4))+strings.Repeat("s", []int{0, 1, 7, 30, 200}[i%5]))
		cols[7].BinaryVal.Values = append(cols[7].BinaryVal.Values, []byte(strings.Repeat("\xff", r.IntN(40))))
	}
	ok := &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_SUCCESS_STATUS}
	more := false
	return &hiveserver.TCLIServiceFetchResultsResult{Success: &hiveserver.TFetchResultsResp{
		Status: ok, HasMoreRows: &more, Results: &hiveserver.TRowSet{Rows: []*hiveserver.TRow{}, Columns: cols},
	}}
}

func encodeResult(t *testing.T, v thrift.TStruct) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})
	if err := v.Write(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFastProtocolDecodesAlike: the same bytes, split into SASL frames and
// socket writes at awkward places, decode to the same values as with
// TBinaryProtocol.
func TestFastProtocolDecodesAlike(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	data := encodeResult(t, sampleFetch(r))
	// What TBinaryProtocol makes of the bytes (nil and empty slices differ
	// from the values written, so compare decodings).
	var want hiveserver.TCLIServiceFetchResultsResult
	mem := thrift.NewTMemoryBuffer()
	mem.Write(data)
	if err := want.Read(context.Background(), thrift.NewTBinaryProtocolConf(mem, &thrift.TConfiguration{})); err != nil {
		t.Fatal(err)
	}
	for _, sasl := range []bool{true, false} {
		for _, frame := range []int{1 << 30, 65536, 4093, 17} {
			if !sasl && frame != 1<<30 {
				continue
			}
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				rest := data
				for len(rest) > 0 {
					n := min(frame, len(rest))
					var out []byte
					if sasl {
						out = binary.BigEndian.AppendUint32(nil, uint32(n))
					}
					out = append(out, rest[:n]...)
					// Socket writes that do not line up with frames.
					for len(out) > 0 {
						k := min(len(out), 1+r.IntN(70000))
						if _, err := server.Write(out[:k]); err != nil {
							return
						}
						out = out[k:]
					}
					rest = rest[n:]
				}
			}()
			var tr transport = newRawTransport(client)
			if sasl {
				tr = newSASLTransport(client)
			}
			cfg := &thrift.TConfiguration{MaxMessageSize: maxMessageSize}
			p := newProtocol(tr, cfg)
			if _, ok := p.(*fastProtocol); !ok {
				t.Fatalf("%T is not a fastProtocol", p)
			}
			var got hiveserver.TCLIServiceFetchResultsResult
			if err := got.Read(context.Background(), p); err != nil {
				t.Fatalf("sasl %v frame %d: %v", sasl, frame, err)
			}
			client.Close()
			for i, c := range got.Success.Results.Columns {
				if !reflect.DeepEqual(c, want.Success.Results.Columns[i]) {
					t.Fatalf("sasl %v frame %d: column %d differs", sasl, frame, i)
				}
			}
		}
	}
}

// A negative or oversized length is refused as TBinaryProtocol refuses it.
func TestFastProtocolSizes(t *testing.T) {
	for _, size := range []int32{-1, maxMessageSize + 1} {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			_, _ = server.Write(binary.BigEndian.AppendUint32(nil, uint32(size)))
		}()
		p := newProtocol(newRawTransport(client), &thrift.TConfiguration{MaxMessageSize: maxMessageSize})
		if _, err := p.ReadString(context.Background()); err == nil {
			t.Errorf("size %d accepted", size)
		}
		client.Close()
	}
}

// TestDecodeOverTransports: fetchResult decodes the same bytes, split into
// SASL frames and socket writes at awkward places, to the values the
// generated code decodes.
func TestDecodeOverTransports(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	data := encodeResult(t, sampleFetch(r))
	var want hiveserver.TCLIServiceFetchResultsResult
	mem := thrift.NewTMemoryBuffer()
	mem.Write(data)
	if err := want.Read(context.Background(), thrift.NewTBinaryProtocolConf(mem, &thrift.TConfiguration{})); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sasl  bool
		frame int
	}{{false, 1 << 30}, {true, 1 << 30}, {true, 65536}, {true, 4093}, {true, 17}} {
		client, server := net.Pipe()
		go writeFrames(server, data, tc.sasl, tc.frame, rand.New(rand.NewPCG(1, uint64(tc.frame))))
		var tr transport = newRawTransport(client)
		if tc.sasl {
			tr = newSASLTransport(client)
		}
		got := &fetchResult{hints: []int{0, 0, 0, 0, 0, 0, 3}}
		err := got.Read(context.Background(), newProtocol(tr, &thrift.TConfiguration{MaxMessageSize: maxMessageSize}))
		client.Close()
		if err != nil || got.malformed != nil {
			t.Fatalf("sasl %v frame %d: %v %v", tc.sasl, tc.frame, err, got.malformed)
		}
		for i, c := range want.Success.Results.Columns {
			v := &got.batch.Columns[i]
			var vals []any
			switch {
			case c.BoolVal != nil:
				vals = anys(c.BoolVal.Values, func(x bool) any { return x })
			case c.ByteVal != nil:
				vals = anys(c.ByteVal.Values, func(x int8) any { return int32(x) })
			case c.I16Val != nil:
				vals = anys(c.I16Val.Values, func(x int16) any { return int32(x) })
			case c.I32Val != nil:
				vals = anys(c.I32Val.Values, func(x int32) any { return x })
			case c.I64Val != nil:
				vals = anys(c.I64Val.Values, func(x int64) any { return x })
			case c.DoubleVal != nil:
				vals = anys(c.DoubleVal.Values, func(x float64) any { return x })
			case c.StringVal != nil:
				vals = anys(c.StringVal.Values, func(x string) any { return x })
			case c.BinaryVal != nil:
				vals = anys(c.BinaryVal.Values, func(x []byte) any { return string(x) })
			}
			if v.Len() != len(vals) {
				t.Fatalf("column %d: %d values, want %d", i, v.Len(), len(vals))
			}
			for k, w := range vals {
				var g any
				switch v.Kind {
				case KindBool:
					g = v.Bools[k]
				case KindInt32:
					g = v.Int32s[k]
				case KindInt64:
					g = v.Int64s[k]
				case KindDouble:
					g = v.Doubles[k]
				default:
					g = v.Str(k)
				}
				if g != w {
					t.Fatalf("sasl %v frame %d: column %d row %d = %v, want %v", tc.sasl, tc.frame, i, k, g, w)
				}
			}
		}
	}
}

func anys[T any](xs []T, f func(T) any) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// writeFrames writes data to conn in SASL frames of at most frame bytes
// (or raw, without sasl), in socket writes that do not line up with them.
func writeFrames(conn net.Conn, data []byte, sasl bool, frame int, r *rand.Rand) {
	defer conn.Close()
	for len(data) > 0 {
		n := min(frame, len(data))
		var out []byte
		if sasl {
			out = binary.BigEndian.AppendUint32(nil, uint32(n))
		}
		out = append(out, data[:n]...)
		for len(out) > 0 {
			k := min(len(out), 1+r.IntN(70000))
			if _, err := conn.Write(out[:k]); err != nil {
				return
			}
			out = out[k:]
		}
		data = data[n:]
	}
}
