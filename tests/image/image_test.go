//go:build image

package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/internal/testenv"
)

const tag = "imagetest"

var (
	skipReason string
	root       string
)

// podman runs podman with the runtime that works on these hosts (crun
// fails on hybrid cgroups).
func podman(args ...string) *exec.Cmd {
	return exec.Command("podman", append([]string{"--runtime", "runc"}, args...)...)
}

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	root = filepath.Join(filepath.Dir(file), "..", "..")
	switch {
	case lookPath("podman") != nil:
		skipReason = "podman is not installed (scripts/install-deps.sh installs podman and runc)"
	case podman("info").Run() != nil:
		skipReason = "podman cannot run here (podman --runtime runc info fails)"
	default:
		start := time.Now()
		cmd := exec.Command(filepath.Join(root, "scripts", "image.sh"), tag)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "make image failed: %v\n%s", err, out)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "image: built localhost/hiveqd:%s and localhost/hs2sim:%s in %s\n", tag, tag, time.Since(start).Round(time.Second))
	}
	os.Exit(m.Run())
}

func lookPath(name string) error { _, err := exec.LookPath(name); return err }

func requirePodman(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// run starts a container and removes it when the test ends.
func run(t *testing.T, args ...string) string {
	t.Helper()
	base := []string{"run", "-d", "--read-only", "--user", "65532:65532", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	out, err := podman(append(base, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman run %v: %v\n%s", args, err, out)
	}
	id := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(id, '\n'); i >= 0 {
		id = id[i+1:]
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := podman("logs", "--tail", "30", id).CombinedOutput()
			t.Logf("container %.12s logs:\n%s", id, logs)
		}
		podman("rm", "-f", "-t", "2", id).Run()
	})
	return id
}

func freePort(t *testing.T) int {
	p, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func grpcurl(t *testing.T) string {
	for _, p := range []string{filepath.Join(root, ".tools", "bin", "grpcurl")} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl is not installed (scripts/install-deps.sh puts it in .tools/bin)")
	}
	return p
}

// TestDevContainer: `hiveqd dev` in the image, as uid 65532 with a
// read-only root filesystem, answers grpcurl through a published port.
func TestDevContainer(t *testing.T) {
	requirePodman(t)
	gc := grpcurl(t)
	port := freePort(t)
	id := run(t, "-p", fmt.Sprintf("127.0.0.1:%d:9090", port), "localhost/hiveqd:"+tag)
	out, err := podman("inspect", "-f", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", id).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "65532:65532 true" {
		t.Fatalf("inspect: %q %v, want user 65532:65532 and a read-only root", out, err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var last []byte
	testenv.Eventually(t, 90*time.Second, func() error {
		cmd := exec.Command(gc, "-plaintext", "-d", `{"statement":"SELECT * FROM employees LIMIT 3"}`, addr, "hiveq.v1.QueryService/Execute")
		last, err = cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(last), "QUERY_STATE_FINISHED") {
			return fmt.Errorf("grpcurl: %v\n%s", err, last)
		}
		return nil
	})
	t.Logf("grpcurl through the published port:\n%.600s", last)
	if uid, _ := podman("exec", id, "/usr/local/bin/hiveqd", "version").CombinedOutput(); len(uid) == 0 {
		t.Fatal("hiveqd version in the container printed nothing")
	}
}

type replica struct {
	id, container string
	addr          string
}

func topology(ctx context.Context, addr string) (*hiveqv1.Topology, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := hiveqv1.NewClusterServiceClient(conn).GetTopology(ctx, &hiveqv1.GetTopologyRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetTopology(), nil
}

// TestClusterContainers: three containerised replicas, with etcd and
// ZooKeeper on the host network (internal/testenv, loopback ports) and two
// HS2 simulators registered in ZooKeeper, elect a leader, route to an HS2,
// and fail over when the leader's container is stopped and when the HS2
// in use goes away.
func TestClusterContainers(t *testing.T) {
	requirePodman(t)
	ctx := context.Background()
	etcd := testenv.StartEtcd(t)
	zk := testenv.StartZooKeeper(t)
	var sims []*hs2sim.Server
	for range 2 {
		s, err := hs2sim.Start(ctx, hs2sim.Config{Listen: "127.0.0.1:0", ZK: zk.Servers(), AdvertiseHost: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		sims = append(sims, s)
	}
	var reps []replica
	for i := 1; i <= 3; i++ {
		r := replica{id: "c" + strconv.Itoa(i), addr: "127.0.0.1:" + strconv.Itoa(freePort(t))}
		r.container = run(t, "--network", "host", "localhost/hiveqd:"+tag, "serve",
			"--listen", r.addr, "--metrics-listen", "127.0.0.1:"+strconv.Itoa(freePort(t)),
			"--replica-id", r.id, "--cluster", "imagetest", "--coordination", "etcd", "--etcd", etcd.Endpoint(),
			"--lease-ttl", "3s", "--zk", zk.Addr(), "--log-format", "json")
		reps = append(reps, r)
	}
	leaderOf := func(rs []replica) (string, string, error) {
		var leader, server string
		for _, r := range rs {
			top, err := topology(ctx, r.addr)
			if err != nil {
				return "", "", fmt.Errorf("%s: %w", r.id, err)
			}
			if top.GetLeader() == nil || len(top.GetConnectors()) == 0 || top.GetConnectors()[0].GetServer() == nil {
				return "", "", fmt.Errorf("%s: no leader or route yet", r.id)
			}
			if leader != "" && top.GetLeader().GetId() != leader {
				return "", "", fmt.Errorf("replicas disagree on the leader: %s, %s", leader, top.GetLeader().GetId())
			}
			leader = top.GetLeader().GetId()
			s := top.GetConnectors()[0].GetServer()
			server = s.GetHost() + ":" + strconv.Itoa(int(s.GetPort()))
		}
		return leader, server, nil
	}
	var leader, server string
	testenv.Eventually(t, 2*time.Minute, func() (err error) {
		leader, server, err = leaderOf(reps)
		return err
	})
	t.Logf("leader %s, route %s", leader, server)

	// Stop the leader's container: another replica takes over.
	var rest []replica
	for _, r := range reps {
		if r.id == leader {
			start := time.Now()
			if out, err := podman("stop", "-t", "10", r.container).CombinedOutput(); err != nil {
				t.Fatalf("podman stop: %v\n%s", err, out)
			}
			t.Logf("stopped %s in %s", r.id, time.Since(start).Round(time.Millisecond))
		} else {
			rest = append(rest, r)
		}
	}
	testenv.Eventually(t, time.Minute, func() error {
		l, _, err := leaderOf(rest)
		if err == nil && l == leader {
			err = fmt.Errorf("still led by %s", l)
		}
		if err == nil {
			leader = l
		}
		return err
	})
	t.Logf("new leader %s", leader)

	// The HS2 in use goes away: the new leader routes to the other one.
	for _, s := range sims {
		if s.Addr() == server {
			s.Close()
		}
	}
	testenv.Eventually(t, time.Minute, func() error {
		_, s, err := leaderOf(rest)
		if err == nil && s == server {
			err = fmt.Errorf("still routed to %s", s)
		}
		return err
	})
}
