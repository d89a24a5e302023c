package registry

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/traffic"
)

// healthSelector runs a selector with default probe settings over
// ZooKeeper, with passive traffic evidence.
func healthSelector(t *testing.T, z *testenv.ZooKeeper, obs *traffic.Observer) *selectorRun {
	t.Helper()
	return runSelector(t, SelectorConfig{Connector: "test", Discovery: NewZooKeeper(ZKConfig{Servers: z.Servers(), Logger: testLogger()}),
		Prober: &HS2Prober{}, Traffic: obs}, nil)
}

func simEndpoint(s *hs2sim.Server) hs2.Endpoint {
	return hs2.Endpoint{Host: s.Host(), Port: s.Port(), Transport: hs2.TransportBinary, Auth: hs2.AuthNone}
}

// load keeps one session busy with calls to s, reporting each to obs as the
// query engine does, until stopped.
func load(t *testing.T, obs *traffic.Observer, s *hs2sim.Server) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sess, err := hs2.Open(ctx, simEndpoint(s), hs2.Options{}, hs2.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer closeQuietly(sess)
		for ctx.Err() == nil {
			done := obs.CallStarted("test", s.Addr())
			done(sess.Ping(ctx))
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// TestIntegrationLastServerDrains: HS2's graceful stop of the last server
// removes its znode and keeps serving: "none" is published as a drain,
// never as dead.
func TestIntegrationLastServerDrains(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	a := startSim(t, hs2sim.Config{ZK: z.Servers()})
	r := healthSelector(t, z, traffic.New(nil))
	r.waitChoice(t, 20*time.Second, chose(a.Addr(), false))
	if err := a.Deregister(); err != nil {
		t.Fatal(err)
	}
	c, _ := r.waitChoice(t, 10*time.Second, chose("", true, a.Addr()+" is no longer registered (draining)"))
	if c.PrevDead {
		t.Fatalf("a deregistered server declared dead: %+v", c)
	}
}

// TestIntegrationSlowMovesWithoutKilling: every call to the current server
// 700 ms late while another is healthy: new queries move (drain), the slow
// server is not declared dead.
func TestIntegrationSlowMovesWithoutKilling(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	a := startSim(t, hs2sim.Config{ZK: z.Servers()})
	b := startSim(t, hs2sim.Config{ZK: z.Servers()})
	r := healthSelector(t, z, traffic.New(nil))
	r.waitChoice(t, 20*time.Second, chose(a.Addr(), false))
	a.SetSlow(700 * time.Millisecond)
	c, _ := r.waitChoice(t, 10*time.Second, chose(b.Addr(), true, a.Addr()+" timed out"))
	if c.PrevDead {
		t.Fatalf("a slow server declared dead: %+v", c)
	}
}

// TestIntegrationLoneHungAndBack: the only server hangs; nothing answers
// (no traffic either): "none" within 3 s, drained, not dead; it answers
// again: chosen within 2 s.
func TestIntegrationLoneHungAndBack(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	a := startSim(t, hs2sim.Config{ZK: z.Servers()})
	r := healthSelector(t, z, traffic.New(nil))
	r.waitChoice(t, 20*time.Second, chose(a.Addr(), false))
	hung := time.Now()
	a.Hang()
	c, at := r.waitChoice(t, 10*time.Second, chose("", true, "unresponsive"))
	t.Logf("hang -> none: %v", at.Sub(hung).Round(time.Millisecond))
	if c.PrevDead {
		t.Fatalf("a hung server declared dead: %+v", c)
	}
	if d := at.Sub(hung); d > 3*time.Second {
		t.Errorf("hang -> none took %v, want <= 3s", d)
	}
	healed := time.Now()
	a.Heal()
	_, at = r.waitChoice(t, 10*time.Second, chose(a.Addr(), false))
	t.Logf("heal -> chosen: %v", at.Sub(healed).Round(time.Millisecond))
	if d := at.Sub(healed); d > 2*time.Second {
		t.Errorf("heal -> chosen took %v, want <= 2s", d)
	}
}

// TestIntegrationLoneSaturatedStays: the only server is so busy that
// probes time out, but real calls to it still complete: it stays. Once
// its traffic stops being answered, it is taken out.
func TestIntegrationLoneSaturatedStays(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	a := startSim(t, hs2sim.Config{ZK: z.Servers()})
	obs := traffic.New(nil)
	r := healthSelector(t, z, obs)
	r.waitChoice(t, 20*time.Second, chose(a.Addr(), false))
	stop := load(t, obs, a)
	a.SetSlow(700 * time.Millisecond) // above the 500 ms probe budget
	// Probes fail...
	testenv.Eventually(t, 10*time.Second, func() error {
		if s := r.s.Snapshot(); len(s) != 1 || s[0].Healthy {
			return fmt.Errorf("candidates %+v", s)
		}
		return nil
	})
	// ...and for well over the answer window it stays.
	deadline := time.Now().Add(3 * DefaultAnswerWindow)
	for time.Now().Before(deadline) {
		if n := len(r.publications()); n != 1 {
			t.Fatalf("a saturated lone server was taken out: %+v", r.publications())
		}
		time.Sleep(100 * time.Millisecond) // sampling a condition that must hold throughout
	}
	stop()
	a.Hang()
	r.waitChoice(t, 10*time.Second, chose("", true, "unresponsive"))
}
