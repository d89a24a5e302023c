package hs2_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
)

// Every path of a lease leaves nothing open on the server (startSim checks
// sessions and operations at cleanup) and nothing lent out of the pool.
func TestLeaseReleaseAndAbandon(t *testing.T) {
	s := startSim(t, hs2sim.Config{LongPoll: 5 * time.Second})
	pool := hs2.NewPool(s.endpoint(t), hs2.PoolConfig{})
	defer pool.CloseAll(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	slow := hs2.SessionConfig{Conf: map[string]string{"hs2sim.exec_delay_ms": "60000"}}

	t.Run("finished", func(t *testing.T) {
		l := hs2.NewLease(pool)
		if err := l.Open(ctx, hs2.SessionConfig{}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Execute(ctx, "SELECT * FROM default.employees", nil); err != nil {
			t.Fatal(err)
		}
		for {
			st, err := l.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.State.Terminal() {
				break
			}
		}
		if _, err := l.Schema(ctx); err != nil {
			t.Fatal(err)
		}
		if b, err := l.Fetch(ctx, 100, 0); err != nil || b.Rows != 6 {
			t.Fatalf("%v %v", b, err)
		}
		l.Release(ctx)
		l.Release(ctx) // idempotent
		if _, err := l.Status(ctx); !errors.Is(err, hs2.ErrLeaseEnded) {
			t.Fatalf("status after release: %v", err)
		}
		if st := pool.Stats(); st.InUse != 0 || st.Idle != 1 {
			t.Fatalf("pool %+v", st)
		}
	})
	t.Run("release with a long poll in flight", func(t *testing.T) {
		l := hs2.NewLease(pool)
		if err := l.Open(ctx, slow); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Execute(ctx, "SELECT * FROM default.employees", nil); err != nil {
			t.Fatal(err)
		}
		polled := make(chan error, 1)
		go func() {
			_, err := l.Status(ctx)
			polled <- err
		}()
		for deadline := time.Now().Add(10 * time.Second); l.InFlight() == 0; { // the poll is under way
			if time.Now().After(deadline) {
				t.Fatal("the status poll never started")
			}
			runtime.Gosched()
		}
		start := time.Now()
		l.Release(ctx)
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("release waited %v: the poll was not interrupted", d)
		}
		<-polled
		if st := pool.Stats(); st.InUse != 0 {
			t.Fatalf("pool %+v", st)
		}
	})
	t.Run("abandon", func(t *testing.T) {
		l := hs2.NewLease(pool)
		if err := l.Open(ctx, slow); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Execute(ctx, "SELECT * FROM default.employees", nil); err != nil {
			t.Fatal(err)
		}
		polled := make(chan error, 1)
		go func() {
			_, err := l.Status(ctx)
			polled <- err
		}()
		l.Abandon()
		if err := <-polled; err == nil {
			t.Fatal("the poll in flight survived Abandon")
		}
		if st := pool.Stats(); st.InUse != 0 || st.Idle != 1 {
			t.Fatalf("abandoned session went back to the pool: %+v", st)
		}
	})
	t.Run("ended while opening", func(t *testing.T) {
		l := hs2.NewLease(pool)
		opened := make(chan error, 1)
		go func() { opened <- l.Open(ctx, hs2.SessionConfig{Database: "default"}) }()
		l.Release(ctx)
		if err := <-opened; err != nil && !errors.Is(err, hs2.ErrLeaseEnded) {
			t.Fatal(err)
		}
		if st := pool.Stats(); st.InUse != 0 {
			t.Fatalf("pool %+v", st)
		}
	})
}
