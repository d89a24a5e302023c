package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EtcdBinary is Debian's etcd-server; EtcdctlBinary is etcd-client's
// etcdctl, for snapshots.
var (
	EtcdBinary    = "/usr/bin/etcd"
	EtcdctlBinary = "/usr/bin/etcdctl"
)

// Etcd is a single-member etcd server on loopback ports.
type Etcd struct {
	dir        string
	own        bool
	clientPort int
	peerPort   int
	mu         sync.Mutex
	proc       *process
}

// StartEtcdServer starts etcd in dir ("" = a new temporary directory) and
// waits until it serves.
func StartEtcdServer(ctx context.Context, dir string) (*Etcd, error) {
	if _, err := os.Stat(EtcdBinary); err != nil {
		return nil, fmt.Errorf("etcd not installed (%s): run scripts/install-deps.sh: %w", EtcdBinary, err)
	}
	e := &Etcd{dir: dir}
	if dir == "" {
		d, err := os.MkdirTemp("", "hiveqd-etcd-")
		if err != nil {
			return nil, err
		}
		e.dir, e.own = d, true
	}
	var err error
	if e.clientPort, err = FreePort(); err != nil {
		return nil, err
	}
	if e.peerPort, err = FreePort(); err != nil {
		return nil, err
	}
	if err := e.Start(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// StartEtcd starts etcd for t and stops it when t ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := StartEtcdServer(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(e.Kill)
	return e
}

// Endpoint is the client URL host:port.
func (e *Etcd) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(e.clientPort) }

// Endpoints is Endpoint as the list clientv3.Config takes.
func (e *Etcd) Endpoints() []string { return []string{e.Endpoint()} }

// Start (re)starts etcd on the same ports and data.
func (e *Etcd) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc != nil && e.proc.exited() == nil {
		return nil
	}
	client := "http://" + e.Endpoint()
	peer := "http://127.0.0.1:" + strconv.Itoa(e.peerPort)
	p, err := startProcess(EtcdBinary, []string{
		"--name", "default", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default=" + peer, "--initial-cluster-state", "new",
		"--log-level", "warn",
	}, filepath.Join(e.dir, "etcd.log"))
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	e.proc = p
	hc := &http.Client{Timeout: time.Second}
	err = WaitFor(ctx, func() error {
		if err := p.exited(); err != nil {
			return err
		}
		resp, err := hc.Get(client + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.signal(syscall.SIGKILL, time.Second)
		return fmt.Errorf("etcd on %s not serving: %w\n%s", e.Endpoint(), err, tailFile(filepath.Join(e.dir, "etcd.log"), 2000))
	}
	return nil
}

// Stop shuts etcd down gracefully; Kill with SIGKILL. Start brings it back.
func (e *Etcd) Stop() { e.halt(syscall.SIGTERM) }
func (e *Etcd) Kill() { e.halt(syscall.SIGKILL) }

func (e *Etcd) halt(sig syscall.Signal) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.proc.signal(sig, 5*time.Second)
}

// Restart stops and starts etcd, keeping its data.
func (e *Etcd) Restart(ctx context.Context) error {
	e.Stop()
	return e.Start(ctx)
}

// SaveSnapshot writes a snapshot of etcd's data to path (etcdctl snapshot
// save).
func (e *Etcd) SaveSnapshot(ctx context.Context, path string) error {
	out, err := exec.CommandContext(ctx, EtcdctlBinary, "--endpoints", e.Endpoint(), "snapshot", "save", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("etcdctl snapshot save: %w: %s", err, out)
	}
	return nil
}

// RestoreSnapshot stops etcd, replaces its data with the snapshot at path
// (etcdctl snapshot restore: keys, leases and revision as they were when it
// was saved) and starts it again on the same ports: an operator's
// restore from backup.
func (e *Etcd) RestoreSnapshot(ctx context.Context, path string) error {
	e.Stop()
	data := filepath.Join(e.dir, "data")
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	peer := "http://127.0.0.1:" + strconv.Itoa(e.peerPort)
	out, err := exec.CommandContext(ctx, EtcdctlBinary, "snapshot", "restore", path, "--data-dir", data,
		"--name", "default", "--initial-cluster", "default="+peer, "--initial-advertise-peer-urls", peer).CombinedOutput()
	if err != nil {
		return fmt.Errorf("etcdctl snapshot restore: %w: %s", err, out)
	}
	return e.Start(ctx)
}

// Close kills etcd and removes its directory if StartEtcdServer made it.
func (e *Etcd) Close() {
	e.Kill()
	if e.own {
		_ = os.RemoveAll(e.dir)
	}
}
