package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/internal/testenv"
)

func TestZKDiscovery(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	hs2zk := zkClient(t, z.Servers())

	// Nothing registered yet, not even the namespace.
	d := NewZooKeeper(ZKConfig{Servers: z.Servers(), Logger: testLogger()})
	r := runDiscovery(t, d)
	r.waitFor(t, 20*time.Second, wantAddrs())
	if st := d.(StatusReporter).Status(); st.Source != "/hiveserver2" || st.Err != "" {
		t.Fatalf("status %+v", st)
	}

	// The namespace appears with the first HS2 (an exists watch sees it).
	a := registerHS2(t, hs2zk, "/hiveserver2", "hs2-a:10000", publishedConf("hs2-a", 10000), nil)
	got := r.waitFor(t, 10*time.Second, wantAddrs("hs2-a:10000"))
	want := Candidate{
		Endpoint: hs2.Endpoint{Host: "hs2-a", Port: 10000, Transport: hs2.TransportBinary, Auth: hs2.AuthNone},
		Node:     a, Seq: 0, Version: "3.1.3", Active: true,
	}
	if c := got[0]; c.Endpoint != want.Endpoint || c.Node != want.Node || c.Seq != want.Seq || c.Version != want.Version || !c.Active ||
		c.Data[KeyThriftPort] != "10000" {
		t.Fatalf("candidate %+v, want %+v", c, want)
	}

	// Older HS2 (publish.configs=false) writes just host:port; malformed
	// entries are skipped and counted.
	registerHS2(t, hs2zk, "/hiveserver2", "hs2-b:10001", "hs2-b:10001", nil)
	if _, err := hs2zk.Create("/hiveserver2/garbage", []byte("x"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	registerHS2(t, hs2zk, "/hiveserver2", "hs2-c:10002", "not a config", nil)
	r.waitFor(t, 10*time.Second, func(cs []Candidate) error {
		if err := wantAddrs("hs2-a:10000", "hs2-b:10001")(cs); err != nil {
			return err
		}
		if st := d.(StatusReporter).Status(); st.Skipped != 2 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// Data changes are seen (data watch), and re-armed: twice.
	for _, mode := range []string{"http", "binary"} {
		conf := strings.Replace(publishedConf("hs2-a", 10000), "transport.mode=binary", "transport.mode="+mode, 1)
		conf += ";hive.server2.thrift.http.port=10010;hive.server2.thrift.http.path=cliservice"
		if _, err := hs2zk.Set(a, []byte(conf), -1); err != nil {
			t.Fatal(err)
		}
		wantT := hs2.Transport(mode)
		r.waitFor(t, 10*time.Second, func(cs []Candidate) error {
			if len(cs) == 0 || cs[0].Endpoint.Transport != wantT {
				return fmt.Errorf("candidates %+v", cs)
			}
			return nil
		})
	}

	// Deregistration (child watch, re-armed).
	if err := hs2zk.Delete(a, -1); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 10*time.Second, wantAddrs("hs2-b:10001"))
	registerHS2(t, hs2zk, "/hiveserver2", "hs2-d:10003", publishedConf("hs2-d", 10003), nil)
	r.waitFor(t, 10*time.Second, wantAddrs("hs2-b:10001", "hs2-d:10003"))
}

func TestZKDiscoveryDigestACLAndChroot(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	hs2zk := zkClient(t, z.Servers())
	if err := hs2zk.AddAuth("digest", []byte("hive:s3cret")); err != nil {
		t.Fatal(err)
	}
	// HS2 in a secured ZooKeeper: the registrations are readable only by the
	// hive digest identity. The namespace itself stays world-readable.
	acl := zk.DigestACL(zk.PermAll, "hive", "s3cret")
	ensurePath(t, hs2zk, "/hive/hiveserver2", zk.WorldACL(zk.PermAll))
	registerHS2(t, hs2zk, "/hive/hiveserver2", "hs2-a:10000", publishedConf("hs2-a", 10000), acl)

	authed := runDiscovery(t, NewZooKeeper(ZKConfig{Servers: z.Servers(), Chroot: "/hive", Digest: "hive:s3cret", Logger: testLogger()}))
	authed.waitFor(t, 20*time.Second, wantAddrs("hs2-a:10000"))

	// The chroot may also come at the end of the connect string.
	anon := NewZooKeeper(ZKConfig{Servers: []string{z.Addr() + "/hive"}, Logger: testLogger()})
	r := runDiscovery(t, anon)
	r.waitFor(t, 20*time.Second, func(cs []Candidate) error {
		st := anon.(StatusReporter).Status()
		if len(cs) != 0 || st.Skipped != 1 || !strings.Contains(strings.Join(st.Problems, ";"), "not authenticated") {
			return fmt.Errorf("candidates %v, status %+v", addrs(cs), st)
		}
		return nil
	})

	wrong := NewZooKeeper(ZKConfig{Servers: z.Servers(), Chroot: "/hive", Digest: "hive:wrong", Logger: testLogger()})
	r = runDiscovery(t, wrong)
	r.waitFor(t, 20*time.Second, func(cs []Candidate) error {
		if len(cs) != 0 || wrong.(StatusReporter).Status().Skipped != 1 {
			return fmt.Errorf("candidates %v", addrs(cs))
		}
		return nil
	})
}

func TestZKDiscoveryTLS(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	hs2zk := zkClient(t, z.Servers())
	registerHS2(t, hs2zk, "/hiveserver2", "hs2-a:10000", publishedConf("hs2-a", 10000), nil)

	// A TLS front on ZooKeeper's client port (what secureClientPort serves).
	serverConf, clientConf := testTLS(t)
	front := startTLSFront(t, serverConf, z.Addr())
	r := runDiscovery(t, NewZooKeeper(ZKConfig{Servers: []string{front.Addr()}, TLS: clientConf, Logger: testLogger()}))
	r.waitFor(t, 20*time.Second, wantAddrs("hs2-a:10000"))
	if front.handshakes() == 0 {
		t.Fatal("no TLS handshake")
	}

	// A client that does not trust the certificate never gets a list.
	bad := NewZooKeeper(ZKConfig{Servers: []string{front.Addr()}, TLS: &tls.Config{}, Logger: testLogger()})
	r = runDiscovery(t, bad)
	testenv.Eventually(t, 20*time.Second, func() error {
		if n := front.failures(); n < 2 {
			return fmt.Errorf("%d failed handshakes", n)
		}
		return nil
	})
	if _, n := r.latest(); n != 0 {
		t.Fatal("untrusted TLS server gave a list")
	}
	if st := bad.(StatusReporter).Status(); st.Err == "" {
		t.Fatalf("status %+v", st)
	}
}

// TestZKDiscoverySessionExpiry cuts our session off for longer than its
// timeout while registrations change, then checks that nothing stale is
// left and that the watches work again.
func TestZKDiscoverySessionExpiry(t *testing.T) {
	for _, mode := range []testenv.ProxyMode{testenv.Blackhole, testenv.Refuse} {
		name := map[testenv.ProxyMode]string{testenv.Blackhole: "blackhole", testenv.Refuse: "refuse"}[mode]
		t.Run(name, func(t *testing.T) {
			z := testenv.StartZooKeeper(t)
			hs2zk := zkClient(t, z.Servers())
			a := registerHS2(t, hs2zk, "/hiveserver2", "hs2-a:10000", publishedConf("hs2-a", 10000), nil)
			b := registerHS2(t, hs2zk, "/hiveserver2", "hs2-b:10001", publishedConf("hs2-b", 10001), nil)

			p, err := testenv.NewProxy(z.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			d := NewZooKeeper(ZKConfig{Servers: []string{p.Addr()}, SessionTimeout: 2 * time.Second, Logger: testLogger()})
			r := runDiscovery(t, d)
			r.waitFor(t, 20*time.Second, wantAddrs("hs2-a:10000", "hs2-b:10001"))

			sessions := d.(*zkDiscovery).sessions.Load()
			p.SetMode(mode)
			if err := hs2zk.Delete(a, -1); err != nil {
				t.Fatal(err)
			}
			if _, err := hs2zk.Set(b, []byte(publishedConf("hs2-b", 10011)), -1); err != nil {
				t.Fatal(err)
			}
			registerHS2(t, hs2zk, "/hiveserver2", "hs2-c:10002", publishedConf("hs2-c", 10002), nil)
			// Hold the fault longer than the session timeout (2s asked; the
			// server's ceiling is 20 ticks = 4s) so the session expires.
			holdFault(5 * time.Second)
			p.SetMode(testenv.Pass)
			r.waitFor(t, 30*time.Second, wantAddrs("hs2-b:10011", "hs2-c:10002"))
			if got := d.(*zkDiscovery).sessions.Load(); got <= sessions {
				t.Fatalf("session was not replaced (%d sessions before, %d after)", sessions, got)
			}
			// Never a stale mix: each list is the old one or the new one.
			r.mu.Lock()
			for _, l := range r.lists {
				if s := strings.Join(addrs(l), ","); s != "hs2-a:10000,hs2-b:10001" && s != "hs2-b:10011,hs2-c:10002" {
					t.Errorf("stale list %s", s)
				}
			}
			r.mu.Unlock()

			// Watches are armed again after the new session.
			registerHS2(t, hs2zk, "/hiveserver2", "hs2-d:10003", publishedConf("hs2-d", 10003), nil)
			r.waitFor(t, 10*time.Second, wantAddrs("hs2-b:10011", "hs2-c:10002", "hs2-d:10003"))
			if _, err := hs2zk.Set(b, []byte(publishedConf("hs2-b", 10021)), -1); err != nil {
				t.Fatal(err)
			}
			r.waitFor(t, 10*time.Second, wantAddrs("hs2-b:10021", "hs2-c:10002", "hs2-d:10003"))
		})
	}
}

// TestZKDiscoveryServerRestart restarts ZooKeeper itself: the session
// survives (restart within the timeout), registrations made meanwhile are
// seen, and the watches keep working.
func TestZKDiscoveryServerRestart(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	hs2zk := zkClient(t, z.Servers())
	registerHS2(t, hs2zk, "/hiveserver2", "hs2-a:10000", publishedConf("hs2-a", 10000), nil)
	d := NewZooKeeper(ZKConfig{Servers: z.Servers(), Logger: testLogger()})
	r := runDiscovery(t, d)
	r.waitFor(t, 20*time.Second, wantAddrs("hs2-a:10000"))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	z.Stop()
	if err := z.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The HS2 stand-in's session may or may not have survived the restart;
	// whatever ZooKeeper holds now is what discovery must show.
	testenv.Eventually(t, 30*time.Second, func() error {
		if hs2zk.State() != zk.StateHasSession {
			return fmt.Errorf("hs2 stand-in state %v", hs2zk.State())
		}
		return nil
	})
	b := registerHS2(t, hs2zk, "/hiveserver2", "hs2-b:10001", publishedConf("hs2-b", 10001), nil)
	r.waitFor(t, 30*time.Second, func(cs []Candidate) error {
		names, _, err := hs2zk.Children("/hiveserver2")
		if err != nil {
			return err
		}
		if len(cs) != len(names) || cs[len(cs)-1].Endpoint.Host != "hs2-b" {
			return fmt.Errorf("candidates %v, znodes %v", addrs(cs), names)
		}
		return nil
	})
	if err := hs2zk.Delete(b, -1); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 10*time.Second, func(cs []Candidate) error {
		for _, c := range cs {
			if c.Endpoint.Host == "hs2-b" {
				return fmt.Errorf("stale %v", addrs(cs))
			}
		}
		return nil
	})
}

// haConn creates HA registrations as HS2ActivePassiveHARegistry does.
type haRegistrar struct {
	t    *testing.T
	c    *zk.Conn
	root string
}

func newHARegistrar(t *testing.T, c *zk.Conn, root string) *haRegistrar {
	ensurePath(t, c, root+"/instances", zk.WorldACL(zk.PermAll))
	ensurePath(t, c, root+"/_LEADER", zk.WorldACL(zk.PermAll))
	return &haRegistrar{t: t, c: c, root: root}
}

// register adds an instance record (passive at first, as HS2 registers) and
// its leader latch participant; it returns the record path and latch path.
func (h *haRegistrar) register(host string, port int, uid string) (string, string) {
	h.t.Helper()
	rec, err := h.c.Create(h.root+"/instances/instance-", []byte(haRecord("passiveEndpoint", host, fmt.Sprint(port), uid)),
		zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		h.t.Fatal(err)
	}
	latch, err := h.c.Create(h.root+"/_LEADER/_c_"+uid+"-latch-", []byte(uid), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		h.t.Fatal(err)
	}
	return rec, latch
}

func (h *haRegistrar) setRecord(path, api, host string, port int, uid string) {
	h.t.Helper()
	if _, err := h.c.Set(path, []byte(haRecord(api, host, fmt.Sprint(port), uid)), -1); err != nil {
		h.t.Fatal(err)
	}
}

func TestZKHADiscovery(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	hs2zk := zkClient(t, z.Servers())
	reg := newHARegistrar(t, hs2zk, "/hs2ActivePassiveHA-unsecure")
	d := NewZooKeeperHA(ZKConfig{Servers: z.Servers(), Logger: testLogger()})
	r := runDiscovery(t, d)
	r.waitFor(t, 20*time.Second, wantAddrs())
	if st := d.(StatusReporter).Status(); st.Source != "/hs2ActivePassiveHA-unsecure/instances, /hs2ActivePassiveHA-sasl/instances" {
		t.Fatalf("status %+v", st)
	}

	recA, latchA := reg.register("llap-a", 10500, "uid-a")
	recB, _ := reg.register("llap-b", 10501, "uid-b")
	r.waitFor(t, 10*time.Second, wantAddrs("llap-a:10500(passive)", "llap-b:10501(passive)"))

	// A wins the latch and publishes activeEndpoint.
	reg.setRecord(recA, "activeEndpoint", "llap-a", 10500, "uid-a")
	got := r.waitFor(t, 10*time.Second, wantAddrs("llap-a:10500", "llap-b:10501(passive)"))
	if got[0].Seq != 0 || got[0].Data[KeyUniqueID] != "uid-a" || got[0].Endpoint.Transport != hs2.TransportBinary {
		t.Fatalf("candidate %+v", got[0])
	}

	// A record claiming activeEndpoint that the latch disagrees with (B's
	// stale record after losing leadership) is not active.
	reg.setRecord(recB, "activeEndpoint", "llap-b", 10501, "uid-b")
	recC, _ := reg.register("llap-c", 10502, "uid-c") // a later change to wait for
	r.waitFor(t, 10*time.Second, wantAddrs("llap-a:10500", "llap-b:10501(passive)", "llap-c:10502(passive)"))
	r.mu.Lock()
	for _, l := range r.lists {
		for _, c := range l {
			if c.Active && c.Endpoint.Host == "llap-b" {
				t.Errorf("stale active record taken for the leader: %v", addrs(l))
			}
		}
	}
	r.mu.Unlock()
	if err := hs2zk.Delete(recC, -1); err != nil {
		t.Fatal(err)
	}

	// A leaves: its latch node and record go; B leads and becomes active.
	if err := hs2zk.Delete(latchA, -1); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 10*time.Second, wantAddrs("llap-a:10500(passive)", "llap-b:10501"))
	reg.setRecord(recA, "passiveEndpoint", "llap-a", 10500, "uid-a")
	if err := hs2zk.Delete(recA, -1); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 10*time.Second, wantAddrs("llap-b:10501"))

	// Malformed records are skipped and counted.
	if _, err := hs2zk.Create(reg.root+"/instances/instance-", []byte("{not json"), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 10*time.Second, func(cs []Candidate) error {
		if st := d.(StatusReporter).Status(); st.Skipped != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return wantAddrs("llap-b:10501")(cs)
	})
}

func TestZKHADiscoveryWithoutLatch(t *testing.T) {
	// A registrar without a _LEADER latch: the records alone decide. The
	// -sasl tree is read when configured so.
	z := testenv.StartZooKeeper(t)
	hs2zk := zkClient(t, z.Servers())
	root := "/myha-sasl"
	ensurePath(t, hs2zk, root+"/instances", zk.WorldACL(zk.PermAll))
	if _, err := hs2zk.Create(root+"/instances/instance-", []byte(haRecord("activeEndpoint", "h", "10500", "u")), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	r := runDiscovery(t, NewZooKeeperHA(ZKConfig{Servers: z.Servers(), Namespace: "myha-sasl", Logger: testLogger()}))
	r.waitFor(t, 20*time.Second, wantAddrs("h:10500"))
}

func TestZKConfigErrors(t *testing.T) {
	ctx := context.Background()
	if err := NewZooKeeper(ZKConfig{}).Run(ctx, func([]Candidate) {}); err == nil {
		t.Fatal("no servers accepted")
	}
	if err := NewZooKeeper(ZKConfig{Servers: []string{"a:b:c"}}).Run(ctx, func([]Candidate) {}); err == nil {
		t.Fatal("bad server accepted")
	}
}

// holdFault keeps an injected fault in place for d: the fault's duration is
// the point (a session must outlive its timeout), not synchronisation.
func holdFault(d time.Duration) { time.Sleep(d) }

func TestZKConfigPaths(t *testing.T) {
	d := &zkDiscovery{cfg: ZKConfig{Servers: []string{"zk1:2181,zk2", " zk3:2182/hive/prod"}}}
	servers, chroot, err := d.servers()
	if err != nil || strings.Join(servers, ",") != "zk1:2181,zk2:2181,zk3:2182" || chroot != "/hive/prod" {
		t.Fatalf("servers %v chroot %q err %v", servers, chroot, err)
	}
	if r := d.roots(chroot); strings.Join(r, ",") != "/hive/prod/hiveserver2" {
		t.Fatalf("roots %v", r)
	}
	d = &zkDiscovery{cfg: ZKConfig{Servers: []string{"zk1"}, Chroot: "hive", Namespace: "/custom/"}}
	_, chroot, _ = d.servers()
	if r := d.roots(chroot); strings.Join(r, ",") != "/hive/custom" {
		t.Fatalf("roots %v", r)
	}
	d = &zkDiscovery{cfg: ZKConfig{Servers: []string{"zk1"}}, ha: true}
	if r := d.roots("/"); strings.Join(r, ",") != "/hs2ActivePassiveHA-unsecure,/hs2ActivePassiveHA-sasl" {
		t.Fatalf("ha roots %v", r)
	}
	d = &zkDiscovery{cfg: ZKConfig{Servers: []string{"zk1"}, Namespace: "x-unsecure"}, ha: true}
	if r := d.roots("/"); strings.Join(r, ",") != "/x-unsecure" {
		t.Fatalf("ha roots %v", r)
	}
}

// TestZKReconnectKeepsWatches (12.7): reconnects within one session keep
// the watches (the client re-registers them), so they are not armed again:
// watchers do not pile up, and changes are still seen.
func TestZKReconnectKeepsWatches(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	hs2zk := zkClient(t, z.Servers())
	a := registerHS2(t, hs2zk, "/hiveserver2", "hs2-a:10000", publishedConf("hs2-a", 10000), nil)
	registerHS2(t, hs2zk, "/hiveserver2", "hs2-b:10001", publishedConf("hs2-b", 10001), nil)
	p, err := testenv.NewProxy(z.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	d := NewZooKeeper(ZKConfig{Servers: []string{p.Addr()}, SessionTimeout: 20 * time.Second, Logger: testLogger()})
	zd := d.(*zkDiscovery)
	r := runDiscovery(t, d)
	r.waitFor(t, 20*time.Second, wantAddrs("hs2-a:10000", "hs2-b:10001"))
	armed := zd.armCalls.Load()
	sessions := zd.sessions.Load()
	for i := range 3 {
		_, lists := r.latest()
		p.SetMode(testenv.Refuse)
		p.SetMode(testenv.Pass)
		// Each reconnect resyncs (and reports the list again).
		testenv.Eventually(t, 20*time.Second, func() error {
			if _, n := r.latest(); n <= lists {
				return fmt.Errorf("reconnect %d: no resync yet", i)
			}
			return nil
		})
	}
	if got := zd.sessions.Load(); got != sessions {
		t.Fatalf("the session changed (%d -> %d): the test needs reconnects within one session", sessions, got)
	}
	if got := zd.armCalls.Load(); got != armed {
		t.Fatalf("watches armed again after same-session reconnects: %d calls before, %d after", armed, got)
	}
	// The kept watches still fire.
	if _, err := hs2zk.Set(a, []byte(publishedConf("hs2-a", 10010)), -1); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 10*time.Second, wantAddrs("hs2-a:10010", "hs2-b:10001"))
	registerHS2(t, hs2zk, "/hiveserver2", "hs2-c:10002", publishedConf("hs2-c", 10002), nil)
	r.waitFor(t, 10*time.Second, wantAddrs("hs2-a:10010", "hs2-b:10001", "hs2-c:10002"))
}
