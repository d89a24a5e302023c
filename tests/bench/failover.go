package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hiveqd/hiveqd/tests/harness"
)

// failoverReport is what `go run ./tests/failover -json FILE` writes.
type failoverReport struct {
	Runs       int     `json:"runs"`
	LeaseTTLMs float64 `json:"lease_ttl_ms"`
	Probe      string  `json:"probe"`
	Metrics    []struct {
		Name    string    `json:"name"`
		Title   string    `json:"title"`
		Unit    string    `json:"unit"`
		Samples []float64 `json:"samples"`
	} `json:"metrics"`
}

// Target 8: failover. tests/failover measures it (ZooKeeper, etcd, three
// replicas, two simulators); this runs it and takes its numbers.
func failover(ctx context.Context, b *bench) ([]metric, error) {
	z := b.sizes()
	out := filepath.Join(b.dir, "failover.json")
	cmd := exec.CommandContext(ctx, "go", "run", "./tests/failover", "-runs", strconv.Itoa(z.failoverRuns), "-json", out)
	cmd.Dir = harness.RepoRoot()
	logf, err := os.Create(filepath.Join(b.dir, "failover.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	if err := cmd.Run(); err != nil {
		tail, _ := os.ReadFile(logf.Name())
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return nil, fmt.Errorf("go run ./tests/failover: %w\n%s", err, tail)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var rep failoverReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("tests/failover JSON: %w", err)
	}
	// The targets by metric name; others are reported as they are.
	goals := map[string]struct {
		op   string
		goal float64
	}{
		"hs2_kill_all":    {"<=", 2000},
		"hs2_kill_spread": {"<=", 100},
		"leader_kill":     {"<=", rep.LeaseTTLMs + 1000},
		"leader_term":     {"<=", 100},
	}
	var ms []metric
	for _, m := range rep.Metrics {
		name := m.Title
		if name == "" {
			name = m.Name
		}
		x := metric{Name: name, Unit: m.Unit, Values: m.Samples}
		if g, ok := goals[m.Name]; ok {
			x.Op, x.Goal = g.op, g.goal
		}
		switch m.Name {
		case "hs2_kill_all":
			x.Note = fmt.Sprintf("from go run ./tests/failover -runs %d (%s)", z.failoverRuns, rep.Probe)
		case "leader_kill":
			x.Note = fmt.Sprintf("target is the lease TTL (%.0f ms in tests/failover) + 1 s", rep.LeaseTTLMs)
		}
		ms = append(ms, x)
	}
	return ms, nil
}
