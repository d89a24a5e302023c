package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/internal/testenv"
)

// startSim starts a simulated HS2 that registers in ZooKeeper like HS2.
func startSim(t *testing.T, cfg hs2sim.Config) *hs2sim.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	if cfg.ZKSessionTimeout == 0 {
		cfg.ZKSessionTimeout = 4 * time.Second
	}
	s, err := hs2sim.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// simSelector runs a selector with the default timings and our HS2 client
// as prober.
func simSelector(t *testing.T, d Discovery) *selectorRun {
	t.Helper()
	return runSelector(t, SelectorConfig{Connector: "test", Discovery: d, Prober: &HS2Prober{}}, nil)
}

func (r *selectorRun) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pubs)
}

// TestIntegrationPlain: two simulated HS2 registered as HS2 does; drain,
// crash with the znode still present, none at all, and a new one after none.
func TestIntegrationPlain(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	a := startSim(t, hs2sim.Config{ZK: z.Servers()})
	b := startSim(t, hs2sim.Config{ZK: z.Servers()})
	r := simSelector(t, NewZooKeeper(ZKConfig{Servers: z.Servers(), Logger: testLogger()}))

	c, _ := r.waitChoice(t, 20*time.Second, chose(a.Addr(), false, "oldest registration"))
	if len(c.Candidates) != 2 || !c.Candidates[0].Healthy {
		t.Fatalf("candidates %+v", c.Candidates)
	}

	// Graceful drain: A leaves ZooKeeper but keeps serving.
	if err := a.Deregister(); err != nil {
		t.Fatal(err)
	}
	r.waitChoice(t, 10*time.Second, chose(b.Addr(), true, a.Addr()+" is no longer registered (draining)"))
	if err := a.Register(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := len(r.s.Snapshot()); n != 2 {
			return fmt.Errorf("%d candidates", n)
		}
		return nil
	})
	if n := r.count(); n != 2 {
		t.Fatalf("a re-registration moved traffic: %+v", r.publications())
	}

	// Crash: the znode stays (its ZooKeeper session lives on), probes fail.
	crashed := time.Now()
	b.Crash()
	ch, at := r.waitChoice(t, 10*time.Second, chose(a.Addr(), false, b.Addr()+" refused every health check"))
	if !ch.PrevDead {
		t.Fatalf("a crashed server is not declared dead: %+v", ch)
	}
	t.Logf("crash -> switch: %v", at.Sub(crashed).Round(time.Millisecond))
	if d := at.Sub(crashed); d > 3*time.Second {
		t.Errorf("crash -> switch took %v, want about a second", d)
	}

	// Everything down, but registered.
	a.Crash()
	r.waitChoice(t, 10*time.Second, chose("", false, "all 2 registered HiveServer2 failed health checks", a.Addr()+": "))

	// Nothing registered at all.
	_ = a.Close()
	_ = b.Close()
	r.waitChoice(t, 10*time.Second, chose("", false, "no HiveServer2 registered under /hiveserver2"))

	// A new one is chosen without restarting anything.
	c3 := startSim(t, hs2sim.Config{ZK: z.Servers()})
	r.waitChoice(t, 10*time.Second, chose(c3.Addr(), false))
}

// TestIntegrationNoneThenNew starts with only malformed registrations.
func TestIntegrationNoneThenNew(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	zc := zkClient(t, z.Servers())
	registerHS2(t, zc, "/hiveserver2", "nohost", "x", nil)
	registerHS2(t, zc, "/hiveserver2", "h:1", "hive.server2.transport.mode=smoke-signals", nil)
	r := simSelector(t, NewZooKeeper(ZKConfig{Servers: z.Servers(), Logger: testLogger()}))
	r.waitChoice(t, 20*time.Second, chose("", false, "no HiveServer2 registered under /hiveserver2 (2 registration(s) skipped as malformed"))

	s := startSim(t, hs2sim.Config{ZK: z.Servers()})
	r.waitChoice(t, 10*time.Second, chose(s.Addr(), false))
}

// TestIntegrationDigestACL: simulators on a secured ensemble (digest auth,
// creator-only write ACLs) and a selector with the same credentials.
func TestIntegrationDigestACL(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	a := startSim(t, hs2sim.Config{ZK: z.Servers(), ZKDigest: "hive:s3cret", ZKNamespace: "hs2secure"})
	r := simSelector(t, NewZooKeeper(ZKConfig{Servers: z.Servers(), Namespace: "hs2secure", Digest: "hive:s3cret", Logger: testLogger()}))
	r.waitChoice(t, 20*time.Second, chose(a.Addr(), false))

	// The registration really is protected: a stranger cannot delete it.
	zc := zkClient(t, z.Servers())
	names, _, err := zc.Children("/hs2secure")
	if err != nil || len(names) != 1 {
		t.Fatalf("children %v %v", names, err)
	}
	if err := zc.Delete("/hs2secure/"+names[0], -1); err == nil {
		t.Fatal("unauthenticated delete of a protected registration succeeded")
	}
}

// TestIntegrationZKSessionExpiry cuts the selector off ZooKeeper for longer
// than its session timeout while the current HS2 deregisters; after the new
// session the stale host is gone and the watches work again. Then ZooKeeper
// itself restarts.
func TestIntegrationZKSessionExpiry(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	a := startSim(t, hs2sim.Config{ZK: z.Servers()})
	b := startSim(t, hs2sim.Config{ZK: z.Servers()})
	p, err := testenv.NewProxy(z.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	d := NewZooKeeper(ZKConfig{Servers: []string{p.Addr()}, SessionTimeout: 2 * time.Second, Logger: testLogger()})
	r := simSelector(t, d)
	r.waitChoice(t, 20*time.Second, chose(a.Addr(), false))

	sessions := d.(*zkDiscovery).sessions.Load()
	p.SetMode(testenv.Blackhole)
	if err := a.Deregister(); err != nil {
		t.Fatal(err)
	}
	holdFault(5 * time.Second) // beyond the 4s session ceiling
	if n := r.count(); n != 1 {
		t.Fatalf("choice changed while cut off from ZooKeeper: %+v", r.publications())
	}
	p.SetMode(testenv.Pass)
	r.waitChoice(t, 30*time.Second, chose(b.Addr(), true, a.Addr()+" is no longer registered"))
	if got := d.(*zkDiscovery).sessions.Load(); got <= sessions {
		t.Fatalf("session not replaced: %d -> %d", sessions, got)
	}
	snap := r.s.Snapshot()
	if len(snap) != 1 || snap[0].Endpoint.Addr() != b.Addr() {
		t.Fatalf("stale candidates after resync: %+v", snap)
	}

	// Watches re-armed: a new registration and a deregistration are seen.
	c := startSim(t, hs2sim.Config{ZK: z.Servers()})
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := len(r.s.Snapshot()); n != 2 {
			return fmt.Errorf("%d candidates", n)
		}
		return nil
	})

	// ZooKeeper restarts; the simulators keep their znodes, or re-create
	// them when the restart outlasts their sessions (ZooKeeper starting up
	// on a loaded machine): then the choice may pass through none, or
	// through b registered anew. Either way b's deregistration is seen and
	// c is chosen; the last move away from b drains it and says why.
	before := r.count()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := z.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Deregister(); err != nil {
		t.Fatal(err)
	}
	r.waitChoice(t, 30*time.Second, func(ch Choice) error {
		if !choiceIs(ch, c.Addr()) {
			return fmt.Errorf("choice %v (%s), want %s", ch.Endpoint, ch.Reason, c.Addr())
		}
		return nil
	})
	pubs := r.publications()[before-1:] // from b, chosen when ZooKeeper restarted
	var left *Choice
	for i := 1; i < len(pubs); i++ {
		if choiceIs(pubs[i-1], b.Addr()) && !choiceIs(pubs[i], b.Addr()) {
			left = &pubs[i]
		}
	}
	if !choiceIs(pubs[0], b.Addr()) || left == nil || !left.Drain || !strings.Contains(left.Reason, b.Addr()+" is no longer registered") {
		t.Fatalf("b's deregistration not reported as a drain: %+v", pubs)
	}
}

// choiceIs reports whether ch chose addr.
func choiceIs(ch Choice, addr string) bool { return ch.Endpoint != nil && ch.Endpoint.Addr() == addr }

// TestIntegrationHA: HS2 Interactive active/passive. Passive instances are
// never chosen; a passive instance becoming active is.
func TestIntegrationHA(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	ns := "hs2ha"
	a := startSim(t, hs2sim.Config{ZK: z.Servers(), ZKMode: "ha", ZKNamespace: ns, Active: true})
	b := startSim(t, hs2sim.Config{ZK: z.Servers(), ZKMode: "ha", ZKNamespace: ns})
	r := simSelector(t, NewZooKeeperHA(ZKConfig{Servers: z.Servers(), Namespace: ns, Logger: testLogger()}))
	r.waitChoice(t, 20*time.Second, chose(a.Addr(), false))
	testenv.Eventually(t, 10*time.Second, func() error {
		snap := r.s.Snapshot()
		if len(snap) != 2 || !snap[0].Active || snap[1].Active {
			return fmt.Errorf("snapshot %+v", snap)
		}
		return nil
	})

	// Leadership moves from A to B. (In between nobody may lead: then
	// "none" is published first, which is right.)
	if err := a.SetActive(false); err != nil {
		t.Fatal(err)
	}
	if err := b.SetActive(true); err != nil {
		t.Fatal(err)
	}
	r.waitChoice(t, 10*time.Second, chose(b.Addr(), false))
	sawDemotion := false
	for _, p := range r.publications() {
		sawDemotion = sawDemotion || strings.Contains(p.Reason, a.Addr()+" is no longer the active HiveServer2")
	}
	if !sawDemotion {
		t.Fatalf("demotion of %s not reported: %+v", a.Addr(), r.publications())
	}

	// Nobody active: none, and the passive ones are not used.
	if err := b.SetActive(false); err != nil {
		t.Fatal(err)
	}
	r.waitChoice(t, 10*time.Second, chose("", false, "no active HiveServer2 under /hs2ha-unsecure/instances, /hs2ha-sasl/instances: 2 passive instance(s)"))
	passiveFrom := r.count()

	// The active one crashes with its record in place: failed, and the
	// passive one is still not chosen.
	if err := a.SetActive(true); err != nil {
		t.Fatal(err)
	}
	r.waitChoice(t, 10*time.Second, chose(a.Addr(), false))
	a.Crash()
	r.waitChoice(t, 10*time.Second, chose("", false, "all 1 registered HiveServer2 failed health checks"))
	for _, p := range r.publications()[passiveFrom:] {
		if p.Endpoint != nil && p.Endpoint.Addr() == b.Addr() {
			t.Fatalf("passive instance chosen: %+v", p)
		}
	}
}

// TestIntegrationHungHS2: the current server accepts connections but never
// answers (a hung JVM or a blackholed host): probe timeouts fail it over.
func TestIntegrationHungHS2(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	a := startSim(t, hs2sim.Config{ZK: z.Servers()})
	b := startSim(t, hs2sim.Config{ZK: z.Servers()})
	r := simSelector(t, NewZooKeeper(ZKConfig{Servers: z.Servers(), Logger: testLogger()}))
	r.waitChoice(t, 20*time.Second, chose(a.Addr(), false))
	hung := time.Now()
	a.Hang()
	// Timeouts drain: the hung server is not known dead.
	ch, at := r.waitChoice(t, 10*time.Second, chose(b.Addr(), true, "no answer within 500ms"))
	if ch.PrevDead {
		t.Fatalf("a hung server declared dead: %+v", ch)
	}
	t.Logf("hang -> switch: %v", at.Sub(hung).Round(time.Millisecond))
	if d := at.Sub(hung); d > 4*time.Second {
		t.Errorf("hang -> switch took %v", d)
	}
}
