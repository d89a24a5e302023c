package hs2sim

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// FetchResults replies dominate the bytes HS2 sends, and the generated
// Thrift code writes them one value at a time through interfaces. This
// processor function encodes successful columnar replies in bulk with
// TBinaryProtocol's exact layout (a test checks it byte for byte against
// the generated code) and leaves everything else to the generated writer.
type fetchProcessor struct{ c *cliService }

// bulkWriter is a transport an encoder can append to directly.
type bulkWriter interface {
	bulkAppend(f func([]byte) []byte)
}

var encodeBufs = sync.Pool{New: func() any { return new([]byte) }}

func (p fetchProcessor) Process(ctx context.Context, seqID int32, iprot, oprot thrift.TProtocol) (bool, thrift.TException) {
	args := hiveserver.TCLIServiceFetchResultsArgs{}
	if err := args.Read(ctx, iprot); err != nil {
		_ = iprot.ReadMessageEnd(ctx)
		x := thrift.NewTApplicationException(thrift.PROTOCOL_ERROR, err.Error())
		_ = oprot.WriteMessageBegin(ctx, "FetchResults", thrift.EXCEPTION, seqID)
		_ = x.Write(ctx, oprot)
		_ = oprot.WriteMessageEnd(ctx)
		_ = oprot.Flush(ctx)
		return false, thrift.WrapTException(err)
	}
	_ = iprot.ReadMessageEnd(ctx)
	resp, err := p.c.FetchResults(ctx, args.Req)
	if err != nil {
		if errors.Is(err, thrift.ErrAbandonRequest) {
			return false, thrift.WrapTException(err)
		}
		x := thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "Internal error processing FetchResults: "+err.Error())
		_ = oprot.WriteMessageBegin(ctx, "FetchResults", thrift.EXCEPTION, seqID)
		_ = x.Write(ctx, oprot)
		_ = oprot.WriteMessageEnd(ctx)
		return true, thrift.WrapTException(oprot.Flush(ctx))
	}
	if werr := oprot.WriteMessageBegin(ctx, "FetchResults", thrift.REPLY, seqID); werr != nil {
		return false, thrift.WrapTException(werr)
	}
	var werr error
	_, isBinary := oprot.(*thrift.TBinaryProtocol)
	bulk, isBulk := oprot.Transport().(bulkWriter)
	switch {
	case isBinary && isBulk && fastEncodable(resp):
		bulk.bulkAppend(func(b []byte) []byte { return appendFetchResult(b, resp) })
	case isBinary && fastEncodable(resp):
		bp := encodeBufs.Get().(*[]byte)
		*bp = appendFetchResult((*bp)[:0], resp)
		_, werr = oprot.Transport().Write(*bp)
		if cap(*bp) <= maxMessage {
			encodeBufs.Put(bp)
		}
	default:
		werr = (&hiveserver.TCLIServiceFetchResultsResult{Success: resp}).Write(ctx, oprot)
	}
	if werr == nil {
		werr = oprot.WriteMessageEnd(ctx)
	}
	if werr == nil {
		werr = oprot.Flush(ctx)
	}
	if werr != nil {
		return false, thrift.WrapTException(werr)
	}
	return true, nil
}

// fastEncodable: an OK status with nothing but its code, a columnar row
// set without the optional binary/count fields.
func fastEncodable(r *hiveserver.TFetchResultsResp) bool {
	st := r.Status
	return st != nil && st.InfoMessages == nil && st.SqlState == nil && st.ErrorCode == nil && st.ErrorMessage == nil &&
		r.Results != nil && len(r.Results.Rows) == 0 && r.Results.Columns != nil &&
		r.Results.BinaryColumns == nil && r.Results.ColumnCount == nil
}

// TBinaryProtocol type ids.
const (
	tBool   = 2
	tByte   = 3
	tDbl    = 4
	tI16    = 6
	tI32    = 8
	tI64    = 10
	tStr    = 11
	tStruct = 12
	tList   = 15
)

func appendField(b []byte, typ byte, id int16) []byte {
	return append(b, typ, byte(uint16(id)>>8), byte(id))
}

func appendI32(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }

func appendList(b []byte, elem byte, n int) []byte { return appendI32(append(b, elem), int32(n)) }

func appendBytes(b []byte, v []byte) []byte { return append(appendI32(b, int32(len(v))), v...) }

// appendFetchResult encodes TCLIServiceFetchResultsResult{Success: r}.
func appendFetchResult(b []byte, r *hiveserver.TFetchResultsResp) []byte {
	b = appendField(b, tStruct, 0) // success
	b = appendField(b, tStruct, 1) // status
	b = appendField(b, tI32, 1)
	b = appendI32(b, int32(r.Status.StatusCode))
	b = append(b, 0)
	if r.HasMoreRows != nil {
		b = appendField(b, tBool, 2)
		if *r.HasMoreRows {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	rs := r.Results
	b = appendField(b, tStruct, 3)
	b = appendField(b, tI64, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(rs.StartRowOffset))
	b = appendField(b, tList, 2)
	b = appendList(b, tStruct, 0)
	b = appendField(b, tList, 3)
	b = appendList(b, tStruct, len(rs.Columns))
	for _, c := range rs.Columns {
		b = appendColumn(b, c)
	}
	return append(b, 0, 0, 0) // TRowSet, TFetchResultsResp, result
}

// appendColumn encodes a TColumn union holding one T*Column.
func appendColumn(b []byte, c *hiveserver.TColumn) []byte {
	var nulls []byte
	switch {
	case c.BoolVal != nil:
		b = appendField(b, tStruct, 1)
		b = appendField(b, tList, 1)
		b = appendList(b, tBool, len(c.BoolVal.Values))
		for _, v := range c.BoolVal.Values {
			if v {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
		nulls = c.BoolVal.Nulls
	case c.ByteVal != nil:
		b = appendField(b, tStruct, 2)
		b = appendField(b, tList, 1)
		b = appendList(b, tByte, len(c.ByteVal.Values))
		for _, v := range c.ByteVal.Values {
			b = append(b, byte(v))
		}
		nulls = c.ByteVal.Nulls
	case c.I16Val != nil:
		b = appendField(b, tStruct, 3)
		b = appendField(b, tList, 1)
		b = appendList(b, tI16, len(c.I16Val.Values))
		for _, v := range c.I16Val.Values {
			b = binary.BigEndian.AppendUint16(b, uint16(v))
		}
		nulls = c.I16Val.Nulls
	case c.I32Val != nil:
		b = appendField(b, tStruct, 4)
		b = appendField(b, tList, 1)
		b = appendList(b, tI32, len(c.I32Val.Values))
		for _, v := range c.I32Val.Values {
			b = binary.BigEndian.AppendUint32(b, uint32(v))
		}
		nulls = c.I32Val.Nulls
	case c.I64Val != nil:
		b = appendField(b, tStruct, 5)
		b = appendField(b, tList, 1)
		b = appendList(b, tI64, len(c.I64Val.Values))
		for _, v := range c.I64Val.Values {
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		}
		nulls = c.I64Val.Nulls
	case c.DoubleVal != nil:
		b = appendField(b, tStruct, 6)
		b = appendField(b, tList, 1)
		b = appendList(b, tDbl, len(c.DoubleVal.Values))
		for _, v := range c.DoubleVal.Values {
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
		}
		nulls = c.DoubleVal.Nulls
	case c.StringVal != nil:
		b = appendField(b, tStruct, 7)
		b = appendField(b, tList, 1)
		b = appendList(b, tStr, len(c.StringVal.Values))
		for _, v := range c.StringVal.Values {
			b = append(appendI32(b, int32(len(v))), v...)
		}
		nulls = c.StringVal.Nulls
	case c.BinaryVal != nil:
		b = appendField(b, tStruct, 8)
		b = appendField(b, tList, 1)
		b = appendList(b, tStr, len(c.BinaryVal.Values))
		for _, v := range c.BinaryVal.Values {
			b = appendBytes(b, v)
		}
		nulls = c.BinaryVal.Nulls
	default:
		return append(b, 0) // an empty union
	}
	b = appendField(b, tStr, 2)
	b = appendBytes(b, nulls)
	return append(b, 0, 0) // T*Column, TColumn
}
