package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

// ReplicaConfig is the YAML file the multi-process suites give every
// replica of a fleet; per-replica settings (id, listen address) are flags.
// Zero fields keep hiveqd's defaults.
type ReplicaConfig struct {
	Cluster       string
	Coordination  string // "etcd" (default when Etcd is set) or "standalone"
	Etcd          []string
	LeaseTTL      time.Duration
	ShutdownGrace time.Duration
	LogLevel      string

	Connector        string // default "hive"
	ZooKeeper        []string
	Namespace        string
	DigestFile       string
	ZKSessionTimeout time.Duration
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	ProbeFailures    int
	Cooldown         time.Duration
}

// YAML renders the configuration file.
func (c ReplicaConfig) YAML() string {
	var b strings.Builder
	line := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	list := func(ss []string) string {
		q := make([]string, len(ss))
		for i, s := range ss {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	if c.Cluster != "" {
		line(0, "cluster: %q", c.Cluster)
	}
	coord := c.Coordination
	if coord == "" {
		coord = "standalone"
		if len(c.Etcd) > 0 {
			coord = "etcd"
		}
	}
	line(0, "coordination: %s", coord)
	if len(c.Etcd) > 0 {
		line(0, "etcd:")
		line(1, "endpoints: %s", list(c.Etcd))
		if c.LeaseTTL > 0 {
			line(1, "lease_ttl: %s", c.LeaseTTL)
		}
	}
	if c.ShutdownGrace > 0 {
		line(0, "shutdown_grace: %s", c.ShutdownGrace)
	}
	if c.LogLevel != "" {
		line(0, "log:")
		line(1, "level: %s", c.LogLevel)
	}
	name := c.Connector
	if name == "" {
		name = "hive"
	}
	line(0, "connectors:")
	line(1, "- name: %q", name)
	line(2, "discovery: zookeeper")
	line(2, "zookeeper:")
	line(3, "servers: %s", list(c.ZooKeeper))
	if c.Namespace != "" {
		line(3, "namespace: %q", c.Namespace)
	}
	if c.DigestFile != "" {
		line(3, "digest_file: %q", c.DigestFile)
	}
	if c.ZKSessionTimeout > 0 {
		line(3, "session_timeout: %s", c.ZKSessionTimeout)
	}
	if c.ProbeInterval > 0 || c.ProbeTimeout > 0 || c.ProbeFailures > 0 || c.Cooldown > 0 {
		line(2, "probe:")
		if c.ProbeInterval > 0 {
			line(3, "interval: %s", c.ProbeInterval)
		}
		if c.ProbeTimeout > 0 {
			line(3, "timeout: %s", c.ProbeTimeout)
		}
		if c.ProbeFailures > 0 {
			line(3, "failures: %d", c.ProbeFailures)
		}
		if c.Cooldown > 0 {
			line(3, "cooldown: %s", c.Cooldown)
		}
	}
	return b.String()
}

// Fleet is a set of hs2sim and hiveqd processes sharing one ZooKeeper
// namespace (and, in etcd mode, one etcd cluster name): the layout of the
// multi-process replica tests and the failover measurements. ZooKeeper and
// etcd themselves belong to the caller.
type Fleet struct {
	Bins       map[string]string // "hiveqd" and "hs2sim" paths
	Dir        string            // config file and process logs
	Config     ReplicaConfig
	ConfigPath string
	// SimArgs are added to every simulator's command line (e.g. --zk-digest).
	SimArgs []string

	mu       sync.Mutex
	Sims     []*Sim
	Replicas []*Hiveqd
	Clients  []*Client // Clients[i] talks to Replicas[i]
}

// NewFleet writes cfg to dir/hiveqd.yaml; start processes with StartSim
// and StartReplica.
func NewFleet(bins map[string]string, dir string, cfg ReplicaConfig) (*Fleet, error) {
	f := &Fleet{Bins: bins, Dir: dir, Config: cfg, ConfigPath: filepath.Join(dir, "hiveqd.yaml")}
	if err := os.WriteFile(f.ConfigPath, []byte(cfg.YAML()), 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

// StartSim starts a simulator registered in the fleet's ZooKeeper
// namespace. Its ZooKeeper session timeout is short (4s, what the test
// ZooKeeper's tick allows at most anyway), so a killed process's znode goes
// away in seconds, as a killed HS2's does with its session.
func (f *Fleet) StartSim(ctx context.Context, name string, args ...string) (*Sim, error) {
	full := []string{"--zk", strings.Join(f.Config.ZooKeeper, ","), "--zk-session-timeout", "4s"}
	if f.Config.Namespace != "" {
		full = append(full, "--zk-namespace", f.Config.Namespace)
	}
	full = append(append(full, f.SimArgs...), args...)
	s, err := StartSim(ctx, f.Bins["hs2sim"], f.Dir, name, full...)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.Sims = append(f.Sims, s)
	f.mu.Unlock()
	return s, nil
}

// StartReplica starts `hiveqd serve --config <fleet config> --replica-id id`
// and dials it.
func (f *Fleet) StartReplica(ctx context.Context, id string, args ...string) (*Hiveqd, *Client, error) {
	full := append([]string{"--config", f.ConfigPath, "--replica-id", id}, args...)
	h, err := StartHiveqd(ctx, f.Bins["hiveqd"], f.Dir, id, nil, full...)
	if err != nil {
		return nil, nil, err
	}
	c, err := Dial(h.Addr)
	if err != nil {
		h.Kill()
		return nil, nil, err
	}
	f.mu.Lock()
	f.Replicas = append(f.Replicas, h)
	f.Clients = append(f.Clients, c)
	f.mu.Unlock()
	return h, c, nil
}

// Client returns the client of the replica with id ("" → nil).
func (f *Fleet) Client(id string) *Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, h := range f.Replicas {
		if h.Name == id {
			return f.Clients[i]
		}
	}
	return nil
}

// Replica returns the replica process with id (nil when unknown).
func (f *Fleet) Replica(id string) *Hiveqd {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.Replicas {
		if h.Name == id {
			return h
		}
	}
	return nil
}

// SimByAddr returns the simulator serving addr (nil when unknown).
func (f *Fleet) SimByAddr(addr string) *Sim {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.Sims {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// Logs are the last n bytes of every process's output, for failures.
func (f *Fleet) Logs(n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, s := range f.Sims {
		if s.Proc != nil {
			fmt.Fprintf(&b, "==== %s (%s)\n%s\n", s.Name, s.Addr, tail(s.Output(), n))
		}
	}
	for _, h := range f.Replicas {
		if h.Proc != nil {
			fmt.Fprintf(&b, "==== %s (%s)\n%s\n", h.Name, h.Addr, tail(h.Output(), n))
		}
	}
	return b.String()
}

// Close stops every process: replicas gracefully (bounded), then the
// simulators; it closes the clients.
func (f *Fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.Clients {
		c.Close()
	}
	var wg sync.WaitGroup
	for _, h := range f.Replicas {
		if h.Proc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.Stop(10 * time.Second)
		}()
	}
	wg.Wait()
	for _, s := range f.Sims {
		if s.Proc != nil {
			_ = s.Stop(5 * time.Second)
		}
	}
}

// Alive reports an error for the first replica process that has exited.
func (f *Fleet) Alive() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.Replicas {
		select {
		case <-h.Done():
			return fmt.Errorf("replica %s exited: %v", h.Name, h.Err())
		default:
		}
	}
	return nil
}

// WaitAgreed waits until every client reports the same leader and the same
// route (server and epoch) for connector, and check (when set) accepts it.
func WaitAgreed(ctx context.Context, clients []*Client, connector string, check func(Route, string) error) (Route, string, error) {
	var route Route
	var leader string
	err := testenv.WaitFor(ctx, func() error {
		var first *Route
		var firstLeader string
		for _, c := range clients {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			r, t, err := c.RouteOf(cctx, connector)
			cancel()
			if err != nil {
				return err
			}
			l := LeaderID(t)
			if l == "" {
				return fmt.Errorf("%s knows no leader", c.Addr)
			}
			if t.GetDegraded() {
				return fmt.Errorf("%s is degraded: %s", c.Addr, t.GetDegradedReason())
			}
			if first == nil {
				first, firstLeader = &r, l
				continue
			}
			if r != *first || l != firstLeader {
				return fmt.Errorf("replicas disagree: %+v leader %s vs %s: %+v leader %s", *first, firstLeader, c.Addr, r, l)
			}
		}
		if first == nil {
			return errors.New("no clients")
		}
		if check != nil {
			if err := check(*first, firstLeader); err != nil {
				return err
			}
		}
		route, leader = *first, firstLeader
		return nil
	})
	return route, leader, err
}
