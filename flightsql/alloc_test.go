package flightsql

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestClass(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, -1}, {1, 0}, {1024, 0}, {1025, 1}, {2048, 1}, {4096, 2}, {80_000, 7}, {8 << 20, 13}, {8<<20 + 1, -1},
	} {
		if got := class(c.n); got != c.want {
			t.Errorf("class(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestRecycler: a freed buffer comes back, zeroed, for its size class;
// foreign and outsized slices are not kept; nothing beyond the limit is.
func TestRecycler(t *testing.T) {
	r := newRecycler(64 << 10)
	b := r.Allocate(5000)
	if len(b) != 5000 || cap(b) != 8192 {
		t.Fatalf("len %d cap %d, want 5000 and 8192", len(b), cap(b))
	}
	for i := range b {
		b[i] = 0xff
	}
	r.Free(b)
	if r.kept.Load() != 8192 {
		t.Fatalf("kept %d, want 8192", r.kept.Load())
	}
	c := r.Allocate(6000)
	if &c[0] != &b[0] {
		t.Fatal("the freed buffer was not reused")
	}
	for i, x := range c {
		if x != 0 {
			t.Fatalf("byte %d of a reused buffer is %#x, want 0", i, x)
		}
	}
	r.Free(make([]byte, 5000)) // not a class size
	r.Free(make([]byte, 16<<20))
	if r.kept.Load() != 0 {
		t.Fatalf("kept %d after freeing foreign slices, want 0", r.kept.Load())
	}
	for range 3 {
		r.Free(make([]byte, 32<<10))
	}
	if r.kept.Load() != 64<<10 {
		t.Fatalf("kept %d, want the limit %d", r.kept.Load(), 64<<10)
	}
	if got := r.Reallocate(100, c); &got[0] != &c[0] || len(got) != 100 {
		t.Fatal("Reallocate within capacity moved the buffer")
	}
}

// TestRecycledBatchOwnership: a batch whose buffers come from batchAlloc
// returns them only once gRPC has freed its message, so a buffer is never
// reused while the transport may still read it.
func TestRecycledBatchOwnership(t *testing.T) {
	r := newRecycler(1 << 20)
	n := 10_000
	data := memory.NewBufferWithAllocator(r.Allocate(8*n), r)
	vals := arrow.Int64Traits.CastFromBytes(data.Bytes())
	for i := range vals {
		vals[i] = int64(i)
	}
	d := array.NewData(arrow.PrimitiveTypes.Int64, n, []*memory.Buffer{nil, data}, nil, 0, 0)
	data.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	col := array.MakeFromData(d)
	d.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(n))
	col.Release()

	s := &holdingStream{}
	w := newRecordWriter(s, schema)
	if err := w.write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	if r.kept.Load() != 0 {
		t.Fatal("the batch's buffer was recycled while gRPC held its message")
	}
	for _, m := range s.held {
		m.Free()
	}
	if r.kept.Load() != 128<<10 {
		t.Fatalf("kept %d after gRPC freed the message, want %d", r.kept.Load(), 128<<10)
	}
}

// TestNewBuffer: a buffer from newBuffer goes back to batchAlloc when
// released.
func TestNewBuffer(t *testing.T) {
	b := newBuffer(3000)
	if b.Len() != 3000 {
		t.Fatalf("len %d, want 3000", b.Len())
	}
	before := batchAlloc.kept.Load()
	b.Release()
	if got := batchAlloc.kept.Load(); got != before+4096 {
		t.Fatalf("batchAlloc keeps %d bytes after the release, want %d", got, before+4096)
	}
}
