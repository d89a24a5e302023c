package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

var (
	simListening    = regexp.MustCompile(`hs2sim listening on (\S+)`)
	simControl      = regexp.MustCompile(`hs2sim control on (\S+)`)
	hiveqdListening = regexp.MustCompile(`hiveqd listening on (\S+)`)
	flightListening = regexp.MustCompile(`hiveqd flightsql listening on (\S+)`)
)

// Sim is an hs2sim process and its control endpoint.
type Sim struct {
	*Proc
	Addr    string // Thrift address host:port
	Control string // http://host:port
	args    []string
	bin     string
	logDir  string
}

// StartSim runs hs2sim with args plus --listen and --control on free ports
// (unless args set them) and waits until it listens.
func StartSim(ctx context.Context, bin, logDir, name string, args ...string) (*Sim, error) {
	cport, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	full := append([]string{"--control", "127.0.0.1:" + strconv.Itoa(cport)}, args...)
	if !hasFlag(args, "--listen") {
		full = append(full, "--listen", "127.0.0.1:0")
	}
	s := &Sim{Control: "http://127.0.0.1:" + strconv.Itoa(cport), args: full, bin: bin, logDir: logDir}
	if err := s.start(ctx, name); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sim) start(ctx context.Context, name string) error {
	p, err := Start(name, s.bin, s.args, nil, filepath.Join(s.logDir, name+".log"))
	if err != nil {
		return err
	}
	m, err := p.WaitLine(ctx, simListening)
	if err != nil {
		p.Kill()
		return err
	}
	// hs2sim opens its control endpoint after it prints its Thrift address:
	// a fault posted before "control on" would be refused.
	if hasFlag(s.args, "--control") {
		if _, err := p.WaitLine(ctx, simControl); err != nil {
			p.Kill()
			return err
		}
	}
	s.Proc, s.Addr = p, m[1]
	return nil
}

// Restart starts the process again on the same Thrift port (after a kill).
func (s *Sim) Restart(ctx context.Context) error {
	s.args = setFlag(s.args, "--listen", s.Addr)
	return s.start(ctx, s.Name)
}

// Fault posts to the control endpoint, e.g. Fault(ctx, "crash") or
// Fault(ctx, "slow", "delay", "200ms").
func (s *Sim) Fault(ctx context.Context, kind string, kv ...string) error {
	return s.post(ctx, "/fault/"+kind, kv...)
}

// Pace sets the synthetic tables' rows per second and per-fetch delay.
func (s *Sim) Pace(ctx context.Context, rowsPerSecond int64, fetchDelay time.Duration) error {
	return s.post(ctx, "/pace", "rows_per_second", strconv.FormatInt(rowsPerSecond, 10), "fetch_delay", fetchDelay.String())
}

func (s *Sim) post(ctx context.Context, path string, kv ...string) error {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u := s.Control + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s %s", s.Name, path, resp.Status, b)
	}
	return nil
}

// SimStats is the simulator's /stats.
type SimStats struct {
	OpenSessions        int64 `json:"open_sessions"`
	OpenOperations      int64 `json:"open_operations"`
	OpenConnections     int64 `json:"open_connections"`
	SessionsOpened      int64 `json:"sessions_opened"`
	OperationsOpened    int64 `json:"operations_opened"`
	OperationsCancelled int64 `json:"operations_cancelled"`
	KerberosLogins      int64 `json:"kerberos_logins"`
	HeldOpens           int64 `json:"held_opens"`
}

// Stats reads the simulator's counters.
func (s *Sim) Stats(ctx context.Context) (SimStats, error) {
	var st SimStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Control+"/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// Hiveqd is a hiveqd serve process.
type Hiveqd struct {
	*Proc
	Addr string
	// FlightSQLAddr is the Arrow Flight SQL address, when started with
	// --flightsql-listen.
	FlightSQLAddr string
	bin           string
	args          []string
	env           []string
	dir           string
}

// StartHiveqd runs `hiveqd serve` with args (plus --listen 127.0.0.1:0
// unless given) and waits until it listens.
func StartHiveqd(ctx context.Context, bin, logDir, name string, env []string, args ...string) (*Hiveqd, error) {
	full := append([]string{"serve"}, args...)
	if !hasFlag(args, "--listen") {
		full = append(full, "--listen", "127.0.0.1:0")
	}
	h := &Hiveqd{bin: bin, args: full, env: env, dir: logDir}
	if err := h.start(ctx, name); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hiveqd) start(ctx context.Context, name string) error {
	p, err := Start(name, h.bin, h.args, h.env, filepath.Join(h.dir, name+".log"))
	if err != nil {
		return err
	}
	m, err := p.WaitLine(ctx, hiveqdListening)
	if err != nil {
		p.Kill()
		return err
	}
	h.Proc, h.Addr = p, m[1]
	if hasFlag(h.args, "--flightsql-listen") {
		f, err := p.WaitLine(ctx, flightListening)
		if err != nil {
			p.Kill()
			return err
		}
		h.FlightSQLAddr = f[1]
	}
	return nil
}

// Restart starts the replica again on the same address.
func (h *Hiveqd) Restart(ctx context.Context) error {
	h.args = setFlag(h.args, "--listen", h.Addr)
	if h.FlightSQLAddr != "" {
		h.args = setFlag(h.args, "--flightsql-listen", h.FlightSQLAddr)
	}
	return h.start(ctx, h.Name)
}

// Grpcurl runs grpcurl (from .tools/bin when present) and returns stdout,
// stderr and the exit code.
func Grpcurl(ctx context.Context, args ...string) (stdout, stderr string, code int, err error) {
	bin := filepath.Join(RepoRoot(), ".tools", "bin", "grpcurl")
	if _, statErr := exec.LookPath(bin); statErr != nil {
		bin = "grpcurl"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode(), nil
	}
	return o.String(), e.String(), 0, err
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func setFlag(args []string, name, value string) []string {
	out := make([]string, 0, len(args)+2)
	for i := 0; i < len(args); i++ {
		if args[i] == name && i+1 < len(args) {
			i++
			continue
		}
		if strings.HasPrefix(args[i], name+"=") {
			continue
		}
		out = append(out, args[i])
	}
	return append(out, name, value)
}
