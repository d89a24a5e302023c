package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ZooKeeperJar is where Debian's zookeeper package puts the server.
var ZooKeeperJar = "/usr/share/java/zookeeper.jar"

// ZooKeeperOptions tune a test server.
type ZooKeeperOptions struct {
	// TickTime bounds session timeouts to [2,20] ticks; the default 200ms lets
	// tests expire a session in a few seconds.
	TickTime time.Duration
	Dir      string // default: a new temporary directory
}

// ZooKeeper is a standalone Debian ZooKeeper server on a loopback port.
type ZooKeeper struct {
	opts ZooKeeperOptions
	port int
	dir  string
	own  bool // dir was made here; Close removes it
	mu   sync.Mutex
	proc *process
}

// StartZooKeeperServer starts a server and waits until it accepts sessions.
func StartZooKeeperServer(ctx context.Context, opts ZooKeeperOptions) (*ZooKeeper, error) {
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		return nil, fmt.Errorf("zookeeper not installed (%s): run scripts/install-deps.sh: %w", ZooKeeperJar, err)
	}
	if opts.TickTime == 0 {
		opts.TickTime = 200 * time.Millisecond
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "hiveqd-zk-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	z := &ZooKeeper{opts: opts, port: port, dir: dir, own: opts.Dir == ""}
	cfg := fmt.Sprintf("tickTime=%d\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\nmaxClientCnxns=0\n",
		opts.TickTime.Milliseconds(), filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if err := z.Start(ctx); err != nil {
		return nil, err
	}
	return z, nil
}

// StartZooKeeper starts a server for t and stops it when t ends.
func StartZooKeeper(t testing.TB) *ZooKeeper {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	z, err := StartZooKeeperServer(ctx, ZooKeeperOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start zookeeper: %v", err)
	}
	t.Cleanup(z.Stop)
	return z
}

// Addr is the client address, 127.0.0.1:port.
func (z *ZooKeeper) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(z.port)) }

// Servers is Addr as the list go-zookeeper's Connect takes.
func (z *ZooKeeper) Servers() []string { return []string{z.Addr()} }

// Start (re)starts the server on the same port and data directory, and waits
// until `srvr` answers: `ruok` can answer before sessions are accepted.
func (z *ZooKeeper) Start(ctx context.Context) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.proc != nil && z.proc.exited() == nil {
		return nil
	}
	p, err := startProcess("java", []string{"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-cp", "/etc/zookeeper/conf:" + ZooKeeperJar,
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(z.dir, "zoo.cfg")},
		filepath.Join(z.dir, "zookeeper.log"))
	if err != nil {
		return fmt.Errorf("start zookeeper: %w", err)
	}
	z.proc = p
	err = WaitFor(ctx, func() error {
		if err := p.exited(); err != nil {
			return err
		}
		return z.srvr()
	})
	if err != nil {
		p.signal(syscall.SIGKILL, time.Second)
		return fmt.Errorf("zookeeper on %s not serving: %w\n%s", z.Addr(), err, tailFile(filepath.Join(z.dir, "zookeeper.log"), 2000))
	}
	return nil
}

func (z *ZooKeeper) srvr() error {
	c, err := net.DialTimeout("tcp", z.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Mode:") {
			return nil
		}
	}
	return fmt.Errorf("srvr: no Mode line")
}

// Stop shuts the server down (SIGTERM, then SIGKILL); Start brings it back.
func (z *ZooKeeper) Stop() { z.halt(syscall.SIGTERM) }

// Kill stops the server with SIGKILL.
func (z *ZooKeeper) Kill() { z.halt(syscall.SIGKILL) }

func (z *ZooKeeper) halt(sig syscall.Signal) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.proc.signal(sig, 5*time.Second)
}

// Restart stops and starts the server, keeping its data.
func (z *ZooKeeper) Restart(ctx context.Context) error {
	z.Stop()
	return z.Start(ctx)
}

// Dir is the server's directory (config, data, log).
func (z *ZooKeeper) Dir() string { return z.dir }

// Close stops the server and removes its directory if StartZooKeeperServer
// made it.
func (z *ZooKeeper) Close() {
	z.Kill()
	if z.own {
		_ = os.RemoveAll(z.dir)
	}
}
