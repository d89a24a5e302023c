package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/replica"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// bench holds the processes the scenarios share.
type bench struct {
	opts    options
	bins    map[string]string
	dir     string
	sim     *harness.Sim
	hq      *harness.Hiveqd // the replica the throughput scenarios share
	extra   []*harness.Hiveqd
	workers map[string]*workerProc
}

func (b *bench) close() {
	for _, w := range b.workers {
		w.close()
	}
	for _, h := range append(b.extra, b.hq) {
		if h != nil {
			_ = h.Stop(10 * time.Second)
		}
	}
	if b.sim != nil {
		_ = b.sim.Stop(5 * time.Second)
	}
}

// simulator starts the shared simulator on first use.
func (b *bench) simulator(ctx context.Context) (*harness.Sim, error) {
	if b.sim != nil {
		return b.sim, nil
	}
	s, err := harness.StartSim(ctx, b.bins["hs2sim"], b.dir, "hs2sim", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	b.sim = s
	return s, nil
}

// replica starts the shared hiveqd on first use.
func (b *bench) replica(ctx context.Context) (*harness.Hiveqd, error) {
	if b.hq != nil {
		return b.hq, nil
	}
	h, err := b.startHiveqd(ctx, "hiveqd", "--flightsql-listen", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.hq = h
	return h, nil
}

// startHiveqd starts a standalone replica on the simulator with default
// settings plus args. With -pprof it is this binary in its profiling mode.
func (b *bench) startHiveqd(ctx context.Context, name string, args ...string) (*harness.Hiveqd, error) {
	sim, err := b.simulator(ctx)
	if err != nil {
		return nil, err
	}
	bin, env := b.bins["hiveqd"], []string(nil)
	if b.opts.pprofDir != "" {
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
		env = []string{envProfiledHiveqd + "=" + filepath.Join(b.opts.pprofDir, name)}
	}
	full := append([]string{"--hs2", sim.Addr, "--replica-id", name}, b.opts.hiveqdFlags...)
	full = append(full, args...)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	h, err := harness.StartHiveqd(sctx, bin, b.dir, name, env, full...)
	if err != nil {
		return nil, err
	}
	if name != "hiveqd" {
		b.extra = append(b.extra, h)
	}
	// Serving means the replica has probed the simulator and routes to it.
	c, err := harness.Dial(h.Addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	for {
		r, _, err := c.RouteOf(sctx, "hive")
		if err == nil && r.Server != "" {
			return h, nil
		}
		select {
		case <-sctx.Done():
			return nil, fmt.Errorf("%s: no route to the simulator: %v", name, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stopExtra stops a replica started for one scenario.
func (b *bench) stopExtra(h *harness.Hiveqd) {
	_ = h.Stop(10 * time.Second)
	for i, x := range b.extra {
		if x == h {
			b.extra = append(b.extra[:i], b.extra[i+1:]...)
			break
		}
	}
}

// worker returns the worker process for a client kind, started on first use.
func (b *bench) worker(mode string) (*workerProc, error) {
	if w := b.workers[mode]; w != nil {
		return w, nil
	}
	var env []string
	if b.opts.grpcWindow > 0 {
		env = append(env, envGRPCWindow+"="+strconv.Itoa(b.opts.grpcWindow))
	}
	if b.opts.pprofDir != "" {
		env = append(env, envWorkerProfile+"="+filepath.Join(b.opts.pprofDir, "worker-"+mode+".cpu.pprof"))
	}
	w, err := startWorker(mode, filepath.Join(b.dir, "worker-"+mode+".log"), env)
	if err != nil {
		return nil, err
	}
	b.workers[mode] = w
	return w, nil
}

// workerProc is a client process speaking JSON lines.
type workerProc struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	logf *os.File
}

func startWorker(name, logPath string, env []string) (*workerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-worker")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &workerProc{name: name, cmd: cmd, in: in, out: sc, logf: logf}, nil
}

func (w *workerProc) pid() int { return w.cmd.Process.Pid }

// do sends one request and waits for its answer.
func (w *workerProc) do(req workerRequest) (workerResponse, error) {
	var resp workerResponse
	data, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	if _, err := w.in.Write(append(data, '\n')); err != nil {
		return resp, fmt.Errorf("worker %s: %w", w.name, err)
	}
	if !w.out.Scan() {
		err := w.out.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return resp, fmt.Errorf("worker %s: %w", w.name, err)
	}
	if err := json.Unmarshal(w.out.Bytes(), &resp); err != nil {
		return resp, fmt.Errorf("worker %s: %w", w.name, err)
	}
	if resp.Err != "" {
		return resp, fmt.Errorf("worker %s: %s", w.name, resp.Err)
	}
	return resp, nil
}

func (w *workerProc) close() {
	w.in.Close()
	done := make(chan struct{})
	go func() { _ = w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	w.logf.Close()
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// procCPU is a process's user+system CPU seconds so far.
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces: fields start after its ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (ut + st) / clockTicks, nil
}

// procRSS is a process's resident set in bytes.
func procRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuMeter reads the CPU of several processes around a run.
type cpuMeter struct {
	pids  []int
	start []float64
}

func startCPU(pids ...int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: make([]float64, len(pids))}
	for i, p := range pids {
		m.start[i], _ = procCPU(p)
	}
	return m
}

// stop returns each process's CPU seconds since start.
func (m *cpuMeter) stop() []float64 {
	out := make([]float64, len(m.pids))
	for i, p := range m.pids {
		v, _ := procCPU(p)
		out[i] = v - m.start[i]
	}
	return out
}

// envProfiledHiveqd makes this binary run `hiveqd serve` with profiling,
// writing <value>.cpu.pprof and <value>.heap.pprof (the -pprof flag).
const envProfiledHiveqd = "BENCH_PROFILED_HIVEQD"

// profiledHiveqd is `hiveqd serve` (cmd/hiveqd's serve: the same flags,
// config and replica.New, Serve and Shutdown) wrapped in a CPU profile.
func profiledHiveqd(prefix string, args []string) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "profiled hiveqd: only serve")
		return 2
	}
	fs := flag.NewFlagSet("hiveqd serve", flag.ContinueOnError)
	cfgPath := config.Register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := config.FromFlags(fs, *cfgPath, func(k string) string {
		if k == envProfiledHiveqd {
			return ""
		}
		return os.Getenv(k)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	f, err := os.Create(prefix + ".cpu.pprof")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	rep, err := replica.New(ctx, cfg, replica.Options{Logger: log, Ready: os.Stdout})
	if err == nil {
		err = rep.Serve(ctx)
		rep.Shutdown()
	}
	pprof.StopCPUProfile()
	if h, herr := os.Create(prefix + ".heap.pprof"); herr == nil {
		_ = pprof.Lookup("allocs").WriteTo(h, 0)
		h.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hiveqd:", err)
		return 1
	}
	return 0
}

// machine describes where the numbers were taken.
type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	return m
}
