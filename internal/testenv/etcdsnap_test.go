package testenv

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEtcdRestoreSnapshot: a value written after the snapshot is gone once
// the snapshot is restored, and etcd serves on the same port again.
func TestEtcdRestoreSnapshot(t *testing.T) {
	e := StartEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snap.db")
	if err := e.SaveSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	put, err := c.Put(ctx, "k", "new")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RestoreSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	var got *clientv3.GetResponse
	err = WaitFor(ctx, func() error {
		var err error
		got, err = c.Get(ctx, "k")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "old" {
		t.Fatalf("after restore k = %v, want old", got.Kvs)
	}
	if got.Header.Revision >= put.Header.Revision {
		t.Fatalf("revision %d after restore, want below %d", got.Header.Revision, put.Header.Revision)
	}
}
