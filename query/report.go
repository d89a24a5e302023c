package query

import (
	"log/slog"
	"sync"
)

// reportQueue is how failures reach the Reporter without the query's error
// path waiting on it: the Reporter may talk to the leader over the network,
// and a client must hear of its query's end at once. Reports queue (up to
// reportBacklog) for one goroutine that hands them over in order; when the
// queue is full a report is dropped and logged (the leader's own probes
// still see the failure).
const reportBacklog = 64

type report struct {
	connector, server string
	epoch             uint64
	err               error
}

type reports struct {
	r    Reporter
	log  *slog.Logger
	ch   chan report
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// newReports starts the queue's goroutine; nil r makes a queue that drops
// everything and starts nothing.
func newReports(r Reporter, log *slog.Logger) *reports {
	rs := &reports{r: r, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if r == nil {
		close(rs.done)
		return rs
	}
	rs.ch = make(chan report, reportBacklog)
	go rs.loop()
	return rs
}

func (rs *reports) loop() {
	defer close(rs.done)
	for {
		select {
		case rep := <-rs.ch:
			rs.r.ReportFailure(rep.connector, rep.epoch, rep.server, rep.err)
		case <-rs.stop:
			return
		}
	}
}

// send queues a report; it never blocks.
func (rs *reports) send(connector string, epoch uint64, server string, err error) {
	if rs.ch == nil {
		return
	}
	select {
	case rs.ch <- report{connector: connector, server: server, epoch: epoch, err: err}:
	default:
		rs.log.Warn("failure report dropped: the reporter is behind", "connector", connector, "server", server, "error", err)
	}
}

// close stops the goroutine and waits for it (a report in hand finishes).
func (rs *reports) close() {
	rs.once.Do(func() { close(rs.stop) })
	<-rs.done
}
