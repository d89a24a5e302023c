// Package chaos is hiveqd's chaos suite: three `hiveqd serve --coordination
// etcd` replicas, each reaching etcd and ZooKeeper through its own fault
// proxy, three HS2 simulators registered in ZooKeeper, a concurrent Execute
// workload on every replica, and a fault injector that crashes, hangs,
// slows, drains and cuts things, and compacts, deletes from and restores
// etcd (etcdfaults.go), at random times chosen from a recorded seed. After every fault it checks that the replicas converge; at the end
// it checks every stream's outcome, epochs, leaks and process resources.
//
// Run is shared by the tests (smoke, short and long) and by the command
// tests/chaos/cmd/chaos.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

const connector = "hive"

// Timings of the fleet: short enough that a run sees many faults, long
// enough for a race-built fleet on 2 noisy cores.
const (
	leaseTTL         = 3 * time.Second
	zkSessionTimeout = 4 * time.Second
	// idlePerKey is hiveqd's default pool.max_idle_per_key: the bound of
	// idle HS2 sessions a replica may keep per (server, user).
	idlePerKey = 16
)

// BuildBinaries builds hiveqd (with the race detector when race) and
// hs2sim (never: its SQL engine is too slow under -race for 2 cores) into
// dir.
func BuildBinaries(ctx context.Context, dir string, race bool) (map[string]string, error) {
	h, err := harness.Build(ctx, filepath.Join(dir, "hiveqd-bin"), race, "hiveqd")
	if err != nil {
		return nil, err
	}
	s, err := harness.Build(ctx, filepath.Join(dir, "sim-bin"), false, "hs2sim")
	if err != nil {
		return nil, err
	}
	return map[string]string{"hiveqd": h["hiveqd"], "hs2sim": s["hs2sim"]}, nil
}

// replica is one hiveqd process with its own fault proxies.
type replica struct {
	id          string
	etcdProxy   *testenv.Proxy
	zkProxy     *testenv.Proxy
	metricsAddr string
}

// env is everything one run starts.
type env struct {
	dir      string
	zk       *testenv.ZooKeeper
	etcd     *testenv.Etcd
	fleet    *harness.Fleet
	replicas []*replica
}

func startEnv(ctx context.Context, bins map[string]string, dir string, nSims, nReplicas int) (_ *env, err error) {
	e := &env{dir: dir}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if err := errors.Join(os.MkdirAll(filepath.Join(dir, "zk"), 0o755), os.MkdirAll(filepath.Join(dir, "etcd"), 0o755)); err != nil {
		return nil, err
	}
	if e.zk, err = testenv.StartZooKeeperServer(ctx, testenv.ZooKeeperOptions{Dir: filepath.Join(dir, "zk")}); err != nil {
		return nil, err
	}
	if e.etcd, err = testenv.StartEtcdServer(ctx, filepath.Join(dir, "etcd")); err != nil {
		return nil, err
	}
	cfg := harness.ReplicaConfig{
		Cluster:          "chaos-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Etcd:             e.etcd.Endpoints(), // each replica overrides it with --etcd <its proxy>
		LeaseTTL:         leaseTTL,
		ShutdownGrace:    3 * time.Second,
		ZooKeeper:        e.zk.Servers(),
		Namespace:        "hs2-chaos",
		ZKSessionTimeout: zkSessionTimeout,
		ProbeInterval:    100 * time.Millisecond,
		ProbeTimeout:     time.Second,
		ProbeFailures:    2,
		Cooldown:         30 * time.Second,
	}
	if e.fleet, err = harness.NewFleet(bins, dir, cfg); err != nil {
		return nil, err
	}
	for i := range nSims {
		if _, err := e.fleet.StartSim(ctx, fmt.Sprintf("sim-%c", 'a'+i)); err != nil {
			return nil, err
		}
	}
	for i := range nReplicas {
		r := &replica{id: fmt.Sprintf("r%d", i+1)}
		e.replicas = append(e.replicas, r)
		if r.etcdProxy, err = testenv.NewProxy(e.etcd.Endpoint()); err != nil {
			return nil, err
		}
		if r.zkProxy, err = testenv.NewProxy(e.zk.Addr()); err != nil {
			return nil, err
		}
		port, err := testenv.FreePort()
		if err != nil {
			return nil, err
		}
		r.metricsAddr = "127.0.0.1:" + strconv.Itoa(port)
		// Flags override the shared YAML: this replica's etcd and
		// ZooKeeper are its proxies.
		if _, _, err := e.fleet.StartReplica(ctx, r.id,
			"--etcd", r.etcdProxy.Addr(), "--zk", r.zkProxy.Addr(), "--metrics-listen", r.metricsAddr); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *env) close() {
	if e.fleet != nil {
		e.fleet.Close()
	}
	for _, r := range e.replicas {
		if r.etcdProxy != nil {
			r.etcdProxy.Close()
		}
		if r.zkProxy != nil {
			r.zkProxy.Close()
		}
	}
	if e.etcd != nil {
		e.etcd.Close()
	}
	if e.zk != nil {
		e.zk.Close()
	}
	http.DefaultClient.CloseIdleConnections()
}

func (e *env) clients() []*harness.Client { return e.fleet.Clients }

// alive are the clients of replicas whose process runs.
func (e *env) alive() []*harness.Client {
	var out []*harness.Client
	for i, h := range e.fleet.Replicas {
		select {
		case <-h.Done():
		default:
			out = append(out, e.fleet.Clients[i])
		}
	}
	return out
}

// agreed waits until every replica agrees on leader and route.
func (e *env) agreed(ctx context.Context, timeout time.Duration) (harness.Route, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return harness.WaitAgreed(ctx, e.clients(), connector, func(r harness.Route, _ string) error {
		if r.Server == "" {
			return fmt.Errorf("no server routed (epoch %d)", r.Epoch)
		}
		return nil
	})
}

// procStats are a process's resources read from /proc.
type procStats struct {
	FDs        int
	RSSKiB     int64
	Goroutines int // from go_goroutines on --metrics-listen; -1 when unknown
}

func readProc(ctx context.Context, pid int, metricsAddr string) (procStats, error) {
	st := procStats{Goroutines: -1}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return st, err
	}
	st.FDs = len(ents)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			st.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if metricsAddr != "" {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(body), "\n") {
				if v, ok := strings.CutPrefix(l, "go_goroutines "); ok {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						st.Goroutines = int(f)
					}
				}
			}
		}
	}
	return st, nil
}

// registered lists the HS2 addresses registered in the fleet's ZooKeeper
// namespace (znodes "serverUri=host:port;version=...;sequence=...").
func (e *env) registered(ctx context.Context) (map[string]bool, error) {
	conn, events, err := zk.Connect(e.zk.Servers(), 4*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	for {
		select {
		case ev := <-events:
			if ev.State != zk.StateHasSession {
				continue
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		break
	}
	kids, _, err := conn.Children("/" + e.fleet.Config.Namespace)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, k := range kids {
		for _, part := range strings.Split(k, ";") {
			if v, ok := strings.CutPrefix(part, "serverUri="); ok {
				out[v] = true
			}
		}
	}
	return out, nil
}

// allRegistered waits until every simulator is registered.
func (e *env) allRegistered(ctx context.Context, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n := 0
	err := testenv.WaitFor(ctx, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		reg, err := e.registered(cctx)
		if err != nil {
			return err
		}
		n = 0
		for _, s := range e.fleet.Sims {
			if reg[s.Addr] {
				n++
			}
		}
		if n < len(e.fleet.Sims) {
			return fmt.Errorf("%d of %d simulators registered: %v", n, len(e.fleet.Sims), reg)
		}
		return nil
	})
	return n, err
}

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}
