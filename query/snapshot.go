package query

import (
	"sort"
	"time"
)

// RunningQuery is a read-only view of one query running on this replica,
// for operators (the web console). Statement is cut to StatementHeadBytes.
type RunningQuery struct {
	QueryID   string
	User      string
	Connector string
	Statement string
	State     State
	Server    string // "" before routing
	Epoch     uint64
	Rows      int64 // rows streamed so far
	Started   time.Time
	Elapsed   time.Duration
}

// StatementHeadBytes bounds the statement text a snapshot carries.
const StatementHeadBytes = 200

// runInfo is what a snapshot reports of a run beyond its id, user and
// state; it is filled from the query's own events (run.observe), guarded
// by run.mu.
type runInfo struct {
	connector string
	statement string
	started   time.Time
	server    string
	epoch     uint64
	rows      int64
}

// describe records what the request says; called once before the query
// starts.
func (r *run) describe(req Request, connector string, start time.Time) {
	stmt := req.Statement
	if len(stmt) > StatementHeadBytes {
		cut := StatementHeadBytes
		for cut > 0 && !isRuneStart(stmt[cut]) {
			cut--
		}
		stmt = stmt[:cut] + "…"
	}
	r.mu.Lock()
	r.info = runInfo{connector: connector, statement: stmt, started: start}
	r.mu.Unlock()
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// observe wraps emit to keep the run's server and row count current.
func (r *run) observe(emit func(Event) error) func(Event) error {
	return func(ev Event) error {
		if ev.Kind == EventStatus {
			r.mu.Lock()
			if ev.Status.Server != "" {
				r.info.server, r.info.epoch = ev.Status.Server, ev.Status.Epoch
			}
			r.info.rows = max(r.info.rows, ev.Status.Rows)
			r.mu.Unlock()
		} else if ev.Kind == EventBatch && ev.Batch != nil {
			r.mu.Lock()
			r.info.rows += int64(ev.Batch.Rows)
			r.mu.Unlock()
		}
		return emit(ev)
	}
}

// Snapshot lists the queries running on this replica, oldest first.
func (e *Engine) Snapshot() []RunningQuery {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.running))
	for _, r := range e.running {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	now := e.clock.Now()
	out := make([]RunningQuery, 0, len(runs))
	for _, r := range runs {
		r.mu.Lock()
		out = append(out, RunningQuery{
			QueryID: r.id, User: r.user, Connector: r.info.connector, Statement: r.info.statement,
			State: r.state, Server: r.info.server, Epoch: r.info.epoch, Rows: r.info.rows,
			Started: r.info.started, Elapsed: now.Sub(r.info.started),
		})
		r.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].QueryID < out[j].QueryID
	})
	return out
}
