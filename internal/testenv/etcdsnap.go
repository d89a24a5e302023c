package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// EtcdctlBinary is Debian's etcd-client (etcd 3.4: snapshot save and
// restore are etcdctl's; etcdutl came with 3.5).
var EtcdctlBinary = "/usr/bin/etcdctl"

// SaveSnapshot writes a snapshot of the running etcd's keyspace to file
// (etcdctl snapshot save).
func (e *Etcd) SaveSnapshot(ctx context.Context, file string) error {
	return etcdctl(ctx, "--endpoints", "http://"+e.Endpoint(), "snapshot", "save", file)
}

// RestoreSnapshot replaces etcd's data with a snapshot, as an operator
// recovering from data loss does: stop etcd, restore the snapshot into a
// new data directory (etcdctl snapshot restore), start etcd on the same
// ports. Everything written since the snapshot is gone, and the revision
// goes back to the snapshot's.
func (e *Etcd) RestoreSnapshot(ctx context.Context, file string) error {
	e.Stop()
	data := filepath.Join(e.dir, "data")
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	peer := "http://127.0.0.1:" + strconv.Itoa(e.peerPort)
	if err := etcdctl(ctx, "snapshot", "restore", file, "--data-dir", data, "--name", "default",
		"--initial-cluster", "default="+peer, "--initial-advertise-peer-urls", peer); err != nil {
		return err
	}
	return e.Start(ctx)
}

func etcdctl(ctx context.Context, args ...string) error {
	if _, err := os.Stat(EtcdctlBinary); err != nil {
		return fmt.Errorf("etcdctl not installed (%s, Debian etcd-client): run scripts/install-deps.sh: %w", EtcdctlBinary, err)
	}
	cmd := exec.CommandContext(ctx, EtcdctlBinary, args...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("etcdctl %v: %w\n%s", args, err, out)
	}
	return nil
}
