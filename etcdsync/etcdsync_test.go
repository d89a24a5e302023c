package etcdsync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/hiveqd/hiveqd/etcdsync"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/leaderelect"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(leaderelect.ClientConfig(clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop()}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// view is a caller's map of key -> value, built only from Updates.
type view struct {
	mu    sync.Mutex
	kv    map[string]string
	snaps int
}

func (v *view) apply(u etcdsync.Update) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if u.Snapshot {
		v.snaps++
		v.kv = map[string]string{}
		for _, kv := range u.Kvs {
			v.kv[string(kv.Key)] = string(kv.Value)
		}
		return nil
	}
	for _, ev := range u.Events {
		if ev.Type == clientv3.EventTypeDelete {
			delete(v.kv, string(ev.Kv.Key))
		} else {
			v.kv[string(ev.Kv.Key)] = string(ev.Kv.Value)
		}
	}
	return nil
}

func (v *view) equals(want map[string]string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !maps.Equal(v.kv, want) {
		return fmt.Errorf("view %v, want %v", v.kv, want)
	}
	return nil
}

// run starts s and returns a stop function that waits for Run to return.
func run(t *testing.T, s *etcdsync.Syncer, apply func(etcdsync.Update) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, apply) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func newSyncer(t *testing.T, cli *clientv3.Client, key string, prefix bool, progress time.Duration) *etcdsync.Syncer {
	t.Helper()
	s, err := etcdsync.New(etcdsync.Config{
		Client: func() *clientv3.Client { return cli }, Key: key, Prefix: prefix,
		ProgressInterval: progress, Backoff: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, cli *clientv3.Client, k, v string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Put(ctx, k, v)
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

func TestSnapshotThenEvents(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := newClient(t, e.Endpoints())
	put(t, cli, "/p/a", "1")
	put(t, cli, "/q/outside", "x")
	v := &view{}
	s := newSyncer(t, cli, "/p/", true, time.Second)
	stop := run(t, s, v.apply)
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{"/p/a": "1"}) })
	put(t, cli, "/p/b", "2")
	put(t, cli, "/p/a", "3")
	if _, err := cli.Delete(context.Background(), "/p/b"); err != nil {
		t.Fatal(err)
	}
	rev := put(t, cli, "/p/c", "4")
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := s.Status(); st.Rev < rev {
			return fmt.Errorf("rev %d < %d", st.Rev, rev)
		}
		return v.equals(map[string]string{"/p/a": "3", "/p/c": "4"})
	})
	if st := s.Status(); st.Resyncs != 0 || v.snaps != 1 {
		t.Errorf("resynced without cause: %+v, %d snapshots", st, v.snaps)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// The watch resumes after an etcd restart from a revision compaction has
// passed: the syncer must re-read, and see a deletion made afterwards.
func TestCompactionRestartDeletion(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := newClient(t, e.Endpoints())
	put(t, cli, "/k", "v")
	v := &view{}
	s := newSyncer(t, cli, "/k", false, time.Second)
	run(t, s, v.apply)
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{"/k": "v"}) })
	var rev int64
	for i := range 5 {
		rev = put(t, cli, "/other", fmt.Sprint(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if err := e.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "/k"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{}) })
	if s.Status().Resyncs == 0 {
		t.Error("no resync after the compacted watch")
	}
	put(t, cli, "/k", "back")
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{"/k": "back"}) })
}

// With nothing changing, progress notifications keep Confirmed current,
// and a blackholed link lets it age until the link heals.
func TestProgressConfirmsAndStalls(t *testing.T) {
	e := testenv.StartEtcd(t)
	p, err := testenv.NewProxy(e.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cli := newClient(t, []string{p.Addr()})
	direct := newClient(t, e.Endpoints())
	v := &view{}
	s := newSyncer(t, cli, "/k", false, 200*time.Millisecond)
	run(t, s, v.apply)
	testenv.Eventually(t, 10*time.Second, func() error {
		if s.Status().Confirmed.IsZero() {
			return errors.New("not synced")
		}
		return nil
	})
	first := s.Status().Confirmed
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := s.Status(); !st.Confirmed.After(first.Add(500 * time.Millisecond)) {
			return fmt.Errorf("confirmed %v, first %v: no progress notifications", st.Confirmed, first)
		}
		return nil
	})
	if st := s.Status(); st.Resyncs != 0 {
		t.Fatalf("idle watch resynced: %+v", st)
	}

	p.SetMode(testenv.Blackhole)
	cut := time.Now()
	put(t, direct, "/k", "while cut off")
	// The view's age grows: that is what callers show as staleness.
	testenv.Eventually(t, 10*time.Second, func() error {
		if age := time.Since(s.Status().Confirmed); age < time.Second {
			return fmt.Errorf("view confirmed %v ago", age)
		}
		return nil
	})
	if c := s.Status().Confirmed; !c.Before(cut.Add(300 * time.Millisecond)) {
		t.Fatalf("confirmed at %v while blackholed since %v", c, cut)
	}
	p.SetMode(testenv.Pass)
	healed := time.Now()
	testenv.Eventually(t, 20*time.Second, func() error {
		if !s.Status().Confirmed.After(healed) {
			return errors.New("not confirmed since the link healed")
		}
		return v.equals(map[string]string{"/k": "while cut off"})
	})
	t.Logf("converged %v after the link healed", time.Since(healed))
}

// An error from apply ends Run with that error.
func TestApplyErrorEndsRun(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := newClient(t, e.Endpoints())
	s := newSyncer(t, cli, "/k", false, time.Second)
	errStop := errors.New("stop")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(u etcdsync.Update) error {
			if len(u.Events) > 0 {
				return errStop
			}
			return nil
		})
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if s.Status().Confirmed.IsZero() {
			return errors.New("not synced")
		}
		return nil
	})
	put(t, cli, "/k", "x")
	if err := <-done; !errors.Is(err, errStop) {
		t.Fatalf("Run = %v, want the apply error", err)
	}
}

// Resync re-reads at once, and the caller gets a fresh snapshot.
func TestResyncOnRequest(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := newClient(t, e.Endpoints())
	put(t, cli, "/k", "v")
	v := &view{}
	s := newSyncer(t, cli, "/k", false, time.Minute)
	run(t, s, v.apply)
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{"/k": "v"}) })
	s.Resync()
	testenv.Eventually(t, 10*time.Second, func() error {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.snaps < 2 || s.Status().Resyncs < 1 {
			return fmt.Errorf("%d snapshots, %+v", v.snaps, s.Status())
		}
		return nil
	})
}

// etcd restored from an older snapshot goes back to a lower revision; the
// watch, resumed from the revision after the last one seen, would wait
// for revisions that are now in the future and miss every change until
// then. The syncer sees the revision go backwards and re-reads.
func TestRestoredEtcdReread(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := newClient(t, e.Endpoints())
	put(t, cli, "/r/a", "old")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap := t.TempDir() + "/backup.db"
	if err := e.SaveSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		put(t, cli, "/r/a", fmt.Sprint("new", i))
	}
	v := &view{}
	s := newSyncer(t, cli, "/r/", true, 200*time.Millisecond)
	run(t, s, v.apply)
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{"/r/a": "new9"}) })

	if err := e.RestoreSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{"/r/a": "old"}) })
	// A change right after the restore has a revision below the one the
	// watch had reached: it must still arrive.
	put(t, cli, "/r/b", "after")
	testenv.Eventually(t, 10*time.Second, func() error {
		return v.equals(map[string]string{"/r/a": "old", "/r/b": "after"})
	})
}

// rewindLog records whether a syncer logged a rewind.
type rewindLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *rewindLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *rewindLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" && strings.Contains(a.Value.String(), etcdsync.ErrRewound.Error()) {
			l.mu.Lock()
			l.msgs = append(l.msgs, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}
func (l *rewindLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *rewindLog) WithGroup(string) slog.Handler      { return l }

func (l *rewindLog) rewinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// Progress responses come in revision order, and so do event responses,
// but etcd may send a progress response whose revision it read before it
// sent events of higher revisions: it then arrives after them with a
// lower revision. That is reordering, not a restore, and must not make the
// syncer re-read (it did, every few seconds, under steady writes).
func TestProgressBehindEventsIsNoRewind(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := newClient(t, e.Endpoints())
	log := &rewindLog{}
	s, err := etcdsync.New(etcdsync.Config{
		Client: func() *clientv3.Client { return cli }, Key: "/p/", Prefix: true,
		ProgressInterval: 5 * time.Millisecond, Backoff: 50 * time.Millisecond,
		Logger: slog.New(log),
	})
	if err != nil {
		t.Fatal(err)
	}
	v := &view{}
	run(t, s, v.apply)
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{}) })
	const n = 1500
	for i := range n {
		put(t, cli, "/p/a", fmt.Sprint(i))
	}
	testenv.Eventually(t, 10*time.Second, func() error { return v.equals(map[string]string{"/p/a": fmt.Sprint(n - 1)}) })
	if r := log.rewinds(); len(r) > 0 {
		t.Fatalf("%d false rewinds under writes, first: %s", len(r), r[0])
	}
}

// loseCreates is a gRPC stream interceptor that drops the first n watch
// create requests on their way to etcd, reporting them sent: etcd never
// confirms those watches, as when a create request is lost on a link that
// stays up.
func loseCreates(n int) grpc.StreamClientInterceptor {
	var lost atomic.Int32
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || !strings.HasSuffix(method, "/Watch") {
			return cs, err
		}
		return &createDropper{ClientStream: cs, drop: func() bool { return lost.Add(1) <= int32(n) }}, nil
	}
}

type createDropper struct {
	grpc.ClientStream
	drop func() bool
}

func (c *createDropper) SendMsg(m any) error {
	if r, ok := m.(*etcdserverpb.WatchRequest); ok && r.GetCreateRequest() != nil && c.drop() {
		return nil
	}
	return c.ClientStream.SendMsg(m)
}

// A watch etcd never confirms is a stall: the syncer reads again and
// watches on a new stream, instead of waiting for the confirmation forever
// (the client sends a stream's next watch only after the one before it
// was confirmed).
func TestUnconfirmedWatchIsAStall(t *testing.T) {
	e := testenv.StartEtcd(t)
	cfg := leaderelect.ClientConfig(clientv3.Config{Endpoints: e.Endpoints(), Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithStreamInterceptor(loseCreates(1))}})
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() }) // after run's cleanup has stopped the syncer
	direct := newClient(t, e.Endpoints())
	v := &view{}
	s := newSyncer(t, cli, "/k", false, 200*time.Millisecond)
	stop := run(t, s, v.apply)
	testenv.Eventually(t, 10*time.Second, func() error {
		if s.Status().Confirmed.IsZero() {
			return errors.New("not synced")
		}
		return nil
	})
	put(t, direct, "/k", "after the lost create")
	testenv.Eventually(t, 20*time.Second, func() error {
		return v.equals(map[string]string{"/k": "after the lost create"})
	})
	if st := s.Status(); st.Resyncs == 0 {
		t.Fatalf("converged without a re-read: %+v", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
