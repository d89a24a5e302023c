package memview

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestBytes(t *testing.T) {
	if b := Bytes([]int64(nil)); b != nil {
		t.Fatalf("empty: %v", b)
	}
	xs := []uint32{1, 0x01020304}
	b := Bytes(xs)
	want := binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, 1), 0x01020304)
	if !bytes.Equal(b, want) {
		t.Fatalf("got %x, want %x", b, want)
	}
	b[0] = 9 // shared, not copied
	if xs[0] != binary.NativeEndian.Uint32([]byte{9, 0, 0, 0}) {
		t.Fatalf("not shared: %v", xs)
	}
}
