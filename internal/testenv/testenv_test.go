package testenv

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestZooKeeperStartRestart(t *testing.T) {
	z := StartZooKeeper(t)
	c, _, err := zk.Connect(z.Servers(), 2*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Create("/x", []byte("1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := z.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() error {
		_, _, err := c.Get("/x")
		return err
	})
}

func TestEtcdStartRestart(t *testing.T) {
	e := StartEtcd(t)
	c, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := e.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v", r, err)
	}
}

func TestProxyModes(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := NewProxy(echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	roundTrip := func(c net.Conn, timeout time.Duration) error {
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		_, err := io.ReadFull(c, b)
		return err
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, 5*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	p.SetMode(Blackhole)
	if err := roundTrip(c, 200*time.Millisecond); err == nil {
		t.Fatal("blackhole forwarded data")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("blackhole: want timeout, got %v", err)
	}
	p.SetMode(Refuse)
	if err := roundTrip(c, 5*time.Second); err == nil {
		t.Fatal("refuse kept the connection")
	}
	p.SetMode(Pass)
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := roundTrip(c2, 5*time.Second); err != nil {
		t.Fatalf("pass again: %v", err)
	}
}

func TestKDC(t *testing.T) {
	start := time.Now()
	k := StartKDC(t, KDCOptions{Realm: "KDC.TEST", TicketLifetime: 30 * time.Second})
	up := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kt, err := k.NewPrincipal(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("KDC serving in %v; with a principal and its keytab in %v", up, time.Since(start))
	if _, err := k.NewPrincipal(ctx, "alice"); err == nil {
		t.Fatal("adding alice twice: no error")
	}
	if _, err := k.Keytab(ctx, "nobody"); err == nil {
		t.Fatal("keytab for a missing principal: no error")
	}
	cc, err := k.Kinit(ctx, "alice", kt)
	if err != nil {
		t.Fatal(err)
	}
	klist := exec.CommandContext(ctx, "klist", "-c", cc)
	klist.Env = append(os.Environ(), k.Env(false)...)
	out, err := klist.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "alice@KDC.TEST") || !strings.Contains(string(out), "krbtgt/KDC.TEST@KDC.TEST") {
		t.Fatalf("klist: %v\n%s", err, out)
	}
	if !strings.Contains(tailFile(k.LogPath(), 4000), "AS_REQ") {
		t.Fatalf("no AS_REQ in the KDC log")
	}
	if err := k.RandomizeKey(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Kinit(ctx, "alice", kt); err == nil {
		t.Fatal("kinit with a stale keytab: no error")
	}
	k.Stop()
	if _, err := k.Kinit(ctx, "alice", kt); err == nil {
		t.Fatal("kinit with the KDC stopped: no error")
	}
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	kt2, err := k.Keytab(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Kinit(ctx, "alice", kt2); err != nil {
		t.Fatal(err)
	}
}
