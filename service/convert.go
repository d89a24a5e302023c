package service

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/query"
)

// toResponse converts an engine event. Batch values are not copied: the
// proto's repeated fields take the hs2.Vector slices, and the NULL bitmap
// goes out as is.
func toResponse(ev query.Event) *hiveqv1.ExecuteResponse {
	switch ev.Kind {
	case query.EventStatus:
		return &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Status{Status: toStatusProto(ev.Status)}}
	case query.EventSchema:
		return &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Schema{Schema: toSchema(ev.Schema)}}
	case query.EventBatch:
		return &hiveqv1.ExecuteResponse{Event: &hiveqv1.ExecuteResponse_Batch{Batch: toBatch(ev.Batch, false)}}
	}
	return nil
}

func toStatusProto(s query.Status) *hiveqv1.QueryStatus {
	return &hiveqv1.QueryStatus{
		QueryId:   validUTF8(s.QueryID),
		State:     hiveqv1.QueryState(s.State),
		Server:    s.Server,
		Epoch:     s.Epoch,
		ReplicaId: validUTF8(s.ReplicaID),
		Connector: validUTF8(s.Connector),
		Progress:  s.Progress,
		Rows:      s.Rows,
		Elapsed:   durationpb.New(s.Elapsed),
		Message:   validUTF8(s.Message),
		Reruns:    int32(s.Reruns),
	}
}

func toSchema(s hs2.Schema) *hiveqv1.ResultSchema {
	out := &hiveqv1.ResultSchema{Columns: make([]*hiveqv1.ColumnSchema, len(s))}
	for i, c := range s {
		out.Columns[i] = &hiveqv1.ColumnSchema{
			Name:     validUTF8(c.Name),
			Type:     validUTF8(c.Type),
			Kind:     toKind(query.KindOf(c.Type)),
			Position: int32(c.Position),
			Comment:  validUTF8(c.Comment),
		}
	}
	return out
}

func toKind(k hs2.Kind) hiveqv1.ColumnKind {
	switch k {
	case hs2.KindBool:
		return hiveqv1.ColumnKind_COLUMN_KIND_BOOL
	case hs2.KindInt32:
		return hiveqv1.ColumnKind_COLUMN_KIND_INT32
	case hs2.KindInt64:
		return hiveqv1.ColumnKind_COLUMN_KIND_INT64
	case hs2.KindDouble:
		return hiveqv1.ColumnKind_COLUMN_KIND_DOUBLE
	case hs2.KindString:
		return hiveqv1.ColumnKind_COLUMN_KIND_STRING
	case hs2.KindBytes:
		return hiveqv1.ColumnKind_COLUMN_KIND_BYTES
	}
	return hiveqv1.ColumnKind_COLUMN_KIND_UNSPECIFIED
}

// toBatch builds the RowBatch message of b in the old or the compact
// layout (for a server without this package's codec, and for tests; the
// codec writes the same bytes directly).
func toBatch(b *hs2.Batch, compact bool) *hiveqv1.RowBatch {
	out := &hiveqv1.RowBatch{StartRow: b.StartRow, RowCount: int32(b.Rows), Columns: make([]*hiveqv1.ColumnVector, len(b.Columns))}
	for i := range b.Columns {
		v := &b.Columns[i]
		cv := &hiveqv1.ColumnVector{Nulls: v.Nulls}
		switch {
		case v.Kind == hs2.KindBool:
			cv.Values = &hiveqv1.ColumnVector_BoolValues{BoolValues: &hiveqv1.BoolValues{Values: v.Bools}}
		case v.Kind == hs2.KindDouble:
			cv.Values = &hiveqv1.ColumnVector_DoubleValues{DoubleValues: &hiveqv1.DoubleValues{Values: v.Doubles}}
		case compact:
			setCompact(cv, v)
		case v.Kind == hs2.KindInt32:
			cv.Values = &hiveqv1.ColumnVector_Int32Values{Int32Values: &hiveqv1.Int32Values{Values: v.Int32s}}
		case v.Kind == hs2.KindInt64:
			cv.Values = &hiveqv1.ColumnVector_Int64Values{Int64Values: &hiveqv1.Int64Values{Values: v.Int64s}}
		case v.Kind == hs2.KindString:
			cv.Values = &hiveqv1.ColumnVector_StringValues{StringValues: &hiveqv1.StringValues{Values: validStrings(v.Strings())}}
		case v.Kind == hs2.KindBytes:
			vals := make([][]byte, v.Len())
			for i := range vals {
				vals[i] = v.At(i)
			}
			cv.Values = &hiveqv1.ColumnVector_BytesValues{BytesValues: &hiveqv1.BytesValues{Values: vals}}
		}
		out.Columns[i] = cv
	}
	return out
}

// setCompact sets an int or variable-width vector in the compact layout.
func setCompact(cv *hiveqv1.ColumnVector, v *hs2.Vector) {
	switch v.Kind {
	case hs2.KindInt32:
		cv.Values = &hiveqv1.ColumnVector_Fixed32Values{Fixed32Values: &hiveqv1.Fixed32Values{Values: v.Int32s}}
	case hs2.KindInt64:
		cv.Values = &hiveqv1.ColumnVector_Fixed64Values{Fixed64Values: &hiveqv1.Fixed64Values{Values: v.Int64s}}
	case hs2.KindString:
		if !utf8.Valid(varData(v)) {
			w := hs2.StringVector(validStrings(v.Strings()), v.Nulls)
			v = &w
		}
		cv.Values = &hiveqv1.ColumnVector_StringBuffer{StringBuffer: bufferValues(v)}
	case hs2.KindBytes:
		cv.Values = &hiveqv1.ColumnVector_BytesBuffer{BytesBuffer: bufferValues(v)}
	}
}

func bufferValues(v *hs2.Vector) *hiveqv1.BufferValues {
	n := v.Len()
	offs := make([]uint32, n+1)
	for i := 1; i <= n; i++ {
		offs[i] = uint32(v.Offsets[i] - v.Offsets[0])
	}
	return &hiveqv1.BufferValues{Data: varData(v), Offsets: offs}
}

// validStrings returns ss, or a copy with invalid UTF-8 replaced: protobuf
// refuses to encode a string field that is not UTF-8, and one bad value
// must not fail the whole stream. HS2 (Java) always sends valid UTF-8, so
// the copy is for misbehaving servers only.
func validStrings(ss []string) []string {
	for i, s := range ss {
		if !utf8.ValidString(s) {
			out := make([]string, len(ss))
			copy(out, ss[:i])
			for j := i; j < len(ss); j++ {
				out[j] = validUTF8(ss[j])
			}
			return out
		}
	}
	return ss
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
