package replicas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/grpc/codes"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// Two HS2s registered in ZooKeeper: the leader picks the oldest
// registration, publishes it, and every replica serves from it under the
// same epoch; the other HS2 runs nothing.
func TestDiscoveryPicksOneHS2ForAllReplicas(t *testing.T) {
	e := start(t, setup{sims: 2})
	route, leader := e.agreed(10*time.Second, e.clients, nil)
	if route.Epoch == 0 {
		t.Fatalf("route %+v has no epoch", route)
	}
	if !slices.Contains(e.ids, leader) {
		t.Errorf("leader %q is not one of %v", leader, e.ids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The last replica's registration may reach the others a moment
	// after the route agreed.
	testenv.Eventually(t, 10*time.Second, func() error {
		for i, c := range e.clients {
			top, err := c.Topology(ctx)
			if err != nil {
				return err
			}
			if n := len(top.GetReplicas()); n != 3 {
				return fmt.Errorf("%s lists %d replicas", e.ids[i], n)
			}
		}
		return nil
	})
	for i, c := range e.clients {
		top, err := c.Topology(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if top.GetCoordination() != "etcd" || top.GetSelf().GetId() != e.ids[i] {
			t.Errorf("%s: coordination %q self %q", e.ids[i], top.GetCoordination(), top.GetSelf().GetId())
		}
		if n := len(top.GetReplicas()); n != 3 {
			t.Errorf("%s lists %d replicas, want 3: %v", e.ids[i], n, top.GetReplicas())
		}
		cs := harness.ConnectorState(top, connector)
		var cands []string
		for _, cd := range cs.GetCandidates() {
			cands = append(cands, harness.ServerAddr(cd.GetServer()))
		}
		if len(cands) != 2 || cands[0] != e.sims[0].Addr || cands[1] != e.sims[1].Addr {
			t.Errorf("%s: candidates %v, want [%s %s] in registration order", e.ids[i], cands, e.sims[0].Addr, e.sims[1].Addr)
		}
		if cs.GetChosenBy() != leader {
			t.Errorf("%s: route chosen by %q, want the leader %s", e.ids[i], cs.GetChosenBy(), leader)
		}
	}
	for i, c := range e.clients {
		r := mustQuery(t, c, "SELECT * FROM default.employees")
		if r.Server() != route.Server || r.First.GetEpoch() != route.Epoch || r.First.GetReplicaId() != e.ids[i] {
			t.Errorf("%s served from %s epoch %d by %q, want %+v by %s", e.ids[i], r.Server(), r.First.GetEpoch(), r.First.GetReplicaId(), route, e.ids[i])
		}
		if r.Rows == 0 || r.Schema == nil {
			t.Errorf("%s: employees gave %d rows, schema %v", e.ids[i], r.Rows, r.Schema)
		}
	}
	st, err := e.sims[1].Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.OperationsOpened != 0 {
		t.Errorf("the HS2 not chosen ran %d operations", st.OperationsOpened)
	}
	st, err = e.sims[0].Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.OperationsOpened < 3 {
		t.Errorf("the chosen HS2 ran %d operations, want at least 3", st.OperationsOpened)
	}
}

// HS2 registered under a namespace only a digest identity may list (HS2's
// secured ZooKeeper layout): replicas given zookeeper.digest_file discover
// it; a replica without the digest cannot and says so.
func TestDiscoveryWithZooKeeperDigest(t *testing.T) {
	const digest = "hive:s3cret"
	ns := namespace(t)
	lockNamespace(t, ns, digest)

	dir := t.TempDir()
	digestFile := filepath.Join(dir, "zk-digest")
	if err := os.WriteFile(digestFile, []byte(digest+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// A replica without the digest, started first so that its discovery
	// grace runs while the others start.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	noAuth, err := harness.NewFleet(bins, t.TempDir(), replicaConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica without digest:\n%s", noAuth.Logs(6000))
		}
		noAuth.Close()
	})
	_, blind, err := noAuth.StartReplica(ctx, "blind")
	if err != nil {
		t.Fatal(err)
	}

	e := start(t, setup{sims: 2, digest: digest}, func(c *harness.ReplicaConfig) { c.DigestFile = digestFile })
	route, _ := e.agreed(10*time.Second, e.clients, nil)
	for i, c := range e.clients {
		r := mustQuery(t, c, "SELECT 1")
		if r.Server() != route.Server || r.First.GetEpoch() != route.Epoch {
			t.Errorf("%s served from %s epoch %d, want %+v", e.ids[i], r.Server(), r.First.GetEpoch(), route)
		}
	}

	r := query(t, blind, 10*time.Second, "SELECT 1")
	code, info := harness.ErrorInfo(r.Err)
	if code != codes.Unavailable || info.GetReason() != "NO_HS2_AVAILABLE" {
		t.Fatalf("without the digest: %v (reason %q), want UNAVAILABLE NO_HS2_AVAILABLE", r.Err, info.GetReason())
	}
	// Once discovery's grace ends, the route says why: ZooKeeper refused.
	testenv.Eventually(t, 30*time.Second, func() error {
		top, err := blind.Topology(ctx)
		if err != nil {
			return err
		}
		reason := harness.ConnectorState(top, connector).GetReason()
		if !strings.Contains(strings.ToLower(reason), "auth") {
			return fmt.Errorf("reason %q does not mention the refused authentication", reason)
		}
		return nil
	})
}

// lockNamespace creates the namespace znode readable and writable only by
// the digest identity, and checks that ZooKeeper enforces it.
func lockNamespace(t *testing.T, ns, digest string) {
	t.Helper()
	user, pass, _ := strings.Cut(digest, ":")
	conn, _, err := zk.Connect(zooKeeper.Servers(), 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddAuth("digest", []byte(digest)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create("/"+ns, nil, 0, zk.DigestACL(zk.PermAll, user, pass)); err != nil {
		t.Fatalf("create /%s: %v", ns, err)
	}
	anon, _, err := zk.Connect(zooKeeper.Servers(), 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, _, err := anon.Children("/" + ns); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("listing /%s without the digest: %v, want %v", ns, err, zk.ErrNoAuth)
	}
}
