package query

import (
	"strconv"
	"strings"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

// State is a query's life-cycle state; the values match hiveq.v1.QueryState.
type State int

const (
	StateUnspecified State = iota
	// StateSubmitted: routed; the statement is being submitted to HS2.
	StateSubmitted
	// StatePending: HS2 accepted the statement and has not started it.
	StatePending
	StateRunning
	// StateStreaming: HS2 finished; rows are being streamed.
	StateStreaming
	StateFinished
	StateFailed
	StateCanceled
)

var stateNames = [...]string{"UNSPECIFIED", "SUBMITTED", "PENDING", "RUNNING", "STREAMING", "FINISHED", "FAILED", "CANCELED"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Terminal reports whether s ends a query.
func (s State) Terminal() bool { return s == StateFinished || s == StateFailed || s == StateCanceled }

// Status is a progress report.
type Status struct {
	QueryID   string
	State     State
	Server    string // host:port of the HS2 running the query; "" before routing
	Epoch     uint64 // routing epoch of Server
	ReplicaID string
	Connector string
	Progress  float64 // 0..1, or -1 when HS2 reports none
	Rows      int64   // rows streamed so far
	Elapsed   time.Duration
	Message   string // the error for FAILED, the reason for CANCELED
	// Reruns counts the times the statement ran again on a new server
	// because its server was lost before anything was sent (rerun.go).
	Reruns int
}

// EventKind says which field of an Event is set.
type EventKind int

const (
	EventStatus EventKind = iota + 1
	EventSchema
	EventBatch
)

// Event is one item of a query's stream. A Batch's vectors alias the HS2
// client's buffers: the emit callback must be done with them when it
// returns.
type Event struct {
	Kind   EventKind
	Status Status
	Schema hs2.Schema
	Batch  *hs2.Batch
}

// KindOf is the vector kind HS2 uses for a column of Hive type typ ("int",
// "decimal(10,2)", "array<int>"): what a batch carries for it.
func KindOf(typ string) hs2.Kind {
	t := strings.ToLower(strings.TrimSpace(typ))
	if i := strings.IndexAny(t, "(<"); i >= 0 {
		t = strings.TrimSpace(t[:i])
	}
	switch t {
	case "boolean":
		return hs2.KindBool
	case "tinyint", "smallint", "int", "integer":
		return hs2.KindInt32
	case "bigint":
		return hs2.KindInt64
	case "float", "double", "double precision":
		return hs2.KindDouble
	case "binary":
		return hs2.KindBytes
	}
	return hs2.KindString
}
