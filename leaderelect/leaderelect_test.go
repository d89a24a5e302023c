package leaderelect_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/leaderelect"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const prefix = "/hiveqd/test/leader"

// candidate runs leaderelect.Run and records its terms.
type candidate struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	terms   []span
	leading bool
	term    leaderelect.Term
	termCtx context.Context
}

type span struct{ start, end time.Time }

// all terms across candidates, to check no two ever overlap in this process.
type world struct {
	mu     sync.Mutex
	active string
	t      *testing.T
}

func (w *world) enter(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.active != "" {
		w.t.Errorf("%s leads while %s still runs its term", id, w.active)
	}
	w.active = id
}

func (w *world) leave(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.active == id {
		w.active = ""
	}
}

func start(t *testing.T, w *world, id string, endpoints []string, ttl time.Duration, exitDelay time.Duration) *candidate {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, cancel: cancel, done: make(chan struct{})}
	cfg := leaderelect.Config{
		Etcd:   clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop()},
		Prefix: prefix,
		Self:   leaderelect.Identity{ID: id, Addr: id + ":9000"},
		TTL:    ttl,
		Logger: slog.New(slog.DiscardHandler),
	}
	go func() {
		defer close(c.done)
		err := leaderelect.Run(ctx, cfg, func(ctx context.Context, term leaderelect.Term) error {
			w.enter(id)
			c.mu.Lock()
			c.leading, c.term, c.termCtx = true, term, ctx
			c.terms = append(c.terms, span{start: time.Now()})
			c.mu.Unlock()
			<-ctx.Done()
			// Work that takes a while to wind down: the next term of
			// this process must not start before it has.
			time.Sleep(exitDelay)
			c.mu.Lock()
			c.leading = false
			c.terms[len(c.terms)-1].end = time.Now()
			c.mu.Unlock()
			w.leave(id)
			return ctx.Err()
		})
		if err != nil {
			t.Errorf("%s: Run: %v", id, err)
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *candidate) stop() {
	c.cancel()
	<-c.done
}

func (c *candidate) isLeading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

func (c *candidate) snapshot() (terms []span, term leaderelect.Term, ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]span(nil), c.terms...), c.term, c.termCtx
}

func waitLeader(t *testing.T, timeout time.Duration, cs ...*candidate) *candidate {
	t.Helper()
	var found *candidate
	testenv.Eventually(t, timeout, func() error {
		n := 0
		for _, c := range cs {
			if c.isLeading() {
				found = c
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d leaders", n)
		}
		return nil
	})
	return found
}

func newClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// currentLeader is the election's leader as etcd's Election.Leader sees
// it: the oldest key under the prefix.
func currentLeader(ctx context.Context, cli *clientv3.Client) (leaderelect.Leader, error) {
	resp, err := cli.Get(ctx, prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return leaderelect.Leader{}, err
	}
	if len(resp.Kvs) == 0 {
		return leaderelect.Leader{}, errors.New("no leader")
	}
	kv := resp.Kvs[0]
	return leaderelect.ParseLeader(string(kv.Key), kv.Value, kv.CreateRevision)
}

func TestHandoverOnResign(t *testing.T) {
	e := testenv.StartEtcd(t)
	w := &world{t: t}
	// A long TTL proves the handover does not wait for lease expiry.
	cs := []*candidate{}
	for _, id := range []string{"a", "b", "c"} {
		cs = append(cs, start(t, w, id, e.Endpoints(), 15*time.Second, 0))
	}
	leader := waitLeader(t, 10*time.Second, cs...)

	cli := newClient(t, e.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := currentLeader(ctx, cli)
	if err != nil || l.ID != leader.id || l.Addr != leader.id+":9000" {
		t.Fatalf("Current = %+v, %v; want %s", l, err, leader.id)
	}

	t0 := time.Now()
	leader.stop()
	var rest []*candidate
	for _, c := range cs {
		if c != leader {
			rest = append(rest, c)
		}
	}
	next := waitLeader(t, 5*time.Second, rest...)
	d := time.Since(t0)
	t.Logf("handover %s -> %s in %v", leader.id, next.id, d)
	if d > time.Second {
		t.Fatalf("handover took %v, want < 1s", d)
	}
}

func TestLeaseLossEtcdKilled(t *testing.T) {
	e := testenv.StartEtcd(t)
	w := &world{t: t}
	const ttl = 2 * time.Second
	a := start(t, w, "a", e.Endpoints(), ttl, 300*time.Millisecond)
	waitLeader(t, 10*time.Second, a)
	_, _, termCtx := a.snapshot()

	t0 := time.Now()
	e.Kill()
	select {
	case <-termCtx.Done():
		t.Logf("leader context cancelled %v after etcd was killed (TTL %v)", time.Since(t0), ttl)
	case <-time.After(ttl + 3*time.Second):
		t.Fatal("leader context not cancelled after etcd died")
	}
	// The guard gives up Margin (TTL/5) before the lease could expire;
	// allow some scheduling noise on top.
	if d := time.Since(t0); d > ttl+300*time.Millisecond {
		t.Errorf("lost leadership after %v, want about the TTL (%v) at most", d, ttl)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		terms, _, _ := a.snapshot()
		if len(terms) < 2 || !a.isLeading() {
			return errors.New("not leading again")
		}
		if !terms[1].start.After(terms[0].end) || terms[0].end.IsZero() {
			return fmt.Errorf("second term %v began before first ended %v", terms[1].start, terms[0].end)
		}
		return nil
	})
}

func TestLeaseLossBlackholeNoOverlap(t *testing.T) {
	e := testenv.StartEtcd(t)
	p, err := testenv.NewProxy(e.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := &world{t: t}
	const ttl = 2 * time.Second
	a := start(t, w, "a", []string{p.Addr()}, ttl, 200*time.Millisecond)
	waitLeader(t, 10*time.Second, a)
	b := start(t, w, "b", e.Endpoints(), ttl, 0)
	_, termA, ctxA := a.snapshot()

	t0 := time.Now()
	p.SetMode(testenv.Blackhole)
	select {
	case <-ctxA.Done():
	case <-time.After(ttl + 3*time.Second):
		t.Fatal("blackholed leader's context not cancelled")
	}
	t.Logf("blackholed leader stepped down after %v", time.Since(t0))
	waitLeader(t, 10*time.Second, b)
	termsA, _, _ := a.snapshot()
	termsB, termB, _ := b.snapshot()
	t.Logf("b leads %v after the blackhole", termsB[0].start.Sub(t0))
	if termsA[0].end.IsZero() || !termsA[0].end.Before(termsB[0].start) {
		t.Fatalf("a's term ended %v, b's began %v: overlap", termsA[0].end, termsB[0].start)
	}

	// A's fencing token is dead: a write fenced on it fails.
	cli := newClient(t, e.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Txn(ctx).If(termA.Fence()).Then(clientv3.OpPut("/hiveqd/test/x", "from a")).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("fenced write from deposed leader: succeeded=%v err=%v", resp != nil && resp.Succeeded, err)
	}
	resp, err = cli.Txn(ctx).If(termB.Fence()).Then(clientv3.OpPut("/hiveqd/test/x", "from b")).Commit()
	if err != nil || !resp.Succeeded {
		t.Fatalf("fenced write from current leader: %v %v", resp, err)
	}

	// A comes back as a follower and takes over when b resigns.
	p.SetMode(testenv.Pass)
	testenv.Eventually(t, 10*time.Second, func() error {
		l, err := currentLeader(ctx, cli)
		if err != nil {
			return err
		}
		// Wait until a campaigns again (two keys under the prefix).
		r, err := cli.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		if l.ID != "b" || r.Count != 2 {
			return fmt.Errorf("leader %s, %d candidates", l.ID, r.Count)
		}
		return nil
	})
	b.stop()
	waitLeader(t, 5*time.Second, a)
}

func TestDeletedKeyEndsTerm(t *testing.T) {
	e := testenv.StartEtcd(t)
	w := &world{t: t}
	a := start(t, w, "a", e.Endpoints(), 10*time.Second, 0)
	waitLeader(t, 10*time.Second, a)
	_, term, termCtx := a.snapshot()
	cli := newClient(t, e.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, term.Key); err != nil {
		t.Fatal(err)
	}
	select {
	case <-termCtx.Done():
	case <-ctx.Done():
		t.Fatal("term not ended after its key was deleted")
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		_, t2, _ := a.snapshot()
		if !a.isLeading() || t2.Rev == term.Rev {
			return errors.New("not re-elected")
		}
		return nil
	})
	resp, err := cli.Txn(ctx).If(term.Fence()).Then(clientv3.OpPut("/hiveqd/test/x", "old")).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("write fenced on the old term: %v %v", resp, err)
	}
}

// Shutting down never hangs on an unreachable etcd, leader or follower.
func TestShutdownWhileEtcdDown(t *testing.T) {
	e := testenv.StartEtcd(t)
	w := &world{t: t}
	a := start(t, w, "a", e.Endpoints(), 10*time.Second, 0)
	waitLeader(t, 10*time.Second, a)
	b := start(t, w, "b", e.Endpoints(), 10*time.Second, 0)
	cli := newClient(t, e.Endpoints())
	testenv.Eventually(t, 10*time.Second, func() error {
		r, err := cli.Get(context.Background(), prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || r.Count != 2 {
			return fmt.Errorf("b not campaigning: %v %v", r, err)
		}
		return nil
	})
	e.Kill()
	for _, c := range []*candidate{a, b} {
		t0 := time.Now()
		c.stop()
		t.Logf("%s stopped in %v with etcd down", c.id, time.Since(t0))
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("%s took %v to stop", c.id, d)
		}
	}
}

// Issue 12.3: once compaction has passed the election key's create
// revision, an interrupted key watch must still see the key deleted.
func TestDeletedKeyAfterCompactionAndRestart(t *testing.T) {
	e := testenv.StartEtcd(t)
	w := &world{t: t}
	a := start(t, w, "a", e.Endpoints(), 10*time.Second, 0)
	waitLeader(t, 10*time.Second, a)
	_, term, termCtx := a.snapshot()
	cli := newClient(t, e.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rev int64
	for i := range 5 {
		r, err := cli.Put(ctx, "/hiveqd/test/x", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		rev = r.Header.Revision
	}
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if err := e.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if termCtx.Err() != nil {
		t.Fatalf("term ended by the restart alone: %v", context.Cause(termCtx))
	}
	t0 := time.Now()
	if _, err := cli.Delete(ctx, term.Key); err != nil {
		t.Fatal(err)
	}
	select {
	case <-termCtx.Done():
		t.Logf("term ended %v after its key was deleted: %v", time.Since(t0), context.Cause(termCtx))
	case <-time.After(time.Second):
		t.Fatal("term still running 1s after its election key was deleted")
	}
}
