package flightsql

import (
	"math/bits"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Converting a batch allocates its Arrow buffers (a 10 000-row batch of the
// bench's table: eleven buffers of 1–90 KB). Fresh from the Go heap, most
// are large allocations: cleared, often on pages the runtime has just
// returned to the OS, and more work for the GC; wired into the conversion,
// recycling them halved its CPU in hiveqd's profile. batchAlloc recycles them instead:
// a batch's buffers go back to it when the batch is released, which, since
// recordWriter holds a batch until gRPC has written it, is when nothing
// reads them any more.

// batchAlloc is the allocator for the buffers of converted batches.
var batchAlloc = newRecycler(32 << 20)

// newBuffer returns a buffer of n bytes from batchAlloc, zeroed, which
// returns to it when released.
func newBuffer(n int) *memory.Buffer {
	return memory.NewBufferWithAllocator(batchAlloc.Allocate(n), batchAlloc)
}

// Size classes: powers of two from 1 KiB to 8 MiB. Smaller and larger
// buffers come from the Go heap and are not kept.
const (
	minClassShift = 10
	maxClassShift = 23
	classSlots    = 64 // free buffers kept per class at most
)

// recycler is a memory.Allocator that keeps freed buffers, up to a total
// of limit bytes, for the next Allocate of their size class. It is safe
// for concurrent use. Unlike sync.Pool, what it keeps survives GCs.
type recycler struct {
	limit   int64
	kept    atomic.Int64
	classes [maxClassShift - minClassShift + 1]chan []byte
}

func newRecycler(limit int64) *recycler {
	r := &recycler{limit: limit}
	for i := range r.classes {
		r.classes[i] = make(chan []byte, classSlots)
	}
	return r
}

// class is the size class index for a buffer of n bytes; -1: none.
func class(n int) int {
	if n <= 1<<minClassShift {
		if n <= 0 {
			return -1
		}
		return 0
	}
	shift := bits.Len(uint(n - 1))
	if shift > maxClassShift {
		return -1
	}
	return shift - minClassShift
}

func (r *recycler) Allocate(size int) []byte {
	c := class(size)
	if c < 0 {
		return make([]byte, size)
	}
	select {
	case b := <-r.classes[c]:
		r.kept.Add(-int64(cap(b)))
		b = b[:size]
		clear(b)
		return b
	default:
		return make([]byte, size, 1<<(c+minClassShift))
	}
}

func (r *recycler) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		return b[:size]
	}
	nb := r.Allocate(size)
	copy(nb, b)
	r.Free(b)
	return nb
}

// Free keeps b if it is one of the recycler's and there is room.
func (r *recycler) Free(b []byte) {
	n := cap(b)
	c := class(n)
	if c < 0 || n != 1<<(c+minClassShift) {
		return
	}
	if r.kept.Add(int64(n)) > r.limit {
		r.kept.Add(-int64(n))
		return
	}
	select {
	case r.classes[c] <- b[:0]:
	default:
		r.kept.Add(-int64(n))
	}
}
