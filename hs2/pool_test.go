package hs2

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/beltran/gohive/hiveserver"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

type poolClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *poolClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *poolClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestPool(t *testing.T, cfg PoolConfig) (*Pool, *fakeHS2, *poolClock) {
	t.Helper()
	h := newFakeHS2()
	srv := startFake(t, h, AuthNone)
	clock := &poolClock{now: time.Unix(1000, 0)}
	cfg.Options = testOpts()
	cfg.Clock = clock.Now
	p := NewPool(srv.Endpoint(AuthNone), cfg)
	t.Cleanup(func() { p.CloseAll(context.Background()) })
	return p, h, clock
}

func mustGet(t *testing.T, p *Pool, sc SessionConfig) *Session {
	t.Helper()
	s, err := p.Get(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPoolReuseAndKeys(t *testing.T) {
	p, h, _ := newTestPool(t, PoolConfig{})
	a := SessionConfig{Database: "a", Conf: map[string]string{"k": "v"}}
	s1 := mustGet(t, p, a)
	p.Put(s1)
	s2 := mustGet(t, p, SessionConfig{Database: "a", Conf: map[string]string{"k": "v"}})
	if s1 != s2 {
		t.Fatal("idle session not reused")
	}
	s3 := mustGet(t, p, SessionConfig{Database: "a", Conf: map[string]string{"k": "w"}})
	if s3 == s2 || h.Calls("OpenSession") != 2 {
		t.Fatal("different conf shared a session")
	}
	if st := p.Stats(); st != (PoolStats{Open: 2, Idle: 0, InUse: 2}) {
		t.Fatalf("stats %+v", st)
	}
	p.Put(s2)
	p.Put(s2) // a second Put is ignored
	p.Put(s3)
	if st := p.Stats(); st != (PoolStats{Open: 2, Idle: 2, InUse: 0}) {
		t.Fatalf("stats %+v", st)
	}
	if h.Calls("GetInfo") != 0 {
		t.Error("fresh session validated")
	}
	if s3.Config().Conf["k"] != "w" || p.Endpoint().Port == 0 {
		t.Error("config/endpoint")
	}
}

func TestPoolBoundWaitsAndEvicts(t *testing.T) {
	p, h, _ := newTestPool(t, PoolConfig{MaxSessions: 2})
	a, b := SessionConfig{Database: "a"}, SessionConfig{Database: "b"}
	s1 := mustGet(t, p, a)
	s2 := mustGet(t, p, a)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, a); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get at the bound: %v", err)
	}

	got := make(chan *Session)
	go func() {
		s, err := p.Get(context.Background(), a)
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	p.Put(s1)
	if s := <-got; s != s1 {
		t.Error("waiter did not get the returned session")
	}

	// At the bound with an idle session of another key: evict it.
	p.Put(s2)
	s3 := mustGet(t, p, b)
	if h.Calls("CloseSession") != 1 || p.Stats().Open != 2 {
		t.Fatalf("eviction: %d closes, stats %+v", h.Calls("CloseSession"), p.Stats())
	}
	p.Put(s1)
	p.Put(s3)
}

func TestPoolValidationAndIdleTimeout(t *testing.T) {
	p, h, clock := newTestPool(t, PoolConfig{ValidateAfter: time.Minute, IdleTimeout: 10 * time.Minute})
	s1 := mustGet(t, p, SessionConfig{})
	p.Put(s1)
	clock.Advance(2 * time.Minute)
	if s := mustGet(t, p, SessionConfig{}); s != s1 || h.Calls("GetInfo") != 1 {
		t.Fatalf("validated reuse: same=%v pings=%d", s == s1, h.Calls("GetInfo"))
	}
	p.Put(s1)

	// A session HS2 forgot fails validation and is replaced.
	clock.Advance(2 * time.Minute)
	msg := "Invalid SessionHandle"
	h.mu.Lock()
	h.getInfo = func() (*hiveserver.TGetInfoResp, error) {
		return &hiveserver.TGetInfoResp{Status: &hiveserver.TStatus{StatusCode: hiveserver.TStatusCode_INVALID_HANDLE_STATUS, ErrorMessage: &msg},
			InfoValue: &hiveserver.TGetInfoValue{StringValue: &msg}}, nil
	}
	h.mu.Unlock()
	s2 := mustGet(t, p, SessionConfig{})
	if s2 == s1 || h.Calls("OpenSession") != 2 || !s1.Broken() {
		t.Fatalf("dead session reused")
	}
	h.mu.Lock()
	h.getInfo = nil
	h.mu.Unlock()
	p.Put(s2)

	// Past the idle timeout: closed, not lent.
	clock.Advance(11 * time.Minute)
	s3 := mustGet(t, p, SessionConfig{})
	if s3 == s2 || h.Calls("OpenSession") != 3 {
		t.Fatal("expired session lent")
	}
	if st := p.Stats(); st.Open != 1 {
		t.Fatalf("stats %+v", st)
	}
	p.Put(s3)
}

func TestPoolMaxIdleAndBroken(t *testing.T) {
	p, h, _ := newTestPool(t, PoolConfig{MaxIdlePerKey: 1})
	s1 := mustGet(t, p, SessionConfig{})
	s2 := mustGet(t, p, SessionConfig{})
	p.Put(s1)
	p.Put(s2)
	if st := p.Stats(); st.Idle != 1 || h.Calls("CloseSession") != 1 {
		t.Fatalf("stats %+v closes %d", st, h.Calls("CloseSession"))
	}
	s3 := mustGet(t, p, SessionConfig{})
	if s3 != s2 {
		t.Error("not the most recently returned")
	}
	s3.broken.Store(true)
	p.Put(s3)
	if st := p.Stats(); st.Open != 0 {
		t.Fatalf("broken session kept: %+v", st)
	}
	p.Put(&Session{}) // not the pool's: ignored
}

// A session still opening when the pool closes is lent all the same (its
// server may still serve it: a drained last server) and closed when it is
// Put back, like the sessions lent before the close.
func TestPoolCloseAllDuringDial(t *testing.T) {
	p, h, _ := newTestPool(t, PoolConfig{MaxSessions: 2})
	gate := make(chan struct{})
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(open) // a failure below must not leave the dial held
	h.mu.Lock()
	h.openGate = gate
	h.mu.Unlock()
	got := make(chan error, 1)
	var s *Session
	go func() {
		var err error
		s, err = p.Get(context.Background(), SessionConfig{})
		got <- err
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := h.Calls("OpenSession"); n != 1 {
			return fmt.Errorf("%d OpenSession calls", n)
		}
		return nil
	})
	p.CloseAll(context.Background())
	open()
	if err := <-got; err != nil {
		t.Fatalf("Get dialling across CloseAll: %v", err)
	}
	if st := p.Stats(); st != (PoolStats{Open: 1, InUse: 1}) {
		t.Fatalf("stats %+v", st)
	}
	p.Put(s)
	if st := p.Stats(); st != (PoolStats{}) || h.Calls("CloseSession") != 1 {
		t.Fatalf("stats %+v, %d CloseSession", st, h.Calls("CloseSession"))
	}
}

func TestPoolCloseAll(t *testing.T) {
	p, h, _ := newTestPool(t, PoolConfig{MaxSessions: 2})
	s1 := mustGet(t, p, SessionConfig{})
	s2 := mustGet(t, p, SessionConfig{})
	p.Put(s1)
	s1 = mustGet(t, p, SessionConfig{})

	waiting := make(chan error)
	go func() {
		_, err := p.Get(context.Background(), SessionConfig{})
		waiting <- err
	}()
	p.Put(s1)
	// The waiter may take s1 before CloseAll; either way it ends.
	p.CloseAll(context.Background())
	if err := <-waiting; err != nil && !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("waiter: %v", err)
	}
	if _, err := p.Get(context.Background(), SessionConfig{}); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Get after CloseAll: %v", err)
	}
	p.Put(s1)
	p.Put(s2)
	if st := p.Stats(); st != (PoolStats{}) {
		t.Fatalf("stats %+v", st)
	}
	if h.Calls("CloseSession") != 2 {
		t.Fatalf("closes %d", h.Calls("CloseSession"))
	}
}
