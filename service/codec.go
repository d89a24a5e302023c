package service

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// lenientCodec is gRPC's proto codec, except that a request whose string
// fields hold invalid UTF-8 is still decoded (the strings keep their bytes)
// instead of failing. gRPC reports any decode failure as INTERNAL; decoded,
// the request reaches validation and is refused as INVALID_ARGUMENT, which
// is what it is. Well-formed messages take the normal path unchanged.
type lenientCodec struct{ encoding.CodecV2 }

func newLenientCodec() encoding.CodecV2 {
	return lenientCodec{encoding.GetCodecV2(grpcproto.Name)}
}

// Marshal encodes batches by hand (marshalBatch), the rest as proto does.
func (c lenientCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*batchMsg); ok {
		return marshalBatch(m.b, m.compact), nil
	}
	return c.CodecV2.Marshal(v)
}

func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	buf := data.Materialize()
	proto.Reset(m)
	if lerr := lenientUnmarshal(buf, m.ProtoReflect()); lerr != nil {
		proto.Reset(m)
		return err
	}
	return nil
}

// lenientUnmarshal decodes b into m like proto.Unmarshal but without
// UTF-8 checks on string fields. Scalars are merged through
// proto.Unmarshal; strings, messages and maps are walked here.
func lenientUnmarshal(b []byte, m protoreflect.Message) error {
	fields := m.Descriptor().Fields()
	var rest []byte // fields proto.Unmarshal can take as they are
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		fd := fields.ByNumber(num)
		vn := protowire.ConsumeFieldValue(num, typ, b[n:])
		if vn < 0 {
			return protowire.ParseError(vn)
		}
		field := b[:n+vn]
		value := b[n : n+vn]
		b = b[n+vn:]
		if fd == nil || typ != protowire.BytesType {
			rest = append(rest, field...)
			continue
		}
		switch {
		case fd.IsMap():
			if err := mapEntry(value, m, fd); err != nil {
				return err
			}
		case fd.Kind() == protoreflect.StringKind:
			s, _ := protowire.ConsumeBytes(value)
			v := protoreflect.ValueOfString(string(s))
			if fd.IsList() {
				m.Mutable(fd).List().Append(v)
			} else {
				m.Set(fd, v)
			}
		case fd.Kind() == protoreflect.MessageKind:
			s, _ := protowire.ConsumeBytes(value)
			var sub protoreflect.Message
			if fd.IsList() {
				list := m.Mutable(fd).List()
				sub = list.NewElement().Message()
				list.Append(protoreflect.ValueOfMessage(sub))
			} else {
				sub = m.Mutable(fd).Message()
			}
			if err := lenientUnmarshal(s, sub); err != nil {
				return err
			}
		default:
			rest = append(rest, field...)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(rest, m.Interface())
}

// mapEntry decodes one map entry (a nested key/value message).
func mapEntry(value []byte, m protoreflect.Message, fd protoreflect.FieldDescriptor) error {
	if fd.MapValue().Kind() == protoreflect.MessageKind || fd.MapValue().Kind() == protoreflect.GroupKind {
		return errors.New("lenient decoding of message-valued maps is not supported")
	}
	s, _ := protowire.ConsumeBytes(value)
	entry := dynamicpb.NewMessage(fd.Message())
	if err := lenientUnmarshal(s, entry); err != nil {
		return fmt.Errorf("map entry: %w", err)
	}
	key := entry.Get(fd.MapKey()).MapKey()
	m.Mutable(fd).Map().Set(key, entry.Get(fd.MapValue()))
	return nil
}
