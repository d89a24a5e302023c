package query

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/hiveqd/hiveqd/hs2"
)

// classify turns an error from the HS2 client (or the attempt's own
// cancellation) into an *Error, or a *retryable when the statement may run
// again on another route. It decides, on evidence about the query's own
// server only, whether that server is lost (serverLost): the server was
// declared dead (Current.Lost), or the query's own call failed on the
// connection (refused, reset, TLS, SASL, a stall past the stall bound) or
// was refused for an invalid handle (HS2 restarted). A route change alone
// is never evidence. Reports to the leader never block it.
func (a *attempt) classify(err error) error {
	q := a.q
	var qe *Error
	if errors.As(err, &qe) {
		return err
	}
	if a.lost() {
		return a.serverLost(errLost)
	}
	if a.ctx.Err() != nil {
		return a.meta(ctxError(a.ctx, "while running the query"))
	}
	if errors.Is(err, errRouteChanged) || errors.Is(err, hs2.ErrPoolClosed) {
		// Switched between routing and dialling: nothing ran.
		return &retryable{err: a.meta(newError(Unavailable, ReasonNoHS2, err, "the route of connector %q changed while the query was submitted", q.connector))}
	}
	if errors.Is(err, errShutdown) {
		return a.meta(newError(Unavailable, ReasonShuttingDown, err, "%s", errShutdown))
	}
	var se *hs2.ServerError
	if errors.As(err, &se) {
		if invalidHandle(se) {
			q.e.report.send(q.connector, q.epoch, q.server, err)
			a.log().Warn("HiveServer2 no longer knows the query's session or operation (restarted?)", "error", err)
			return a.serverLost(err)
		}
		return a.serverError(se)
	}
	var ae *hs2.AuthError
	if errors.As(err, &ae) {
		if a.accepted {
			return a.serverLost(err)
		}
		return a.meta(newError(Unavailable, ReasonAuthFailed, err, "HiveServer2 %s refused hiveqd's credentials for connector %q", q.server, q.connector))
	}
	if errors.Is(err, hs2.ErrUnsupported) {
		return a.meta(newError(Unavailable, ReasonUnsupportedHS2, err, "cannot talk to HiveServer2 %s: %v", q.server, err))
	}
	var te *hs2.TransportError
	if errors.As(err, &te) {
		q.e.report.send(q.connector, q.epoch, q.server, err)
		a.log().Warn("HiveServer2 transport failure", "accepted", a.accepted, "error", err)
		if !a.accepted && te.Call == "ExecuteStatement" && !q.read {
			// The statement was sent; HS2 may have run it. Only a read
			// may run again.
			return a.meta(newError(Aborted, ReasonHS2Lost, err, "the connection to HiveServer2 %s failed while it received the statement; it may have run: check before retrying", q.server))
		}
		if !a.accepted {
			return &retryable{err: a.meta(newError(Unavailable, ReasonNoHS2, err, "HiveServer2 %s is unreachable", q.server))}
		}
		return a.serverLost(err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The call context ended without the query's: a call timeout.
		return a.meta(newError(Unavailable, ReasonNoHS2, err, "HiveServer2 %s did not answer", q.server))
	}
	return a.meta(newError(Internal, ReasonInternal, err, "query failed: %v", err))
}

// serverError maps an HS2 error status.
func (a *attempt) serverError(se *hs2.ServerError) *Error {
	q := a.q
	e := fromServerError(se, a.metadata())
	if se.Call == "OpenSession" && q.req.Database != "" && se.SQLState == "" && strings.Contains(se.Message, "does not exist") {
		// HS2 refuses "use:database" for a missing database with a
		// bare HiveSQLException: no SQLSTATE, no code, only the text.
		e.Code, e.Reason = NotFound, ReasonNotFound
	}
	return e
}

// invalidHandle reports HS2 refusing a session or operation handle it does
// not know: after a restart, every handle from before is gone.
func invalidHandle(se *hs2.ServerError) bool {
	return strings.Contains(se.Message, "Invalid SessionHandle") || strings.Contains(se.Message, "Invalid OperationHandle")
}

// serverLost is the outcome of a query whose server is lost: before HS2
// accepted the statement it may simply run elsewhere; after, a read that
// sent nothing is re-run (rerun.go); anything else ends Aborted.
func (a *attempt) serverLost(cause error) error {
	q := a.q
	if !a.accepted {
		return &retryable{err: a.meta(newError(Unavailable, ReasonNoHS2, cause, "HiveServer2 %s was lost before it accepted the statement", q.server))}
	}
	if q.rerunnable() {
		return &retryable{rerun: true, err: a.lostError(cause)}
	}
	if !a.lost() {
		// The failure is usually seen a moment before the switch is
		// published: wait briefly for it, so that the error names the
		// server to retry on.
		select {
		case <-a.cur.Superseded():
		case <-a.ctx.Done():
		case <-q.e.clock.After(q.e.cfg.RetryWait):
		}
	}
	return a.lostError(cause)
}

// rerunnable reports whether the query may run again after its server was
// lost: a read that sent nothing, with re-runs on.
func (q *queryRun) rerunnable() bool {
	return q.read && !q.sentData && !q.req.DisableRerun && !q.cc.DisableRerun
}

// lostError is the Aborted error of a query whose server was lost.
func (a *attempt) lostError(cause error) *Error {
	q := a.q
	e := newError(Aborted, ReasonHS2Lost, cause, "HiveServer2 %s was lost", q.server)
	if next := a.cur.Next(); next != nil {
		e.Message = "HiveServer2 " + q.server + " was replaced"
		if next.Endpoint != nil {
			e.Message += " by " + next.Endpoint.Addr()
			e.Metadata[MetaNewServer] = next.Endpoint.Addr()
		}
		e.Message += " at epoch " + strconv.FormatUint(next.Epoch, 10)
		e.Metadata[MetaNewEpoch] = strconv.FormatUint(next.Epoch, 10)
	}
	e.Message += "; the query was lost: retry it"
	e.Metadata[MetaRowsDelivered] = strconv.FormatInt(q.rows, 10)
	return a.meta(e)
}

func (a *attempt) metadata() map[string]string {
	q := a.q
	return map[string]string{
		MetaServer:    q.server,
		MetaConnector: q.connector,
		MetaEpoch:     strconv.FormatUint(q.epoch, 10),
		MetaQueryID:   q.req.QueryID,
	}
}

// meta adds the attempt's server, connector and epoch to e.
func (a *attempt) meta(e *Error) *Error {
	for k, v := range a.metadata() {
		if _, ok := e.Metadata[k]; !ok {
			e.Metadata[k] = v
		}
	}
	return e
}
