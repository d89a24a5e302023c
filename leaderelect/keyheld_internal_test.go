package leaderelect

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hiveqd/hiveqd/etcdsync"
)

func TestKeyHeld(t *testing.T) {
	term := Term{Key: "/l/1", Rev: 7}
	kv := func(rev int64) *mvccpb.KeyValue { return &mvccpb.KeyValue{Key: []byte("/l/1"), CreateRevision: rev} }
	ev := func(typ mvccpb.Event_EventType, rev int64) *clientv3.Event {
		return &clientv3.Event{Type: typ, Kv: kv(rev)}
	}
	for _, tc := range []struct {
		name string
		u    etcdsync.Update
		held bool
	}{
		{"snapshot with our key", etcdsync.Update{Snapshot: true, Kvs: []*mvccpb.KeyValue{kv(7)}}, true},
		{"empty snapshot", etcdsync.Update{Snapshot: true}, false},
		{"snapshot of a recreated key", etcdsync.Update{Snapshot: true, Kvs: []*mvccpb.KeyValue{kv(9)}}, false},
		{"put of our key", etcdsync.Update{Events: []*clientv3.Event{ev(mvccpb.PUT, 7)}}, true},
		{"delete", etcdsync.Update{Events: []*clientv3.Event{ev(mvccpb.PUT, 7), ev(mvccpb.DELETE, 0)}}, false},
		{"put of a recreated key", etcdsync.Update{Events: []*clientv3.Event{ev(mvccpb.PUT, 9)}}, false},
	} {
		if got := keyHeld(term, tc.u) == nil; got != tc.held {
			t.Errorf("%s: held=%v, want %v", tc.name, got, tc.held)
		}
	}
}
