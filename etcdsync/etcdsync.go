// Package etcdsync keeps a caller's view of one etcd key or prefix current:
// read it at a revision, watch from the next revision, and read it again
// whenever the watch cannot be trusted to continue — compaction past the
// watched revision, a cancelled or failed watch, a lost etcd leader, a
// watch that stops answering progress requests, or a revision that went
// backwards (etcd restored from an older snapshot).
//
// It is the shape of etcd's own clientv3/mirror.Syncer (SyncBase, then
// SyncUpdates from the next revision) with what a long-running follower
// needs on top: the resync loop itself, progress notifications that
// confirm the view is current while nothing changes, and the time of that
// last confirmation, so a caller can show how stale its view may be.
//
// The base read is one linearizable Get rather than mirror.Syncer's paged
// reads: the key sets hiveqd syncs (an election key, a cluster's few dozen
// coordination keys) are small.
package etcdsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/hiveqd/hiveqd/internal/clock"
)

// Clock is time as the syncer sees it; tests may replace it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Config says what to sync and how.
type Config struct {
	// Client returns the etcd client to use. It is called before every
	// read, so a caller that replaces a broken client is followed.
	Client func() *clientv3.Client
	// Key is the key, or with Prefix the key prefix, to sync.
	Key    string
	Prefix bool
	// RequestTimeout bounds the base read and each progress request;
	// default 3s.
	RequestTimeout time.Duration
	// Backoff between a failed read and the next one; default 500ms.
	Backoff time.Duration
	// ProgressInterval is how often the syncer asks etcd to confirm that
	// the watch is current (etcd answers at once when it is). A watch that
	// has not answered one interval after being asked is treated as
	// stalled and the view is read again. Default 2s.
	ProgressInterval time.Duration
	// ResyncInterval, when set, also re-reads the whole view this often.
	ResyncInterval time.Duration
	Clock          Clock
	Logger         *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 3 * time.Second
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 2 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Update is what the caller applies, in order.
type Update struct {
	// Snapshot: Kvs is the complete view at Rev and replaces whatever the
	// caller held (keys it held that are not in Kvs are gone).
	Snapshot bool
	Kvs      []*mvccpb.KeyValue
	// Otherwise Events are the changes since the previous Update.
	Events []*clientv3.Event
	// Rev is the revision the view is at after this Update.
	Rev int64
}

// Status describes how current the view is.
type Status struct {
	Rev int64 // revision of the last applied Update
	// Confirmed is when etcd last confirmed the view current: a read, a
	// watch response or an answered progress request. Zero before the
	// first read.
	Confirmed time.Time
	Resyncs   uint64 // full re-reads after the first
}

// Syncer keeps one view in sync; Run drives it.
type Syncer struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{} // Resync requests

	// Revisions etcd has shown since the last read, for telling a rewind
	// from reordering; used by Run's goroutine only. Event responses come
	// in revision order, and so do progress responses, but not relative
	// to each other: etcd (3.4) reads a progress response's revision when
	// the request arrives and sends it on another queue than the events,
	// so it may overtake events already queued, and arrive after them
	// with a lower revision. Each is compared with its own kind and the
	// base read, which both follow; and a progress response with the
	// events seen before its request was sent, which etcd had committed
	// before it read the answer. The watch has a gRPC stream of its own
	// (etcd's client shares one among watches with the same metadata),
	// so every progress response answers this syncer's oldest unanswered
	// request.
	baseRev     int64   // revision of the last base read
	eventRev    int64   // highest event response header since it
	progressRev int64   // highest progress response header since it
	asked       []int64 // per unanswered progress request, eventRev when sent
	watches     uint64  // watches opened, naming each one's gRPC stream

	mu     sync.Mutex
	status Status
}

// New checks cfg and returns a Syncer.
func New(cfg Config) (*Syncer, error) {
	if cfg.Client == nil || cfg.Key == "" {
		return nil, errors.New("etcdsync: Client and Key are required")
	}
	cfg = cfg.withDefaults()
	return &Syncer{cfg: cfg, log: cfg.Logger.With("etcd_key", cfg.Key), kick: make(chan struct{}, 1)}, nil
}

// Resync asks Run to read the whole view again now (for example when the
// caller has reason to distrust its connection); it does not block.
func (s *Syncer) Resync() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Status reports the revision and the last confirmation; safe to call at
// any time from any goroutine.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// ErrStalled is why a watch that stopped answering is abandoned.
var ErrStalled = errors.New("watch did not answer a progress request")

var errResync = errors.New("periodic resync")

// applyError carries the caller's error out of Run.
type applyError struct{ err error }

func (e applyError) Error() string { return e.err.Error() }
func (e applyError) Unwrap() error { return e.err }

// Run syncs until ctx ends (it then returns nil) or apply returns an error
// (Run returns that error). apply is called from Run's goroutine only, with
// a snapshot first and after every resync, and events in between.
func (s *Syncer) Run(ctx context.Context, apply func(Update) error) error {
	failedReads := 0
	for first := true; ctx.Err() == nil; first = false {
		cli := s.cfg.Client()
		rev, err := s.read(ctx, cli, apply, first)
		var ae applyError
		switch {
		case errors.As(err, &ae):
			return ae.err
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			failedReads++
			lvl := slog.LevelDebug
			if failedReads == 1 {
				lvl = slog.LevelWarn
			}
			s.log.Log(ctx, lvl, "etcdsync: read failed, retrying", "err", err, "failures", failedReads)
			s.pause(ctx)
			continue
		}
		failedReads = 0
		err = s.watch(ctx, cli, rev+1, apply)
		if errors.As(err, &ae) {
			return ae.err
		}
		if ctx.Err() != nil {
			return nil
		}
		lvl := slog.LevelInfo
		if errors.Is(err, errResync) {
			lvl = slog.LevelDebug
		}
		s.log.Log(ctx, lvl, "etcdsync: watch ended, re-reading", "err", err, "from_rev", rev+1)
		if !errors.Is(err, rpctypes.ErrCompacted) && !errors.Is(err, errResync) {
			// A failing etcd should not be hammered; a compaction is
			// answered at once.
			s.pause(ctx)
		}
	}
	return nil
}

// pause waits Backoff, or less if ctx ends or a Resync is asked for.
func (s *Syncer) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.kick:
	case <-s.cfg.Clock.After(s.cfg.Backoff):
	}
}

// read is the base: one linearizable Get, applied as a snapshot.
func (s *Syncer) read(ctx context.Context, cli *clientv3.Client, apply func(Update) error, first bool) (int64, error) {
	var opts []clientv3.OpOption
	if s.cfg.Prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	gctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	resp, err := cli.Get(gctx, s.cfg.Key, opts...)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", s.cfg.Key, err)
	}
	rev := resp.Header.Revision
	s.baseRev, s.eventRev, s.progressRev = rev, 0, 0
	if err := apply(Update{Snapshot: true, Kvs: resp.Kvs, Rev: rev}); err != nil {
		return 0, applyError{err}
	}
	s.mu.Lock()
	s.status.Rev, s.status.Confirmed = rev, s.cfg.Clock.Now()
	if !first {
		s.status.Resyncs++
	}
	s.mu.Unlock()
	return rev, nil
}

// watch follows from rev until the watch fails, stalls, or is due for a
// resync; it returns why.
func (s *Syncer) watch(ctx context.Context, cli *clientv3.Client, rev int64, apply func(Update) error) error {
	// The progress request must carry the watch's metadata: the client
	// multiplexes watches onto streams keyed by it. Each watch gets a
	// stream of its own: the client sends a stream's next watch only once
	// etcd confirmed the one before, so a watch abandoned before that
	// (its create request lost) would hold every later one on the stream.
	s.watches++
	wctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx),
		"hiveqd-etcdsync", fmt.Sprintf("%p/%d", s, s.watches)))
	s.asked = s.asked[:0]
	// cli.Watch returns once etcd confirms the watch: it waits in a
	// goroutine, so that a confirmation that never comes is a stall like
	// any other rather than a hang. (The abandoned watch's stream stays
	// open, idle, until the client is closed.)
	created := make(chan clientv3.WatchChan, 1)
	go func() { created <- s.startWatch(wctx, cli, rev) }()
	defer func() {
		cancel() // cli.Watch returns when its context ends
		if created != nil {
			<-created
		}
	}()
	var wch clientv3.WatchChan
	var resync <-chan time.Time
	if s.cfg.ResyncInterval > 0 {
		resync = s.cfg.Clock.After(s.cfg.ResyncInterval)
	}
	tick := s.cfg.Clock.After(s.cfg.ProgressInterval)
	asked := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-resync:
			return errResync
		case <-s.kick:
			return errResync
		case <-tick:
			if asked {
				return ErrStalled
			}
			asked = true
			if len(s.asked) < 64 { // (answers lost: later ones pair with older requests)
				s.asked = append(s.asked, max(s.baseRev, s.eventRev))
			}
			s.requestProgress(wctx, cli)
			tick = s.cfg.Clock.After(s.cfg.ProgressInterval)
		case wch = <-created:
			created = nil
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch channel closed")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch %s from %d: %w", s.cfg.Key, rev, err)
			}
			asked = false
			if err := s.deliver(wr, apply); err != nil {
				return err
			}
		}
	}
}

// startWatch opens the watch from rev. No WithProgressNotify: etcd's own
// periodic progress responses would answer no request of ours; ours come
// every ProgressInterval.
func (s *Syncer) startWatch(wctx context.Context, cli *clientv3.Client, rev int64) clientv3.WatchChan {
	opts := []clientv3.OpOption{clientv3.WithRev(rev)}
	if s.cfg.Prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	return cli.Watch(wctx, s.cfg.Key, opts...)
}

func (s *Syncer) requestProgress(wctx context.Context, cli *clientv3.Client) {
	pctx, cancel := context.WithTimeout(wctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := cli.RequestProgress(pctx); err != nil && wctx.Err() == nil {
		s.log.Debug("etcdsync: progress request", "err", err)
	}
}

// ErrRewound is why a watch whose etcd went back to a lower revision (a
// restore from an older snapshot) is abandoned: resumed from the revision
// after the last one seen, it would wait for revisions now in the future
// and miss every change until then.
var ErrRewound = errors.New("etcd's revision went backwards (restored from an older snapshot?)")

// deliver applies one watch response and records the confirmation.
func (s *Syncer) deliver(wr clientv3.WatchResponse, apply func(Update) error) error {
	if err := s.checkRewound(wr); err != nil {
		return err
	}
	rev := wr.Header.Revision
	if n := len(wr.Events); n > 0 {
		if err := apply(Update{Events: wr.Events, Rev: wr.Events[n-1].Kv.ModRevision}); err != nil {
			return applyError{err}
		}
		rev = wr.Events[n-1].Kv.ModRevision
	}
	s.mu.Lock()
	if rev > s.status.Rev {
		s.status.Rev = rev
	}
	s.status.Confirmed = s.cfg.Clock.Now()
	s.mu.Unlock()
	return nil
}

// checkRewound reports ErrRewound when wr's revision is below one etcd
// showed before for the same kind of response (events, or progress), or
// below the base read: etcd went back to an older snapshot.
func (s *Syncer) checkRewound(wr clientv3.WatchResponse) error {
	rev := wr.Header.Revision
	var last *int64
	switch {
	case rev <= 0:
		return nil
	case len(wr.Events) > 0:
		last = &s.eventRev
	case wr.IsProgressNotify():
		last = &s.progressRev
		if len(s.asked) > 0 {
			// Lost answers (a reconnect) pair later ones with older
			// requests: a weaker check, never a false one. One less is
			// no rewind: etcd hands a write's events to watches just
			// before it makes the write's revision current.
			if rev < s.asked[0]-1 {
				return fmt.Errorf("%w: at %d, after %d", ErrRewound, rev, s.asked[0])
			}
			s.asked = s.asked[1:]
		}
	default:
		return nil
	}
	seen := max(s.baseRev, *last)
	if rev < seen {
		return fmt.Errorf("%w: at %d, after %d", ErrRewound, rev, seen)
	}
	*last = rev
	return nil
}
