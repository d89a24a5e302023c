package query

import (
	"sync"
	"sync/atomic"
)

// maxIdleWorkers bounds the call goroutines kept between queries.
const maxIdleWorkers = 64

// workers keeps the goroutines that run attempts' HS2 calls (attempt.run)
// between queries. Thrift calls run deep: a fresh goroutine grows its
// stack on every query's first calls (copying it each time it doubles),
// which was a visible part of a small query's CPU; a kept one has grown
// already. Close stops the idle ones; a busy one stops when its attempt
// gives it back after Close.
type workers struct {
	mu     sync.Mutex
	idle   []*worker
	closed bool
}

// worker is one call goroutine; jobs feeds it.
type worker struct {
	jobs chan func()
	// idle: the goroutine is at, or about to reach, its receive. Only
	// the attempt that holds the worker sends, and clears it first.
	idle atomic.Bool
}

// get returns an idle worker, or starts one.
func (ws *workers) get() *worker {
	ws.mu.Lock()
	if n := len(ws.idle); n > 0 {
		w := ws.idle[n-1]
		ws.idle[n-1] = nil
		ws.idle = ws.idle[:n-1]
		ws.mu.Unlock()
		return w
	}
	ws.mu.Unlock()
	w := &worker{jobs: make(chan func())}
	w.idle.Store(true)
	go w.loop()
	return w
}

// put takes back a worker whose jobs have all returned.
func (ws *workers) put(w *worker) {
	ws.mu.Lock()
	if ws.closed || len(ws.idle) >= maxIdleWorkers {
		ws.mu.Unlock()
		close(w.jobs)
		return
	}
	ws.idle = append(ws.idle, w)
	ws.mu.Unlock()
}

// close stops the idle workers, and those put back later.
func (ws *workers) close() {
	ws.mu.Lock()
	idle := ws.idle
	ws.idle, ws.closed = nil, true
	ws.mu.Unlock()
	for _, w := range idle {
		close(w.jobs)
	}
}

func (w *worker) loop() {
	for job := range w.jobs {
		job()
		w.idle.Store(true)
	}
}

// send hands job to the worker if it is idle.
func (w *worker) send(job func()) bool {
	if !w.idle.Load() {
		return false
	}
	w.idle.Store(false)
	w.jobs <- job
	return true
}
