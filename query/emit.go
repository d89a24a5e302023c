package query

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

// status emits a Status in state s.
func (q *queryRun) status(s State, msg string) error {
	return q.send(q.statusEvent(s, msg))
}

// statusEvent moves the query to state s and returns its Status event.
func (q *queryRun) statusEvent(s State, msg string) Event {
	q.state = s
	q.run.setState(s)
	return Event{Kind: EventStatus, Status: Status{
		QueryID:   q.req.QueryID,
		State:     s,
		Server:    q.server,
		Epoch:     q.epoch,
		ReplicaID: q.e.cfg.ReplicaID,
		Connector: q.connector,
		Progress:  q.progress,
		Rows:      q.rows,
		Elapsed:   q.e.clock.Now().Sub(q.start),
		Message:   strings.ToValidUTF8(msg, "\uFFFD"),
		Reruns:    q.reruns,
	}}
}

// schemaHold bounds how long STREAMING and the schema wait for the first
// batch (or the end) to leave with it.
const schemaHold = 5 * time.Millisecond

// holdSchema moves the query to STREAMING and holds that status and the
// schema back until the next event (or schemaHold: fetchAll), so that a
// small result's status, schema, rows and FINISHED reach the client in
// one write rather than two: the first fetch went to HS2 with the schema
// and its answer is usually there already. The client sees the same
// events in the same order. The schema counts as sent: a query holding
// one is never re-run, as before.
func (q *queryRun) holdSchema(schema hs2.Schema) {
	q.held = append(q.held[:0], q.statusEvent(StateStreaming, ""), Event{Kind: EventSchema, Schema: schema})
	q.sentData = true
}

// flushHeld sends the held events.
func (q *queryRun) flushHeld() error {
	held := q.held
	q.held = nil
	for _, ev := range held {
		if err := q.send(ev); err != nil {
			return err
		}
	}
	return nil
}

// progressTo emits a status when the state or progress moved.
func (q *queryRun) progressTo(s State, progress float64) (bool, error) {
	if s == q.state && progress == q.progress {
		return false, nil
	}
	q.progress = progress
	return true, q.status(s, "")
}

// send emits ev; once emit failed, the stream is considered unwritable.
// A schema or batch handed to emit makes the query ineligible for a
// re-run, whether or not it reached the client.
func (q *queryRun) send(ev Event) error {
	if q.emitErr != nil {
		return q.emitErr
	}
	if len(q.held) > 0 {
		if err := q.flushHeld(); err != nil {
			return err
		}
	}
	if ev.Kind != EventStatus {
		q.sentData = true
	}
	if err := q.emitFn(ev); err != nil {
		var qe *Error
		if !errors.As(err, &qe) {
			qe = newError(Canceled, ReasonCancelled, err, "the stream to the client ended")
		}
		q.emitErr = qe
		return qe
	}
	return nil
}

// emitBatch sends b (nil: nothing) in slices of at most the batch limits.
func (q *queryRun) emitBatch(b *hs2.Batch) error {
	if b == nil {
		return nil
	}
	batchRows, batchBytes := q.batchLimits()
	return sliceBatch(b, batchRows, batchBytes, func(sb *hs2.Batch) error {
		if err := q.send(Event{Kind: EventBatch, Batch: sb}); err != nil {
			return err
		}
		q.rows += int64(sb.Rows)
		return nil
	})
}

func (q *queryRun) finish(msg string) error {
	if err := q.status(StateFinished, msg); err != nil {
		return err
	}
	// Debug, not Info: a line per query is a write per query on the hot
	// path; failures are logged (fail), successes are counted (metrics).
	if q.e.log.Enabled(context.Background(), slog.LevelDebug) {
		q.log().Debug("query finished", "server", q.server, "epoch", q.epoch, "rows", q.rows, "reruns", q.reruns, "elapsed", q.e.clock.Now().Sub(q.start))
	}
	return nil
}

// fail reports err in a last status (when the stream still takes events)
// and returns it as an *Error.
func (q *queryRun) fail(ctx context.Context, err error) error {
	qe := AsError(err)
	if qe.Metadata == nil {
		qe.Metadata = map[string]string{}
	}
	if _, ok := qe.Metadata[MetaConnector]; !ok {
		qe.Metadata[MetaConnector] = q.connector
	}
	if _, ok := qe.Metadata[MetaQueryID]; !ok {
		qe.Metadata[MetaQueryID] = q.req.QueryID
	}
	state := StateFailed
	if qe.Code == Canceled || qe.Code == DeadlineExceeded || errors.Is(qe, errShutdown) {
		state = StateCanceled
	}
	if q.emitErr == nil {
		_ = q.status(state, qe.Message)
	}
	q.run.setState(state)
	level := slog.LevelWarn
	if state == StateCanceled || qe.Code == InvalidArgument || qe.Code == NotFound {
		level = slog.LevelInfo
	}
	q.log().Log(ctx, level, "query ended", "state", state, "code", qe.Code, "reason", qe.Reason, "server", q.server, "epoch", q.epoch, "rows", q.rows, "reruns", q.reruns, "error", qe.Error())
	return qe
}
