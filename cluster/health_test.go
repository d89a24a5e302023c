package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/registry"
	"github.com/hiveqd/hiveqd/routing"
	"github.com/hiveqd/hiveqd/traffic"
)

// A crash (every probe refused) publishes PrevDead: running queries on
// every replica, followers included, lose their route. A manual failover
// drains by default and aborts only when asked.
func TestEtcdDeadVersusDrain(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	epochMonitor(t, cli)
	p := newProber()
	rs := threeReplicas(t, e.Endpoints(), p)
	leader := waitLeader(t, 10*time.Second, rs...)
	waitRoute(t, 10*time.Second, "hive", s1, 1, rs...)
	var follower *replica
	for _, r := range rs {
		if r != leader {
			follower = r
		}
	}
	cur := func(r *replica) *routing.Current {
		c, err := r.node.Routes().Get("hive")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Manual failover, default: drain, running queries untouched.
	c1 := cur(follower)
	rt, err := follower.node.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", Reason: "patch"})
	var nl *cluster.NotLeaderError
	if !errors.As(err, &nl) {
		t.Fatalf("follower Failover: %v, %+v", err, rt)
	}
	rt, err = leader.node.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", Reason: "patch"})
	if err != nil {
		t.Fatal(err)
	}
	if !rt.Drain || rt.PrevDead || *rt.Endpoint != s2 {
		t.Fatalf("drained failover route %+v", rt)
	}
	waitRoute(t, 10*time.Second, "hive", s2, 2, rs...)
	select {
	case <-c1.Lost():
		t.Fatal("a drained switch ended the follower's running queries")
	case <-c1.Superseded():
	}

	// Manual failover with AbortRunning: PrevDead.
	c2 := cur(follower)
	p.set(s1, false)
	testenv.Eventually(t, 10*time.Second, func() error {
		rt, err = leader.node.Failover(context.Background(), cluster.FailoverRequest{Connector: "hive", Reason: "kill", AbortRunning: true})
		return err
	})
	if rt.Drain || !rt.PrevDead || *rt.Endpoint != s1 {
		t.Fatalf("aborting failover route %+v", rt)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		select {
		case <-c2.Lost():
			return nil
		default:
			return errors.New("follower's route not lost")
		}
	})

	// Crash: refused probes declare the server dead.
	c3 := cur(follower)
	p.set(s1, true)
	leader.node.ReportFailure("hive", rt.Epoch, s1.Addr(), fmt.Errorf("dial: %w", errRefusedSys))
	testenv.Eventually(t, 10*time.Second, func() error {
		select {
		case <-c3.Lost():
			return nil
		default:
			return errors.New("follower's route not lost")
		}
	})
	if next := c3.Next(); next == nil || !next.PrevDead || next.Drain {
		t.Fatalf("route after the crash %+v", next)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if r, _ := follower.route("hive"); r.Endpoint == nil || *r.Endpoint != s2 {
			return fmt.Errorf("follower route %+v", r)
		}
		return nil
	})
}

var errRefusedSys = syscall.ECONNREFUSED

// Followers' traffic evidence reaches the leader through their lease-bound
// traffic/<id> keys, only while they have traffic.
func TestEtcdTrafficEvidence(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	p := newProber()
	obs := map[string]*traffic.Observer{}
	var rs []*replica
	for _, id := range []string{"r1", "r2"} {
		o := traffic.New(nil)
		obs[id] = o
		rs = append(rs, startReplica(t, id, e.Endpoints(), hiveConn(p), func(c *cluster.EtcdConfig) {
			c.Traffic = o
			c.TrafficInterval = 50 * time.Millisecond
		}))
	}
	leader := waitLeader(t, 10*time.Second, rs...)
	follower := rs[0]
	if follower == leader {
		follower = rs[1]
	}
	before := time.Now()
	obs[follower.id].CallStarted("hive", s1.Addr())(nil)
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := obs[leader.id].LastAnswer("hive", s1.Addr()); got.Before(before.Add(-time.Second)) {
			return fmt.Errorf("leader's evidence: last answer %v", got)
		}
		return nil
	})
	// The key is the follower's, bound to its lease: it vanishes with it.
	key := "/hiveqd/" + clusterName + "/traffic/" + follower.id
	resp, err := cli.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("traffic key: %v %+v", err, resp)
	}
	var s traffic.Summary
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil || len(s.Servers) != 1 {
		t.Fatalf("summary %s: %v", resp.Kvs[0].Value, err)
	}
	// Idle: no more writes.
	rev := resp.Kvs[0].ModRevision
	time.Sleep(300 * time.Millisecond) // six intervals with nothing to say
	resp, err = cli.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != rev {
		t.Fatalf("an idle replica rewrote its traffic key: %v %+v", err, resp)
	}
}

// 12.2: a new leader probes the server it adopts before discovery answers;
// a dead adopted server gives way to "none" (PrevDead) instead of staying
// published while the registry is silent.
func TestEtcdAdoptedDeadBeforeDiscovery(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	old := routing.Route{Connector: "hive", Epoch: 4, Endpoint: &s1, Reason: "previous leader", ChosenBy: "gone", ChosenAt: time.Now().UTC()}
	v, _ := json.Marshal(old)
	if _, err := cli.Put(context.Background(), "/hiveqd/"+clusterName+"/connectors/hive", string(v)); err != nil {
		t.Fatal(err)
	}
	p := newProber()
	p.set(s1, true)
	conns := []cluster.ConnectorConfig{{Name: "hive", NewSelector: func() cluster.Selector {
		return registry.NewSelector(registry.SelectorConfig{
			Connector: "hive", Discovery: silentDiscovery{}, Prober: p,
			ProbeInterval: 100 * time.Millisecond, ProbeTimeout: time.Second, Logger: logger(),
		})
	}}}
	r := startReplica(t, "r1", e.Endpoints(), conns)
	testenv.Eventually(t, 15*time.Second, func() error {
		got, _ := r.route("hive")
		if got.Epoch != 5 || got.Endpoint != nil || !got.PrevDead {
			return fmt.Errorf("route %+v", got)
		}
		return nil
	})
	// 12.1: a failover while discovery has not answered is refused at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.node.Failover(ctx, cluster.FailoverRequest{Connector: "hive"}); !errors.Is(err, registry.ErrNotSynced) {
		t.Fatalf("failover before discovery answered: %v", err)
	}
}

// silentDiscovery never answers (an unreachable registry).
type silentDiscovery struct{}

func (silentDiscovery) Run(ctx context.Context, _ func([]registry.Candidate)) error {
	<-ctx.Done()
	return nil
}
