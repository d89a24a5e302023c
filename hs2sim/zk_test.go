package hs2sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/beltran/gohive"
	"github.com/beltran/gohive/hiveserver"
	"github.com/go-zookeeper/zk"
	"github.com/hiveqd/hiveqd/internal/testenv"
)

func zkClient(t *testing.T, servers []string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(servers, 5*time.Second, zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func children(t *testing.T, c *zk.Conn, path string) []string {
	t.Helper()
	kids, _, err := c.Children(path)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("children %s: %v", path, err)
	}
	sort.Strings(kids)
	return kids
}

func TestZooKeeperPlainRegistration(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	zc := zkClient(t, z.Servers())
	s := startServer(t, Config{ZK: z.Servers(), ZKNamespace: "hs2test"})
	kids := children(t, zc, "/hs2test")
	if len(kids) != 1 {
		t.Fatalf("children %v", kids)
	}
	re := regexp.MustCompile(`^serverUri=127\.0\.0\.1:` + strconv.Itoa(s.Port()) + `;version=3\.1\.3;sequence=\d{10}$`)
	if !re.MatchString(kids[0]) {
		t.Errorf("znode name %q", kids[0])
	}
	data, stat, err := zc.Get("/hs2test/" + kids[0])
	if err != nil {
		t.Fatal(err)
	}
	p := strconv.Itoa(s.Port())
	want := "hive.server2.instance.uri=127.0.0.1:" + p + ";hive.server2.authentication=NONE;hive.server2.transport.mode=binary;" +
		"hive.server2.thrift.sasl.qop=auth;hive.server2.thrift.bind.host=127.0.0.1;hive.server2.thrift.port=" + p + ";hive.server2.use.SSL=false"
	if string(data) != want {
		t.Errorf("data\n got  %s\n want %s", data, want)
	}
	if stat.EphemeralOwner == 0 {
		t.Error("znode is not ephemeral")
	}

	// An HTTP server in the same namespace publishes its HTTP settings.
	hs := startServer(t, Config{ZK: z.Servers(), ZKNamespace: "hs2test", Transport: "http", AdvertiseHost: "localhost", Version: "3.1.2"})
	hp := strconv.Itoa(hs.Port())
	kids = children(t, zc, "/hs2test")
	if len(kids) != 2 {
		t.Fatalf("children %v", kids)
	}
	var httpNode string
	for _, k := range kids {
		if regexp.MustCompile(`^serverUri=localhost:` + hp + `;version=3\.1\.2;sequence=\d{10}$`).MatchString(k) {
			httpNode = k
		}
	}
	data, _, _ = zc.Get("/hs2test/" + httpNode)
	want = "hive.server2.instance.uri=localhost:" + hp + ";hive.server2.authentication=NONE;hive.server2.transport.mode=http;" +
		"hive.server2.thrift.http.path=cliservice;hive.server2.thrift.http.port=" + hp + ";hive.server2.thrift.bind.host=localhost;hive.server2.use.SSL=false"
	if string(data) != want {
		t.Errorf("http data\n got  %s\n want %s", data, want)
	}
	if err := hs.Close(); err != nil {
		t.Fatal(err)
	}

	// A third-party client discovers the server through ZooKeeper.
	cfg := gohive.NewConnectConfiguration()
	cfg.ZookeeperNamespace = "hs2test"
	conn, err := gohive.ConnectZookeeper(z.Addr(), "NONE", cfg)
	if err != nil {
		t.Fatalf("gohive via zookeeper: %v", err)
	}
	conn.Close()

	// Deregister: the znode goes, the server keeps serving.
	if err := s.Deregister(); err != nil {
		t.Fatal(err)
	}
	if kids := children(t, zc, "/hs2test"); len(kids) != 0 {
		t.Errorf("after deregister: %v", kids)
	}
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	if got := c.query(h, "SELECT 1"); got[0][0] != "1" {
		t.Errorf("serving after deregister: %v", got)
	}
	c.closeSession(h)
	if err := s.Register(); err != nil {
		t.Fatal(err)
	}
	again := children(t, zc, "/hs2test")
	if len(again) != 1 || again[0] == kids[0] || !re.MatchString(again[0]) {
		t.Errorf("after register: %v (was %v)", again, kids)
	}

	// A crashed server's znode stays (its JVM's ZooKeeper session would
	// linger); Close removes it.
	s.Crash()
	if kids := children(t, zc, "/hs2test"); len(kids) != 1 {
		t.Errorf("after crash: %v", kids)
	}
	s.Heal()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if kids := children(t, zc, "/hs2test"); len(kids) != 0 {
		t.Errorf("after close: %v", kids)
	}
}

func TestZooKeeperDigestACL(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	startServer(t, Config{ZK: z.Servers(), ZKNamespace: "secure", ZKDigest: "hs2:s3cret"})
	anon := zkClient(t, z.Servers())
	kids := children(t, anon, "/secure")
	if len(kids) != 1 {
		t.Fatalf("children %v", kids)
	}
	// The creator's digest id is shown only to the creator.
	owner := zkClient(t, z.Servers())
	if err := owner.AddAuth("digest", []byte("hs2:s3cret")); err != nil {
		t.Fatal(err)
	}
	digest := zk.DigestACL(zk.PermAll, "hs2", "s3cret")[0].ID
	for _, path := range []string{"/secure", "/secure/" + kids[0]} {
		acl, _, err := owner.GetACL(path)
		if err != nil {
			t.Fatal(err)
		}
		want := []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: digest}, {Perms: zk.PermRead, Scheme: "world", ID: "anyone"}}
		if fmt.Sprint(acl) != fmt.Sprint(want) {
			t.Errorf("%s ACL %v, want %v", path, acl, want)
		}
	}
	if _, _, err := anon.Get("/secure/" + kids[0]); err != nil {
		t.Errorf("world can't read: %v", err)
	}
	if err := anon.Delete("/secure/"+kids[0], -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("anonymous delete: %v, want ErrNoAuth", err)
	}
}

// haRecord is the part of a Hadoop ServiceRecord the tests read.
type haRecordJSON struct {
	Type     string `json:"type"`
	Internal []struct {
		API          string              `json:"api"`
		AddressType  string              `json:"addressType"`
		ProtocolType string              `json:"protocolType"`
		Addresses    []map[string]string `json:"addresses"`
	} `json:"internal"`
	URI      string `json:"hive.server2.instance.uri"`
	UniqueID string `json:"registry.unique.id"`
	Mode     string `json:"hive.server2.transport.mode"`
	Port     string `json:"hive.server2.thrift.port"`
	Auth     string `json:"hive.server2.authentication"`
}

func TestZooKeeperHARegistration(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	zc := zkClient(t, z.Servers())
	a := startServer(t, Config{ZK: z.Servers(), ZKNamespace: "hs2ha", ZKMode: "ha", Active: true})
	b := startServer(t, Config{ZK: z.Servers(), ZKNamespace: "hs2ha", ZKMode: "ha"})

	records := func() map[string]haRecordJSON { // by instance URI
		t.Helper()
		out := map[string]haRecordJSON{}
		for _, k := range children(t, zc, "/hs2ha-unsecure/instances") {
			if !regexp.MustCompile(`^instance-\d{10}$`).MatchString(k) {
				t.Errorf("instance znode %q", k)
			}
			data, stat, err := zc.Get("/hs2ha-unsecure/instances/" + k)
			if err != nil {
				t.Fatal(err)
			}
			if stat.EphemeralOwner == 0 {
				t.Errorf("%s not ephemeral", k)
			}
			var r haRecordJSON
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatalf("%s: %v: %s", k, err, data)
			}
			out[r.URI] = r
		}
		return out
	}
	leader := func() string { // unique id held by the latch
		t.Helper()
		kids := children(t, zc, "/hs2ha-unsecure/_LEADER")
		if len(kids) != 1 {
			t.Fatalf("latch nodes %v", kids)
		}
		if !regexp.MustCompile(`^_c_[0-9a-f-]{36}-latch-\d{10}$`).MatchString(kids[0]) {
			t.Errorf("latch znode %q", kids[0])
		}
		data, _, err := zc.Get("/hs2ha-unsecure/_LEADER/" + kids[0])
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	recs := records()
	ra, rb := recs[a.Addr()], recs[b.Addr()]
	if len(recs) != 2 || ra.Type != "JSONServiceRecord" || len(ra.Internal) != 1 || ra.Internal[0].API != "activeEndpoint" ||
		ra.Internal[0].AddressType != "host/port" || ra.Internal[0].ProtocolType != "hadoop/IPC" ||
		ra.Internal[0].Addresses[0]["port"] != strconv.Itoa(a.Port()) || ra.Mode != "binary" || ra.Auth != "NONE" ||
		ra.Port != strconv.Itoa(a.Port()) || ra.UniqueID == "" {
		t.Errorf("active record %+v", ra)
	}
	if len(rb.Internal) != 1 || rb.Internal[0].API != "passiveEndpoint" {
		t.Errorf("passive record %+v", rb)
	}
	if got := leader(); got != ra.UniqueID {
		t.Errorf("latch held by %q, want the active %q", got, ra.UniqueID)
	}

	cb := dialRaw(t, b, dialOpts{})
	resp, err := cb.OpenSession(ctxT(t), &hiveserverOpenReq)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status.GetErrorMessage() != "Cannot open sessions on an inactive HS2 instance; use service discovery to connect" {
		t.Errorf("passive OpenSession: %v", resp.Status)
	}
	ca := dialRaw(t, a, dialOpts{})
	ca.open(nil) // closed by the failover below

	// Failover: a steps down (closing its sessions), b takes over.
	if err := a.SetActive(false); err != nil {
		t.Fatal(err)
	}
	if err := b.SetActive(true); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.OpenSessions != 0 {
		t.Errorf("a kept sessions: %+v", st)
	}
	recs = records()
	if recs[a.Addr()].Internal[0].API != "passiveEndpoint" || recs[b.Addr()].Internal[0].API != "activeEndpoint" {
		t.Errorf("after failover: %+v", recs)
	}
	if got := leader(); got != recs[b.Addr()].UniqueID {
		t.Errorf("latch held by %q after failover", got)
	}
	hb := cb.open(nil)
	cb.closeSession(hb)

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if kids := children(t, zc, "/hs2ha-unsecure/_LEADER"); len(kids) != 0 {
		t.Errorf("latch after close: %v", kids)
	}
	if recs := records(); len(recs) != 1 {
		t.Errorf("records after close: %v", recs)
	}
}

// TestZooKeeperSessionExpiry: when ZooKeeper expires the server's session
// (here: a network partition longer than the session timeout), the
// ephemeral znode goes; the server registers again once it reconnects.
func TestZooKeeperSessionExpiry(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	proxy, err := testenv.NewProxy(z.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() }) // after the server's cleanup
	zc := zkClient(t, z.Servers())
	startServer(t, Config{ZK: []string{proxy.Addr()}, ZKNamespace: "expiry", ZKSessionTimeout: time.Second})
	before := children(t, zc, "/expiry")
	if len(before) != 1 {
		t.Fatalf("children %v", before)
	}
	proxy.SetMode(testenv.Blackhole)
	waitFor(t, 30*time.Second, func() error {
		if kids := children(t, zc, "/expiry"); len(kids) != 0 {
			return fmt.Errorf("still registered: %v", kids)
		}
		return nil
	})
	proxy.SetMode(testenv.Pass)
	waitFor(t, 30*time.Second, func() error {
		kids := children(t, zc, "/expiry")
		if len(kids) != 1 || kids[0] == before[0] {
			return fmt.Errorf("children %v", kids)
		}
		return nil
	})
}

// TestZooKeeperDeregisterWhileDown: a deregistration asked for while
// ZooKeeper is down is done once it is back, as HS2's Curator client
// retries on connection loss; go-zookeeper alone fails it ("could not
// connect to a server") at its next failed round of reconnection.
func TestZooKeeperDeregisterWhileDown(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	s := startServer(t, Config{ZK: z.Servers(), ZKNamespace: "down", ZKSessionTimeout: 4 * time.Second})
	z.Stop()
	done := make(chan error, 1)
	go func() { done <- s.Deregister() }()
	// Down for a few rounds of reconnection (one a second): the duration
	// is the point, not synchronisation.
	time.Sleep(3 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("deregistration ended while ZooKeeper was down: %v", err)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := z.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("deregistration after ZooKeeper came back: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("deregistration did not end after ZooKeeper came back")
	}
	zc := zkClient(t, z.Servers())
	waitFor(t, 30*time.Second, func() error {
		kids, _, err := zc.Children("/down")
		if err != nil || len(kids) != 0 {
			return fmt.Errorf("children %v %v", kids, err)
		}
		return nil
	})
}

// TestCappedDialer: go-zookeeper's deadlines (ten receive timeouts for a
// handshake answer) are cut to the session timeout (zkconn's own test
// checks the arithmetic).
func TestCappedDialer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c // and never answer
		}
		close(accepted)
	}()
	c, err := cappedDialer(200*time.Millisecond)("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if sc, ok := <-accepted; ok {
		defer sc.Close()
	}
	// A silent server: the read ends at the cap, not in an hour.
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		res <- err
	}()
	select {
	case err := <-res:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read from a silent server: %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("read from a silent server not cut short")
	}
}

func TestZooKeeperUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := Start(ctx, Config{ZK: []string{freeAddr(t)}})
	if err == nil {
		t.Fatal("started without ZooKeeper")
	}
}

var hiveserverOpenReq = hiveserver.TOpenSessionReq{ClientProtocol: hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V10}
