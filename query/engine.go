// Package query runs HiveQL statements on the HiveServer2 each connector
// routes to and streams their status, schema and row batches to a callback.
// It knows nothing of gRPC; package service adapts it.
package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/clock"
	"github.com/hiveqd/hiveqd/routing"
)

// Routes is where the engine finds each connector's server: a
// *routing.Table.
type Routes interface {
	Get(connector string) (*routing.Current, error)
	OnSwitch(routing.SwitchFunc)
}

// Reporter is told about transport failures talking to a routed server, so
// that the leader can check it and fail over.
type Reporter interface {
	ReportFailure(connector string, epoch uint64, server string, err error)
}

// Connector is how the engine talks to one connector's servers. The
// endpoint (address, transport, auth mode, TLS) comes from the route; the
// credentials and client settings from here.
type Connector struct {
	Options hs2.Options
	// Session pool per server; zero values take hs2.PoolConfig's defaults.
	MaxSessions   int
	MaxIdlePerKey int
	IdleTimeout   time.Duration
	ValidateAfter time.Duration
	// Impersonate runs each statement as the calling user
	// (hive.server2.proxy.user); Options.User must be allowed to proxy.
	Impersonate bool
	// StallTimeout bounds each status poll, schema and fetch call of a
	// running query: a call its server does not answer within it ends the
	// query as lost (its server is hung). It must exceed HS2's status long
	// poll (hive.server2.long.polling.timeout, 5s) by a margin that covers
	// a JVM GC pause; default 15s.
	StallTimeout time.Duration
	// DisableRerun turns transparent re-runs off for the connector: a read
	// whose server is lost before it sent anything then ends in error.
	DisableRerun bool
}

// Limits bound what one replica and one query may use. Zero values take
// the defaults noted.
type Limits struct {
	MaxConcurrent     int   // running queries on this replica; 0: no limit
	MaxPerUser        int   // running queries per Request.User; 0: no limit
	MaxStatementBytes int   // default 1 MiB
	MaxRowsPerQuery   int64 // rows streamed per query; 0: no limit
	// MaxBatchRows bounds rows per emitted batch (it is also capped by the
	// request's fetch size); default 10000.
	MaxBatchRows int
	// DefaultFetchSize is the FetchResults size of a request that names
	// none (limits.default_fetch_size); default 10000.
	DefaultFetchSize int
	// MaxBatchBytes bounds the estimated encoded size of an emitted batch
	// (default 1 MiB), far below gRPC's 4 MiB message limit.
	MaxBatchBytes int
	// MaxFetchBytes bounds one FetchResults answer by estimate: after a
	// batch of wide rows the next fetch asks for fewer rows (default 16 MiB).
	MaxFetchBytes int
}

// Config configures an Engine.
type Config struct {
	ReplicaID        string
	Routes           Routes
	DefaultConnector string
	Connectors       map[string]Connector
	Reporter         Reporter // nil: failures are only logged
	// Traffic is told about every HS2 call of every query (nil: none).
	Traffic TrafficObserver
	Limits  Limits
	// RetryWait bounds the wait for a new route after a server failed
	// before accepting a statement (default 2s).
	RetryWait time.Duration
	// RerunWait bounds the wait for a new route before a read that sent
	// nothing is re-run (at least RetryWait; default DefaultRerunWait).
	RerunWait time.Duration
	// CleanupTimeout bounds, when a query ends, the wait for an HS2 call
	// still in flight (HS2 long-polls operation status for up to 5s), and
	// then cancelling and closing the operation (default 10s). A call still
	// running after it is aborted, which costs its connection.
	CleanupTimeout time.Duration
	// Observe, when set, follows every query (metrics, tracing).
	Observe ObserveFunc
	Clock   hs2.Clock    // nil: the real clock
	Logger  *slog.Logger // nil: discard
}

// Defaults.
const (
	DefaultMaxStatementBytes = 1 << 20
	DefaultMaxBatchBytes     = 1 << 20
	DefaultMaxFetchBytes     = 16 << 20
	DefaultRetryWait         = 2 * time.Second
	DefaultRerunWait         = 10 * time.Second
	DefaultCleanupTimeout    = 10 * time.Second
	DefaultStallTimeout      = 15 * time.Second
	// maxAttempts: the first try plus at most two retries on a new route.
	maxAttempts = 3
)

var (
	errShutdown        = errors.New("this hiveqd replica is shutting down")
	errCancelRequested = errors.New("cancelled by request")
	errRouteChanged    = errors.New("the route changed")
)

// Engine runs queries. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	limits  Limits
	clock   hs2.Clock
	log     *slog.Logger
	pools   *poolSet
	report  *reports
	workers workers // call goroutines kept between queries

	bg sync.WaitGroup // releases of ended queries in flight

	mu       sync.Mutex
	closed   bool
	bgClosed bool // Close is waiting for bg: run releases inline
	running  map[string]*run
	perUser  map[string]int
}

// run is a query in the registry.
type run struct {
	id     string
	user   string
	cancel context.CancelCauseFunc
	done   chan struct{}
	mu     sync.Mutex
	state  State
	info   runInfo // for Snapshot
}

func (r *run) setState(s State) {
	r.mu.Lock()
	r.state = s
	r.mu.Unlock()
}

func (r *run) getState() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// New returns an Engine and subscribes it to cfg.Routes' switches.
func New(cfg Config) (*Engine, error) {
	if cfg.Routes == nil {
		return nil, errors.New("query: Config.Routes is required")
	}
	if _, ok := cfg.Connectors[cfg.DefaultConnector]; !ok {
		return nil, fmt.Errorf("query: default connector %q is not configured", cfg.DefaultConnector)
	}
	l := cfg.Limits
	if l.MaxStatementBytes <= 0 {
		l.MaxStatementBytes = DefaultMaxStatementBytes
	}
	if l.MaxBatchRows <= 0 {
		l.MaxBatchRows = hs2.MaxFetchRows
	}
	if l.DefaultFetchSize <= 0 || l.DefaultFetchSize > hs2.MaxFetchRows {
		l.DefaultFetchSize = DefaultFetchSize
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if l.MaxFetchBytes <= 0 {
		l.MaxFetchBytes = DefaultMaxFetchBytes
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = DefaultRetryWait
	}
	if cfg.RerunWait <= 0 {
		cfg.RerunWait = DefaultRerunWait
	}
	if cfg.CleanupTimeout <= 0 {
		cfg.CleanupTimeout = DefaultCleanupTimeout
	}
	cfg.Connectors = observed(cfg.Connectors, cfg.Traffic)
	e := &Engine{
		cfg:     cfg,
		limits:  l,
		clock:   cfg.Clock,
		log:     cfg.Logger,
		pools:   newPoolSet(cfg.CleanupTimeout),
		running: map[string]*run{},
		perUser: map[string]int{},
	}
	if e.clock == nil {
		e.clock = clock.Real{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.report = newReports(cfg.Reporter, e.log)
	cfg.Routes.OnSwitch(e.pools.onSwitch)
	return e, nil
}

// DefaultConnector is the connector an empty Request.Connector selects.
func (e *Engine) DefaultConnector() string { return e.cfg.DefaultConnector }

// Running is the number of queries in progress.
func (e *Engine) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.running)
}

// PoolStats sums the engine's HS2 session pools.
func (e *Engine) PoolStats() hs2.PoolStats { return e.pools.stats() }

// Execute runs req and calls emit with its events in order: Status
// SUBMITTED (again if the statement is retried on a new server before HS2
// accepted it, or re-run there: see rerun.go), PENDING/RUNNING when HS2's state or progress change,
// STREAMING, the Schema, Batches, and Status FINISHED. It returns nil after
// FINISHED; otherwise an *Error, after a FAILED or CANCELED status when the
// stream still took events. An error from emit ends the query. Cancelling
// ctx (or Cancel with the query id) cancels the query on HS2.
func (e *Engine) Execute(ctx context.Context, req Request, emit func(Event) error) error {
	emit, done := e.observe(ctx, &req, emit)
	return done(e.execute(ctx, req, emit))
}

func (e *Engine) execute(ctx context.Context, req Request, emit func(Event) error) error {
	start := e.clock.Now()
	if err := e.validate(&req); err != nil {
		return err
	}
	connector := req.Connector
	if connector == "" {
		connector = e.cfg.DefaultConnector
	}
	cc, ok := e.cfg.Connectors[connector]
	if !ok {
		return invalid("connector", "unknown connector %q", connector)
	}
	if req.QueryID == "" {
		req.QueryID = newQueryID()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r, err := e.admit(req.QueryID, req.User, cancel)
	if err != nil {
		err.Metadata[MetaQueryID] = req.QueryID
		return err
	}
	r.describe(req, connector, start)
	if cc.StallTimeout <= 0 {
		cc.StallTimeout = DefaultStallTimeout
	}
	q := &queryRun{
		e:         e,
		read:      req.Meta != nil || IsRead(req.Statement),
		req:       req,
		connector: connector,
		cc:        cc,
		start:     start,
		emitFn:    r.observe(emit),
		run:       r,
		progress:  -1,
	}
	q.maxRows, q.serverLimit = req.MaxRows, false
	if m := e.limits.MaxRowsPerQuery; m > 0 && (q.maxRows == 0 || q.maxRows > m) {
		q.maxRows, q.serverLimit = m, true
	}
	defer e.release(r)
	return q.execute(ctx)
}

// admit registers a query or refuses it at once.
func (e *Engine) admit(id, user string, cancel context.CancelCauseFunc) (*run, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, newError(Unavailable, ReasonShuttingDown, errShutdown, "%s", errShutdown)
	}
	if _, dup := e.running[id]; dup {
		return nil, newError(InvalidArgument, ReasonQueryIDInUse, nil, "query id %q is already running", id)
	}
	if m := e.limits.MaxConcurrent; m > 0 && len(e.running) >= m {
		err := newError(ResourceExhausted, ReasonLimitExceeded, nil, "this replica already runs %d queries, its limit", m)
		err.Metadata[MetaLimit] = "max_concurrent"
		return nil, err
	}
	if m := e.limits.MaxPerUser; m > 0 && e.perUser[user] >= m {
		err := newError(ResourceExhausted, ReasonLimitExceeded, nil, "user %q already runs %d queries on this replica, the per-user limit", user, m)
		err.Metadata[MetaLimit] = "max_per_user"
		return nil, err
	}
	r := &run{id: id, user: user, cancel: cancel, done: make(chan struct{}), state: StateSubmitted}
	e.running[id] = r
	e.perUser[user]++
	return r, nil
}

func (e *Engine) release(r *run) {
	e.mu.Lock()
	delete(e.running, r.id)
	if e.perUser[r.user]--; e.perUser[r.user] <= 0 {
		delete(e.perUser, r.user)
	}
	e.mu.Unlock()
	close(r.done)
}

// Cancel cancels a running query by id on behalf of by and waits (until
// ctx ends) for it to end; it returns the query's final state. A query that
// is not running here is NotFound; one that by neither started nor may
// administer is PermissionDenied.
func (e *Engine) Cancel(ctx context.Context, queryID string, by Caller) (State, error) {
	e.mu.Lock()
	r := e.running[queryID]
	e.mu.Unlock()
	if r == nil {
		err := newError(NotFound, ReasonQueryNotFound, nil, "query %q is not running on this replica", queryID)
		err.Metadata[MetaQueryID] = queryID
		return StateUnspecified, err
	}
	if err := checkOwner(r, by); err != nil {
		return StateUnspecified, err
	}
	r.cancel(errCancelRequested)
	select {
	case <-r.done:
		return r.getState(), nil
	case <-ctx.Done():
		return r.getState(), ctxError(ctx, "waiting for the query to end")
	}
}

// Close shuts the engine down: new queries are refused, running ones may
// finish until ctx ends, then they are cancelled; last, every session pool
// is closed.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	runs := make([]*run, 0, len(e.running))
	for _, r := range e.running {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	waitAll := func(stop <-chan struct{}) bool {
		for _, r := range runs {
			select {
			case <-r.done:
			case <-stop:
				return false
			}
		}
		return true
	}
	if !waitAll(ctx.Done()) {
		for _, r := range runs {
			r.cancel(errShutdown)
		}
		// Cancelled queries end at once unless a client stops reading
		// (a blocked send); do not wait forever for that.
		wctx, cancel := context.WithTimeout(context.Background(), e.cfg.CleanupTimeout)
		defer cancel()
		waitAll(wctx.Done())
	}
	// Releases in flight wait at most 2×CleanupTimeout each.
	e.mu.Lock()
	e.bgClosed = true
	e.mu.Unlock()
	e.bg.Wait()
	e.workers.close()
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.CleanupTimeout)
	defer cancel()
	e.pools.close(pctx)
	e.report.close()
	return nil
}

// background runs f on a goroutine that Close waits for.
func (e *Engine) background(f func()) {
	e.mu.Lock()
	if e.bgClosed {
		e.mu.Unlock()
		f()
		return
	}
	e.bg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.bg.Done()
		f()
	}()
}

// ctxError is the Error for a context that ended.
func ctxError(ctx context.Context, doing string) *Error {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errShutdown):
		return newError(Unavailable, ReasonShuttingDown, cause, "%s; the query was cancelled", errShutdown)
	case errors.Is(cause, errCancelRequested):
		return newError(Canceled, ReasonCancelled, cause, "the query was cancelled by a Cancel request")
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return newError(DeadlineExceeded, ReasonDeadline, ctx.Err(), "deadline exceeded %s", doing)
	}
	return newError(Canceled, ReasonCancelled, ctx.Err(), "the query was cancelled by the client")
}
