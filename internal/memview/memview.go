// Package memview views a slice of fixed-size values as its bytes, without
// copying: hiveqd's decoders and encoders move whole columns as memory
// (HS2's big-endian Thrift values byte-swapped in place, then handed to
// protobuf or Arrow, whose little-endian layout a little-endian host
// already has).
package memview

import "unsafe"

// Bytes is the memory of xs as bytes, shared with xs (nil when xs is
// empty). T must hold no pointers.
func Bytes[T any](xs []T) []byte {
	if len(xs) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(xs))), len(xs)*int(unsafe.Sizeof(xs[0])))
}
