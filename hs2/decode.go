package hs2

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"

	"github.com/hiveqd/hiveqd/internal/memview"
)

// A FetchResults answer is decoded here by hand, straight into a Batch,
// rather than through the generated Thrift code. The generated code builds
// a TRowSet value by value (a Go string allocated per string cell, an
// append per number) and the batch then aliased those slices; on an
// unpaced stream that was most of hiveqd's CPU and of its garbage. Here
// numeric lists are read in bulk from the transport into the vector's own
// memory and byte-swapped in place (Thrift is big-endian), and a string
// column's values are appended into one data buffer with Arrow-style
// offsets: a handful of allocations per column instead of one per value.
// The bytes read are exactly the generated code's (TBinaryProtocol, over
// any of the transports); struct and field headers still go through the
// protocol, and unknown fields are skipped as the generated code skips
// them.

// fetchResult is TCLIService.FetchResults' result struct (field 0, the
// TFetchResultsResp) as a thrift.TStruct that decodes into a Batch.
type fetchResult struct {
	status  *hiveserver.TStatus
	batch   *Batch
	success bool
	// malformed is a result set that decoded but is not one hiveqd can
	// use (row-based, compressed, ragged columns); the session is fine.
	malformed error
	// hints are the data buffer sizes to start string columns with (the
	// previous batch's), indexed by column; may be short.
	hints []int
}

func (r *fetchResult) Write(context.Context, thrift.TProtocol) error {
	return errors.New("hs2: fetchResult is decode-only")
}

func (r *fetchResult) Read(ctx context.Context, p thrift.TProtocol) error {
	return readStruct(ctx, p, func(id int16, t thrift.TType) (bool, error) {
		if id != 0 || t != thrift.STRUCT {
			return false, nil
		}
		r.success = true
		return true, r.readResp(ctx, p)
	})
}

// readStruct reads a struct's fields, handing each to field, which returns
// whether it read the value (false: skipped).
func readStruct(ctx context.Context, p thrift.TProtocol, field func(id int16, t thrift.TType) (bool, error)) error {
	if _, err := p.ReadStructBegin(ctx); err != nil {
		return err
	}
	for {
		_, t, id, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return err
		}
		if t == thrift.STOP {
			break
		}
		read, err := field(id, t)
		if err != nil {
			return err
		}
		if !read {
			if err := p.Skip(ctx, t); err != nil {
				return err
			}
		}
		if err := p.ReadFieldEnd(ctx); err != nil {
			return err
		}
	}
	return p.ReadStructEnd(ctx)
}

// readResp reads a TFetchResultsResp: 1 status, 2 hasMoreRows, 3 results.
func (r *fetchResult) readResp(ctx context.Context, p thrift.TProtocol) error {
	return readStruct(ctx, p, func(id int16, t thrift.TType) (bool, error) {
		switch {
		case id == 1 && t == thrift.STRUCT:
			r.status = hiveserver.NewTStatus()
			return true, r.status.Read(ctx, p)
		case id == 3 && t == thrift.STRUCT:
			return true, r.readRowSet(ctx, p)
		}
		return false, nil
	})
}

// readRowSet reads a TRowSet: 2 rows (protocols before V6), 3 columns, 4
// binaryColumns (compressed); the rest is skipped.
func (r *fetchResult) readRowSet(ctx context.Context, p thrift.TProtocol) error {
	r.batch = &Batch{}
	var rows, binary bool
	err := readStruct(ctx, p, func(id int16, t thrift.TType) (bool, error) {
		switch {
		case id == 2 && t == thrift.LIST:
			_, n, err := p.ReadListBegin(ctx)
			if err != nil {
				return true, err
			}
			rows = rows || n > 0
			for range n {
				if err := p.Skip(ctx, thrift.STRUCT); err != nil {
					return true, err
				}
			}
			return true, p.ReadListEnd(ctx)
		case id == 3 && t == thrift.LIST:
			return true, r.readColumns(ctx, p)
		case id == 4 && t == thrift.STRING:
			b, err := p.ReadBinary(ctx)
			binary = binary || len(b) > 0
			return true, err
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if len(r.batch.Columns) == 0 && r.malformed == nil {
		switch {
		case rows:
			r.malformed = errors.New("row-based result set (protocol before V6)")
		case binary:
			r.malformed = errors.New("compressed binary columns are not supported")
		}
	}
	return nil
}

func (r *fetchResult) readColumns(ctx context.Context, p thrift.TProtocol) error {
	et, n, err := p.ReadListBegin(ctx)
	if err != nil {
		return err
	}
	if et != thrift.STRUCT && n > 0 {
		return thrift.NewTProtocolExceptionWithType(thrift.INVALID_DATA, fmt.Errorf("TRowSet.columns: list of %v", et))
	}
	d := newDecoder(p)
	b := r.batch
	b.Columns = make([]Vector, n)
	for i := range b.Columns {
		hint := 0
		if i < len(r.hints) {
			hint = r.hints[i]
		}
		v := &b.Columns[i]
		if err := d.readColumn(ctx, v, hint); err != nil {
			return err
		}
		if v.Kind == 0 && r.malformed == nil {
			r.malformed = fmt.Errorf("column %d: no column data", i+1)
		}
		switch m := v.Len(); {
		case i == 0:
			b.Rows = m
		case m != b.Rows && r.malformed == nil:
			r.malformed = fmt.Errorf("column %d has %d values, column 1 has %d", i+1, m, b.Rows)
		}
	}
	return p.ReadListEnd(ctx)
}

// decoder reads column values. With a buffered transport it takes them
// from the buffer; with any TBinaryProtocol it reads lists in bulk from the
// transport; with another protocol, value by value through it.
type decoder struct {
	p   thrift.TProtocol
	buf bufferedReader // nil: not buffered
	raw io.Reader      // the transport under a binary protocol; nil: none
}

func newDecoder(p thrift.TProtocol) *decoder {
	d := &decoder{p: p}
	switch bp := p.(type) {
	case *fastProtocol:
		d.buf, d.raw = bp.r, bp.Transport()
	case *thrift.TBinaryProtocol:
		d.raw = bp.Transport()
	}
	return d
}

// TColumn is a union of T<Type>Column structs, each {1: list values, 2:
// binary nulls}; field ids 1..8 are bool, byte, i16, i32, i64, double,
// string, binary.
var columnKinds = [...]struct {
	elem thrift.TType
	kind Kind
}{
	1: {thrift.BOOL, KindBool}, 2: {thrift.BYTE, KindInt32}, 3: {thrift.I16, KindInt32}, 4: {thrift.I32, KindInt32},
	5: {thrift.I64, KindInt64}, 6: {thrift.DOUBLE, KindDouble}, 7: {thrift.STRING, KindString}, 8: {thrift.STRING, KindBytes},
}

func (d *decoder) readColumn(ctx context.Context, v *Vector, hint int) error {
	var nulls []byte
	err := readStruct(ctx, d.p, func(id int16, t thrift.TType) (bool, error) {
		if id < 1 || int(id) >= len(columnKinds) || t != thrift.STRUCT {
			return false, nil
		}
		*v = Vector{}
		nulls = nil
		return true, readStruct(ctx, d.p, func(fid int16, ft thrift.TType) (bool, error) {
			switch {
			case fid == 1 && ft == thrift.LIST:
				return true, d.readValues(ctx, v, id, hint)
			case fid == 2 && ft == thrift.STRING:
				var err error
				nulls, err = d.p.ReadBinary(ctx)
				return true, err
			}
			return false, nil
		})
	})
	if err != nil {
		return err
	}
	v.Nulls = normNulls(nulls, v.Len())
	return nil
}

func (d *decoder) readValues(ctx context.Context, v *Vector, id int16, hint int) error {
	et, n, err := d.p.ReadListBegin(ctx)
	if err != nil {
		return err
	}
	ck := columnKinds[id]
	if et != ck.elem && n > 0 {
		return thrift.NewTProtocolExceptionWithType(thrift.INVALID_DATA, fmt.Errorf("TColumn field %d: list of %v", id, et))
	}
	v.Kind = ck.kind
	switch id {
	case 1:
		v.Bools, err = d.bools(ctx, n)
	case 2:
		v.Int32s, err = d.widen8(ctx, n)
	case 3:
		v.Int32s, err = d.widen16(ctx, n)
	case 4:
		v.Int32s, err = d.int32s(ctx, n)
	case 5:
		v.Int64s, err = d.int64s(ctx, n)
	case 6:
		v.Doubles, err = d.doubles(ctx, n)
	default:
		v.Data, v.Offsets, err = d.varlen(ctx, n, hint)
	}
	if err != nil {
		return err
	}
	return d.p.ReadListEnd(ctx)
}

// readFull fills b from the message.
func (d *decoder) readFull(b []byte) error {
	if d.buf != nil {
		if src := d.buf.next(len(b)); src != nil {
			copy(b, src)
			return nil
		}
	}
	if _, err := io.ReadFull(d.raw, b); err != nil {
		return thrift.NewTProtocolException(err)
	}
	return nil
}

func (d *decoder) bools(ctx context.Context, n int) ([]bool, error) {
	out := make([]bool, n)
	if d.raw == nil {
		for i := range out {
			x, err := d.p.ReadBool(ctx)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
	raw := memview.Bytes(out)
	if err := d.readFull(raw); err != nil {
		return nil, err
	}
	for i, x := range raw {
		raw[i] = b2u(x == 1) // TBinaryProtocol: only 1 is true
	}
	return out, nil
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (d *decoder) widen8(ctx context.Context, n int) ([]int32, error) {
	out := make([]int32, n)
	if d.raw == nil {
		if err := readEach(ctx, out, d.p.ReadByte); err != nil {
			return nil, err
		}
		return out, nil
	}
	// Read into the top quarter of out's memory and widen upwards: the
	// source byte is read before any write reaches it.
	raw := memview.Bytes(out)[3*n:]
	if err := d.readFull(raw); err != nil {
		return nil, err
	}
	for i := range out {
		out[i] = int32(int8(raw[i]))
	}
	return out, nil
}

func (d *decoder) widen16(ctx context.Context, n int) ([]int32, error) {
	out := make([]int32, n)
	if d.raw == nil {
		if err := readEach(ctx, out, d.p.ReadI16); err != nil {
			return nil, err
		}
		return out, nil
	}
	raw := memview.Bytes(out)[2*n:] // the top half; widened upwards as in widen8
	if err := d.readFull(raw); err != nil {
		return nil, err
	}
	for i := range out {
		out[i] = int32(int16(binary.BigEndian.Uint16(raw[2*i:])))
	}
	return out, nil
}

// int32s, int64s and doubles read the big-endian values into the result's
// own memory and swap each in place.
func (d *decoder) int32s(ctx context.Context, n int) ([]int32, error) {
	return readFixed(ctx, d, n, d.p.ReadI32)
}

func (d *decoder) int64s(ctx context.Context, n int) ([]int64, error) {
	return readFixed(ctx, d, n, d.p.ReadI64)
}

func (d *decoder) doubles(ctx context.Context, n int) ([]float64, error) {
	return readFixed(ctx, d, n, d.p.ReadDouble)
}

// readFixed reads n values of a fixed-width Thrift list: in bulk from the
// raw reader when there is one, else one at a time with readOne.
func readFixed[T int32 | int64 | float64](ctx context.Context, d *decoder, n int, readOne func(context.Context) (T, error)) ([]T, error) {
	out := make([]T, n)
	if d.raw == nil {
		if err := readEach(ctx, out, readOne); err != nil {
			return nil, err
		}
		return out, nil
	}
	raw := memview.Bytes(out)
	if err := d.readFull(raw); err != nil {
		return nil, err
	}
	switch v := any(out).(type) {
	case []int32:
		for i := range v {
			v[i] = int32(binary.BigEndian.Uint32(raw[4*i:]))
		}
	case []int64:
		for i := range v {
			v[i] = int64(binary.BigEndian.Uint64(raw[8*i:]))
		}
	case []float64:
		for i := range v {
			v[i] = math.Float64frombits(binary.BigEndian.Uint64(raw[8*i:]))
		}
	}
	return out, nil
}

// readEach fills out one value at a time with readOne, converting each:
// the path without a raw reader shared by widen8, widen16 and readFixed.
func readEach[S, T int8 | int16 | int32 | int64 | float64](ctx context.Context, out []T, readOne func(context.Context) (S, error)) error {
	for i := range out {
		x, err := readOne(ctx)
		if err != nil {
			return err
		}
		out[i] = T(x)
	}
	return nil
}

// varlen reads n strings or binaries into one buffer (starting with room
// for hint bytes) and n+1 offsets. Values wholly in the transport's buffer
// are parsed from it in a tight loop; one that straddles its edge is read
// through the transport.
func (d *decoder) varlen(ctx context.Context, n, hint int) ([]byte, []int32, error) {
	offs := make([]int32, n+1)
	data := make([]byte, 0, hint)
	for i := 0; i < n; {
		if d.buf != nil {
			w := d.buf.window()
			pos := 0
			for i < n && pos+4 <= len(w) {
				size := int(int32(binary.BigEndian.Uint32(w[pos:])))
				if size < 0 || size > len(w)-pos-4 {
					break // negative (refused below) or not all buffered
				}
				data = append(data, w[pos+4:pos+4+size]...)
				pos += 4 + size
				i++
				if len(data) > math.MaxInt32 {
					return nil, nil, errColumnSize
				}
				offs[i] = int32(len(data))
			}
			d.buf.consume(pos)
			if i == n {
				break
			}
		}
		var err error
		if data, err = d.readValue(ctx, data); err != nil {
			return nil, nil, err
		}
		i++
		if len(data) > math.MaxInt32 {
			return nil, nil, errColumnSize
		}
		offs[i] = int32(len(data))
	}
	return data, offs, nil
}

var errColumnSize = thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT, errors.New("column data over 2 GiB"))

// readValue appends one string or binary value read through the protocol
// or the transport.
func (d *decoder) readValue(ctx context.Context, data []byte) ([]byte, error) {
	if d.raw == nil {
		b, err := d.p.ReadBinary(ctx)
		return append(data, b...), err
	}
	size, err := d.size(ctx)
	if err != nil {
		return nil, err
	}
	at := len(data)
	data = slices.Grow(data, size)[:at+size]
	if err := d.readFull(data[at:]); err != nil {
		return nil, err
	}
	return data, nil
}

func (d *decoder) buffered(n int) []byte {
	if d.buf == nil {
		return nil
	}
	return d.buf.next(n)
}

// size reads a string length and checks it as TBinaryProtocol does.
func (d *decoder) size(ctx context.Context) (int, error) {
	var n int32
	if b := d.buffered(4); b != nil {
		n = int32(binary.BigEndian.Uint32(b))
	} else {
		var err error
		if n, err = d.p.ReadI32(ctx); err != nil {
			return 0, err
		}
	}
	if n < 0 {
		return 0, thrift.NewTProtocolExceptionWithType(thrift.NEGATIVE_SIZE, fmt.Errorf("negative size: %d", n))
	}
	if n > maxMessageSize {
		return 0, thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT, fmt.Errorf("size exceeded max allowed: %d", n))
	}
	return int(n), nil
}
