package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

// testLogger logs to stderr when REGISTRY_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("REGISTRY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

// zkClient is a test's own ZooKeeper session, standing in for HS2's.
func zkClient(t testing.TB, servers []string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(servers, 4*time.Second, zk.WithLogger(quietZK{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	testenv.Eventually(t, 20*time.Second, func() error {
		if c.State() != zk.StateHasSession {
			return fmt.Errorf("state %v", c.State())
		}
		return nil
	})
	return c
}

// ensurePath creates p and its parents as persistent znodes, as HS2 creates
// its namespace (Curator creatingParentsIfNeeded).
func ensurePath(t testing.TB, c *zk.Conn, p string, acl []zk.ACL) {
	t.Helper()
	parts := strings.Split(strings.Trim(p, "/"), "/")
	cur := ""
	for _, part := range parts {
		cur += "/" + part
		_, err := c.Create(cur, nil, 0, acl)
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", cur, err)
		}
	}
}

// registerHS2 creates a registration exactly as HS2 does with
// hive.server2.support.dynamic.service.discovery: an EPHEMERAL_SEQUENTIAL
// /<ns>/serverUri=host:port;version=3.1.3;sequence=NNNNNNNNNN whose data is
// the published configuration.
func registerHS2(t testing.TB, c *zk.Conn, root, hostport, data string, acl []zk.ACL) string {
	t.Helper()
	if acl == nil {
		acl = zk.WorldACL(zk.PermAll)
	}
	ensurePath(t, c, root, zk.WorldACL(zk.PermAll))
	p, err := c.Create(root+"/serverUri="+hostport+";version=3.1.3;sequence=", []byte(data), zk.FlagEphemeral|zk.FlagSequence, acl)
	if err != nil {
		t.Fatalf("register %s: %v", hostport, err)
	}
	return p
}

// publishedConf is HS2's znode data for a binary NONE server.
func publishedConf(host string, port int) string {
	return fmt.Sprintf("hive.server2.instance.uri=%s:%d;hive.server2.authentication=NONE;hive.server2.transport.mode=binary;"+
		"hive.server2.thrift.sasl.qop=auth;hive.server2.thrift.bind.host=%s;hive.server2.thrift.port=%d;hive.server2.use.SSL=false",
		host, port, host, port)
}

// discoveryRun runs a Discovery and records its updates.
type discoveryRun struct {
	mu      sync.Mutex
	lists   [][]Candidate
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan error
}

func runDiscovery(t *testing.T, d Discovery) *discoveryRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &discoveryRun{changed: make(chan struct{}, 1), cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- d.Run(ctx, func(cs []Candidate) {
			r.mu.Lock()
			r.lists = append(r.lists, cs)
			r.mu.Unlock()
			select {
			case r.changed <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *discoveryRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("discovery returned %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("discovery did not stop")
	}
}

func (r *discoveryRun) latest() ([]Candidate, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lists) == 0 {
		return nil, 0
	}
	return r.lists[len(r.lists)-1], len(r.lists)
}

// waitFor waits until the latest list satisfies cond.
func (r *discoveryRun) waitFor(t *testing.T, timeout time.Duration, cond func([]Candidate) error) []Candidate {
	t.Helper()
	var got []Candidate
	testenv.Eventually(t, timeout, func() error {
		l, n := r.latest()
		if n == 0 {
			return errors.New("no update yet")
		}
		got = l
		return cond(l)
	})
	return got
}

func addrs(cs []Candidate) []string {
	var out []string
	for _, c := range cs {
		a := c.Endpoint.Addr()
		if !c.Active {
			a += "(passive)"
		}
		out = append(out, a)
	}
	return out
}

// wantAddrs is a condition: exactly these endpoints, in this order.
func wantAddrs(want ...string) func([]Candidate) error {
	return func(cs []Candidate) error {
		got := addrs(cs)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("candidates %v, want %v", got, want)
		}
		return nil
	}
}
