// Command bench measures hiveqd against clients that read HiveServer2
// directly, on one machine, with every party in its own process:
//
//	go run ./tests/bench                 # every scenario (about 5 minutes)
//	go run ./tests/bench -quick          # fewer and shorter runs (about 1.5 minutes)
//	go run ./tests/bench -scenarios 'paced|latency' -runs 3
//	go run ./tests/bench -md BENCHMARKS.md   # also rewrite the table there
//
// It builds hiveqd and hs2sim (without the race detector), starts a
// simulator and hiveqd replicas as processes, and runs the clients in
// worker processes (this binary with -worker): the direct HS2 client (the
// hs2 package), gohive, and the generated gRPC client, which decodes every
// message. Runs of the clients being compared are interleaved (A B B A ...)
// so that the machine's drift hits both; every ratio is taken within one
// pair of runs, and the table shows the median, min and max over runs.
// CPU comes from /proc/<pid>/stat (utime+stime) and memory from
// /proc/<pid>/status (VmRSS). The failover figures come from
// `go run ./tests/failover`, run as a subprocess (-failover=false skips it).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hiveqd/hiveqd/tests/harness"
)

type options struct {
	quick        bool
	scenarios    *regexp.Regexp
	runs         int
	jsonPath     string
	mdPath       string
	failover     bool
	failoverRuns int
	pprofDir     string
	keep         bool
	verbose      bool
	hiveqdFlags  []string
	grpcWindow   int
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-worker" {
		os.Exit(workerMain())
	}
	if p := os.Getenv(envProfiledHiveqd); p != "" {
		os.Exit(profiledHiveqd(p, os.Args[1:]))
	}
	var o options
	var scen string
	flag.BoolVar(&o.quick, "quick", false, "fewer, shorter runs (about 1.5 minutes)")
	flag.StringVar(&scen, "scenarios", "", "regexp matching whole scenario names (default all): "+strings.Join(scenarioNames(), ", "))
	flag.IntVar(&o.runs, "runs", 0, "runs per scenario (default 7, quick 3; memory and concurrency fewer)")
	flag.StringVar(&o.jsonPath, "json", "bench-results.json", "write the results as JSON here (empty: don't)")
	flag.StringVar(&o.mdPath, "md", "", "rewrite the generated section of this Markdown file (e.g. BENCHMARKS.md)")
	flag.BoolVar(&o.failover, "failover", true, "run the failover measurements (go run ./tests/failover)")
	flag.IntVar(&o.failoverRuns, "failover-runs", 0, "runs of each failover measurement (default 5, quick 2)")
	flag.StringVar(&o.pprofDir, "pprof", "", "run hiveqd with CPU and heap profiling, writing the profiles here (numbers are then not representative)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (binaries, process logs)")
	flag.BoolVar(&o.verbose, "v", false, "print every run")
	flag.IntVar(&o.grpcWindow, "grpc-window", 0, "the gRPC clients' receive window in `bytes` (0: gRPC's default, 64 KiB grown by bandwidth estimation)")
	fromJSON := flag.String("from-json", "", "run nothing: print the table of a `FILE` written by -json (and, with -md, write it there)")
	hflags := flag.String("hiveqd-flags", "", "extra `flags` for every hiveqd replica, space-separated (e.g. \"--config my.yaml\")")
	flag.Parse()
	o.hiveqdFlags = strings.Fields(*hflags)
	var err error
	if scen == "" {
		scen = ".*"
	}
	if o.scenarios, err = regexp.Compile("^(?:" + scen + ")$"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -scenarios:", err)
		os.Exit(2)
	}
	if *fromJSON != "" {
		if err := render(*fromJSON, o.mdPath); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// render prints the table of a recorded run (-json) and, with mdPath,
// writes its Markdown section there: a run's figures go into the docs
// without running it again.
func render(jsonPath, mdPath string) error {
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	fmt.Println(res.table())
	if mdPath != "" {
		return updateMarkdown(mdPath, res.markdown())
	}
	return nil
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	dir, err := os.MkdirTemp("", "hiveqd-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "bench: work directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.pprofDir != "" {
		if o.pprofDir, err = filepath.Abs(o.pprofDir); err != nil {
			return err
		}
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return err
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	bins, err := harness.Build(bctx, dir, false, "hiveqd", "hs2sim")
	cancel()
	if err != nil {
		return err
	}
	b := &bench{opts: o, bins: bins, dir: dir, workers: map[string]*workerProc{}}
	defer b.close()
	res := results{
		Command: commandLine(),
		Machine: describeMachine(),
		Started: began.UTC().Format(time.RFC3339),
	}
	for _, s := range scenarios {
		if !o.scenarios.MatchString(s.name) || (s.name == "failover" && !o.failover) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", s.name)
		t0 := time.Now()
		load0 := loadAverage()
		ms, err := s.run(ctx, b)
		res.Load = append(res.Load, scenarioLoad{Scenario: s.name, Start: load0, End: loadAverage(), Seconds: time.Since(t0).Seconds()})
		for i := range ms {
			ms[i].Scenario = s.name
			ms[i].finish()
		}
		res.Metrics = append(res.Metrics, ms...)
		if err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %v", s.name, err))
			fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "bench: %s done in %s\n", s.name, time.Since(t0).Round(time.Second))
	}
	res.Seconds = time.Since(began).Seconds()
	table := res.table()
	fmt.Println(table)
	if o.jsonPath != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "bench: results in", o.jsonPath)
	}
	if o.mdPath != "" {
		if err := updateMarkdown(o.mdPath, res.markdown()); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "bench: table written to", o.mdPath)
	}
	if len(res.Failures) > 0 {
		return fmt.Errorf("%d scenario(s) failed: %s", len(res.Failures), strings.Join(res.Failures, "; "))
	}
	return nil
}

// loadAverage is the 1-minute load average: other work on the machine
// while a scenario ran, for judging its numbers.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var v float64
	_, _ = fmt.Sscan(string(data), &v)
	return v
}

func commandLine() string {
	return strings.TrimSpace("go run ./tests/bench " + strings.Join(os.Args[1:], " "))
}
