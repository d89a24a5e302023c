package hs2sim

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/beltran/gohive/hiveserver"
)

// handle is HS2's HandleIdentifier: a public UUID and a secret UUID; a
// handle matches only when both do.
type handle struct {
	guid, secret [16]byte
}

func newUUID() [16]byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

func newHandle() handle { return handle{guid: newUUID(), secret: newUUID()} }

func uuidString(u []byte) string {
	if len(u) != 16 {
		return fmt.Sprintf("%x", u)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func (h handle) thrift() *hiveserver.THandleIdentifier {
	return &hiveserver.THandleIdentifier{GUID: append([]byte{}, h.guid[:]...), Secret: append([]byte{}, h.secret[:]...)}
}

// handleKey extracts the lookup key and secret of a client's handle.
func handleKey(id *hiveserver.THandleIdentifier) (guid, secret [16]byte, ok bool) {
	if id == nil || len(id.GUID) != 16 || len(id.Secret) != 16 {
		return guid, secret, false
	}
	copy(guid[:], id.GUID)
	copy(secret[:], id.Secret)
	return guid, secret, true
}

// session is an HS2 session. A binary-transport session belongs to its
// connection (connID) and ends with it; HTTP sessions (connID 0) don't.
type session struct {
	h      handle
	user   string
	proto  hiveserver.TProtocolVersion
	connID uint64

	mu      sync.Mutex
	db      string
	conf    map[string]string
	ops     map[[16]byte]*operation
	fetched int64 // rows fetched, for DropAfterRows
}

func (s *session) view() sessionView {
	s.mu.Lock()
	defer s.mu.Unlock()
	conf := make(map[string]string, len(s.conf))
	for k, v := range s.conf {
		conf[k] = v
	}
	return sessionView{db: s.db, user: s.user, conf: conf}
}

func (s *session) handleString() string { return "SessionHandle [" + uuidString(s.h.guid[:]) + "]" }

// operation is an HS2 operation: a statement or a metadata call.
type operation struct {
	h         handle
	typ       hiveserver.TOperationType
	sess      *session
	plan      *plan
	queryID   string
	async     bool
	timeout   time.Duration // queryTimeout: TIMEDOUT when execution takes longer
	execDelay time.Duration // hs2sim.exec_delay_ms: how long execution takes
	// hs2sim.rows_per_second and hs2sim.fetch_delay_ms (0: the server's)
	rate       int64
	fetchDelay time.Duration
	ctx        context.Context
	cancelRun  context.CancelFunc

	mu        sync.Mutex
	state     hiveserver.TOperationState
	err       *hiveError
	started   int64 // ms since epoch
	completed int64
	done      chan struct{} // closed on reaching a terminal state

	fetchMu   sync.Mutex // one fetch at a time; guards the fields below
	offset    int64
	paceStart time.Time
	paced     int64
}

func opHandleString(typ hiveserver.TOperationType, guid []byte) string {
	return fmt.Sprintf("OperationHandle [opType=%s, getHandleIdentifier()=%s]", typ, uuidString(guid))
}

func terminal(s hiveserver.TOperationState) bool {
	switch s {
	case hiveserver.TOperationState_FINISHED_STATE, hiveserver.TOperationState_CANCELED_STATE,
		hiveserver.TOperationState_CLOSED_STATE, hiveserver.TOperationState_ERROR_STATE,
		hiveserver.TOperationState_TIMEDOUT_STATE:
		return true
	}
	return false
}

// transition moves the operation to state unless it already ended; it
// reports whether it did. Terminal states stamp the completion time and
// wake long-polls.
func (o *operation) transition(state hiveserver.TOperationState, err *hiveError) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if terminal(o.state) && state != hiveserver.TOperationState_CLOSED_STATE {
		return false
	}
	wasTerminal := terminal(o.state)
	o.state, o.err = state, err
	if err == nil && state == hiveserver.TOperationState_CLOSED_STATE {
		o.err = nil
	}
	if terminal(state) && !wasTerminal {
		o.completed = time.Now().UnixMilli()
		close(o.done)
	}
	return true
}

func (o *operation) snapshot() (hiveserver.TOperationState, *hiveError) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state, o.err
}
