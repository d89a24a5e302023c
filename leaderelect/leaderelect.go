// Package leaderelect elects one leader among hiveqd replicas through etcd.
//
// A replica campaigns with etcd's concurrency package on a key prefix; the
// election value names the replica and its gRPC address. While it leads, the
// caller's lead function runs with a context that is cancelled as soon as
// leadership can no longer be guaranteed: on shutdown, when the leader key
// disappears, or when the session lease may have expired. Run does not
// campaign again until lead has returned, so the work of one term has always
// stopped before the next term of the same process begins.
//
// Lease loss is judged conservatively: the package renews the lease itself
// and ends the term Margin before the earliest moment etcd could expire it
// (last renewal sent + TTL), so on a healthy clock the old leader stops
// before another replica can be elected. Writes must still be fenced with
// Term.Fence, which makes a deposed leader's writes fail regardless.
package leaderelect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/hiveqd/hiveqd/etcdsync"
	"github.com/hiveqd/hiveqd/internal/clock"
)

// Identity is the election value: who leads and where to reach it.
type Identity struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // gRPC address, for forwarding admin calls
}

// Leader is the current holder of the election.
type Leader struct {
	Identity
	Key string // its election key
	Rev int64  // the key's create revision
}

// Term is one continuous leadership of this process.
type Term struct {
	Key   string           // our election key
	Rev   int64            // its create revision: the fencing token
	Lease clientv3.LeaseID // the session lease the key is bound to
}

// Fence is the comparison a transaction must include so that it only
// succeeds while this term still holds leadership.
func (t Term) Fence() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(t.Key), "=", t.Rev)
}

// Clock is time as the lease guard sees it; tests may replace it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Config configures Run.
type Config struct {
	// Etcd is how to reach etcd. Run opens and closes its own client so that
	// shutdown can abandon calls blocked on an unreachable etcd.
	Etcd clientv3.Config
	// Prefix is the election prefix, e.g. "/hiveqd/prod/leader".
	Prefix string
	Self   Identity
	// TTL of the session lease (whole seconds; default 10s). A crashed
	// leader is replaced after at most about TTL.
	TTL time.Duration
	// KeepAliveInterval between lease renewals; default TTL/4.
	KeepAliveInterval time.Duration
	// Margin ends a term this long before the lease could expire in etcd;
	// default TTL/5. It absorbs scheduling delays and clock-rate drift.
	Margin time.Duration
	// RequestTimeout bounds single etcd calls (resign, checks); default 3s.
	RequestTimeout time.Duration
	// Backoff between failed attempts; default 500ms.
	Backoff time.Duration
	Clock   Clock
	Logger  *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.TTL <= 0 {
		c.TTL = 10 * time.Second
	}
	c.TTL = time.Duration(math.Ceil(c.TTL.Seconds())) * time.Second
	if c.KeepAliveInterval <= 0 {
		c.KeepAliveInterval = c.TTL / 4
	}
	if c.Margin <= 0 {
		c.Margin = c.TTL / 5
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 3 * time.Second
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Prefix = strings.TrimSuffix(c.Prefix, "/")
	c.Etcd = ClientConfig(c.Etcd)
	return c
}

// ClientConfig fills in client settings that matter for failover: bounded
// dial and reconnect backoff (gRPC's default grows to 2 minutes, far longer
// than a lease), and keepalives that notice a silently dead connection.
func ClientConfig(c clientv3.Config) clientv3.Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.DialKeepAliveTime <= 0 {
		c.DialKeepAliveTime = 5 * time.Second
	}
	if c.DialKeepAliveTimeout <= 0 {
		c.DialKeepAliveTimeout = 3 * time.Second
	}
	bc := backoff.DefaultConfig
	bc.MaxDelay = 2 * time.Second
	opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: c.DialTimeout})}, c.DialOptions...)
	c.DialOptions = opts
	return c
}

// Run campaigns for leadership until ctx ends, calling lead for every term
// won. lead's context is cancelled when the term ends; a term also ends when
// lead returns. On shutdown a leader resigns, so another replica takes over
// at once. Run returns nil when ctx ends, or an error for a bad Config.
func Run(ctx context.Context, cfg Config, lead func(ctx context.Context, t Term) error) error {
	if cfg.Prefix == "" || cfg.Self.ID == "" {
		return errors.New("leaderelect: Prefix and Self.ID are required")
	}
	cfg = cfg.withDefaults()
	val, err := json.Marshal(cfg.Self)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(cfg.Etcd)
	if err != nil {
		return fmt.Errorf("leaderelect: etcd client: %w", err)
	}
	r := &runner{cfg: cfg, cli: cli, val: string(val), log: cfg.Logger.With("replica", cfg.Self.ID)}
	defer func() { r.cli.Close() }()
	for ctx.Err() == nil {
		err := r.session(ctx, lead)
		if err == nil || ctx.Err() != nil {
			continue
		}
		r.log.Warn("leader election: session ended", "err", err)
		// A fresh client: the old connection may be half-broken (streams
		// reset after a network fault) while still looking connected.
		r.cli.Close()
		if r.cli, err = clientv3.New(cfg.Etcd); err != nil {
			return fmt.Errorf("leaderelect: etcd client: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-cfg.Clock.After(cfg.Backoff):
		}
	}
	return nil
}

// NewSession grants a lease of ttl (bounded by timeout, so a stalled
// connection cannot hang it) and keeps it alive until ctx ends, the lease
// is lost, or the session is closed.
func NewSession(ctx context.Context, cli *clientv3.Client, ttl, timeout time.Duration) (*concurrency.Session, error) {
	secs := int64(math.Ceil(ttl.Seconds()))
	gctx, cancel := context.WithTimeout(ctx, timeout)
	resp, err := cli.Grant(gctx, secs)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	s, err := concurrency.NewSession(cli, concurrency.WithLease(resp.ID), concurrency.WithTTL(int(secs)), concurrency.WithContext(ctx))
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		_, _ = cli.Revoke(rctx, resp.ID)
		cancel()
		return nil, fmt.Errorf("keep lease alive: %w", err)
	}
	return s, nil
}

type runner struct {
	cfg Config
	cli *clientv3.Client
	val string
	log *slog.Logger
}

// session runs one lease: campaign, lead while elected, and give the lease
// back. It returns nil when a term ended normally and the caller may go on.
func (r *runner) session(ctx context.Context, lead func(context.Context, Term) error) error {
	granted := r.cfg.Clock.Now()
	sess, err := NewSession(ctx, r.cli, r.cfg.TTL, r.cfg.RequestTimeout)
	if err != nil {
		return err
	}
	lease := sess.Lease()
	sctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		cancel(r.guard(sctx, lease, granted))
	}()
	go func() {
		defer wg.Done()
		select {
		case <-sess.Done():
			cancel(errors.New("session lease keepalive ended"))
		case <-sctx.Done():
		}
	}()
	defer func() {
		cancel(nil)
		wg.Wait()
		// Stop renewing and hand the lease back: etcd deletes our election
		// key with it, which is the resignation, and the next candidate
		// sees that delete at once rather than after the TTL.
		sess.Orphan()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.RequestTimeout)
		defer rcancel()
		if _, err := r.cli.Revoke(rctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.log.Debug("leader election: revoke lease", "err", err)
		}
	}()

	e := concurrency.NewElection(sess, r.cfg.Prefix)
	if err := r.campaign(ctx, sctx, cancel, e, lease); err != nil {
		return err
	}
	term := Term{Key: e.Key(), Rev: e.Rev(), Lease: lease}
	if err := r.confirm(sctx, term); err != nil {
		return err
	}

	// Watch our own key: if it is deleted (lease revoked, operator) the term
	// is over even though the lease may still be renewed.
	lctx, lcancel := context.WithCancelCause(sctx)
	defer lcancel(nil)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		r.watchKey(lctx, term, lcancel)
	}()

	r.log.Info("leader elected", "key", term.Key, "rev", term.Rev)
	started := time.Now()
	err = lead(lctx, term)
	cause := context.Cause(lctx)
	lcancel(nil)
	<-watchDone
	lvl := slog.LevelInfo
	if ctx.Err() == nil {
		lvl = slog.LevelWarn // lost, not given up
	}
	r.log.Log(ctx, lvl, "leadership ended", "held", time.Since(started).Round(time.Millisecond), "cause", cause, "lead_err", err)

	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("lead: %w", err)
	}
	return nil
}

// errStalled ends a campaign whose watch stopped delivering.
var errStalled = errors.New("campaign stalled: our key is the oldest but the election has not noticed")

// campaign runs Election.Campaign under sctx until we are elected. Campaign
// resigns with the client's own context when cancelled, which blocks while
// etcd is unreachable; on shutdown we give it RequestTimeout and then close
// the client to release it. Campaign waits on a watch; if that watch stalls
// (a stream lost to a network fault) while our key is already the oldest,
// the campaign is abandoned the same way and started afresh.
func (r *runner) campaign(ctx, sctx context.Context, cancel context.CancelCauseFunc, e *concurrency.Election, lease clientv3.LeaseID) error {
	done := make(chan error, 1)
	go func() { done <- e.Campaign(sctx, r.val) }()
	abandon := func(why error) error {
		select {
		case <-done:
		case <-r.cfg.Clock.After(r.cfg.RequestTimeout):
			r.cli.Close()
			<-done
		}
		return why
	}
	ours := fmt.Sprintf("%s/%x", r.cfg.Prefix, lease)
	stalled := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("campaign: %w", err)
			}
			if sctx.Err() != nil {
				return fmt.Errorf("campaign: %w", context.Cause(sctx))
			}
			return nil
		case <-ctx.Done():
			return abandon(ctx.Err())
		case <-r.cfg.Clock.After(r.cfg.TTL):
			l, err := r.oldest(sctx)
			if err == nil && l == ours {
				stalled++
			} else {
				stalled = 0
			}
			if stalled >= 2 {
				cancel(errStalled)
				return abandon(errStalled)
			}
		}
	}
}

// oldest is the key that should lead the election now.
func (r *runner) oldest(ctx context.Context) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	resp, err := r.cli.Get(cctx, r.cfg.Prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	return string(resp.Kvs[0].Key), nil
}

// confirm checks that the key Campaign returned with still exists: Campaign
// can return success after our lease expired during an etcd outage.
func (r *runner) confirm(ctx context.Context, t Term) error {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	resp, err := r.cli.Get(cctx, t.Key)
	if err != nil {
		return fmt.Errorf("confirm leadership: %w", err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != t.Rev || clientv3.LeaseID(resp.Kvs[0].Lease) != t.Lease {
		return errors.New("confirm leadership: election key vanished")
	}
	return nil
}

// errKeyDeleted ends a term whose election key is gone.
var errKeyDeleted = errors.New("election key deleted")

// watchKey cancels the term when our election key is deleted. It reads the
// key and watches from the next revision (never from the key's create
// revision, which compaction passes in a long term), re-reading after any
// compaction or watch failure, so a deletion is seen whatever happened to
// the watch in between.
func (r *runner) watchKey(ctx context.Context, t Term, cancel context.CancelCauseFunc) {
	s, err := etcdsync.New(etcdsync.Config{
		Client:         func() *clientv3.Client { return r.cli },
		Key:            t.Key,
		RequestTimeout: r.cfg.RequestTimeout,
		Backoff:        r.cfg.Backoff,
		Clock:          r.cfg.Clock,
		Logger:         r.log,
	})
	if err != nil {
		cancel(err)
		return
	}
	err = s.Run(ctx, func(u etcdsync.Update) error { return keyHeld(t, u) })
	if err != nil {
		cancel(err)
	}
}

// keyHeld returns errKeyDeleted unless our election key, as created for
// this term, is still there after u.
func keyHeld(t Term, u etcdsync.Update) error {
	if u.Snapshot {
		for _, kv := range u.Kvs {
			if string(kv.Key) == t.Key && kv.CreateRevision == t.Rev {
				return nil
			}
		}
		return errKeyDeleted
	}
	for _, ev := range u.Events {
		if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != t.Rev {
			return errKeyDeleted
		}
	}
	return nil
}

// errLeaseLost ends a term when the guard can no longer vouch for the lease.
var errLeaseLost = errors.New("session lease may have expired")

// guard renews the lease itself, remembering when each successful renewal
// was sent: etcd renewed it no earlier, so the lease lives at least until
// sent+TTL. It returns errLeaseLost Margin before that moment unless a newer
// renewal has succeeded, and nil when ctx ends.
func (r *runner) guard(ctx context.Context, lease clientv3.LeaseID, granted time.Time) error {
	clk := r.cfg.Clock
	deadline := granted.Add(r.cfg.TTL)
	next := clk.Now().Add(r.cfg.KeepAliveInterval)
	for {
		now := clk.Now()
		safeUntil := deadline.Add(-r.cfg.Margin)
		if !now.Before(safeUntil) {
			return fmt.Errorf("%w: no renewal since %s", errLeaseLost, deadline.Add(-r.cfg.TTL).Format(time.RFC3339Nano))
		}
		wait := next.Sub(now)
		if left := safeUntil.Sub(now); left < wait {
			wait = left
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-clk.After(wait):
			}
			continue
		}
		sent := clk.Now()
		timeout := r.cfg.KeepAliveInterval
		if left := safeUntil.Sub(sent); left < timeout {
			timeout = left
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := r.cli.KeepAliveOnce(cctx, lease)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			deadline = sent.Add(time.Duration(resp.TTL) * time.Second)
			next = sent.Add(r.cfg.KeepAliveInterval)
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return fmt.Errorf("%w: %v", errLeaseLost, err)
		default:
			// Retry soon; the deadline check above decides when to give up.
			next = clk.Now().Add(r.cfg.KeepAliveInterval / 4)
		}
	}
}

// ParseLeader decodes an election key's value.
func ParseLeader(key string, value []byte, createRev int64) (Leader, error) {
	l := Leader{Key: key, Rev: createRev}
	if err := json.Unmarshal(value, &l.Identity); err != nil {
		return l, fmt.Errorf("election value at %s: %w", key, err)
	}
	return l, nil
}
