// Command hiveqd is a highly available, streaming gRPC front for
// HiveServer2.
//
//	hiveqd serve [flags]     serve the gRPC API (see --help)
//	hiveqd dev [--listen]    serve on 127.0.0.1:9090 with an in-process HS2 simulator
//	hiveqd sql --addr A ...  run a statement against a hiveqd and print the rows
//	hiveqd version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/hs2sim"
	"github.com/hiveqd/hiveqd/replica"
	"github.com/hiveqd/hiveqd/sqlcli"
)

const usage = `hiveqd: a highly available, streaming gRPC front for HiveServer2

Usage:
  hiveqd serve [flags]      serve the gRPC API (hiveqd serve --help lists the flags)
  hiveqd dev [--listen A]   serve on 127.0.0.1:9090 with an in-process HS2 simulator and sample data
  hiveqd sql --addr A STMT  run a statement against a hiveqd and print the rows
  hiveqd version
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sql" {
		// sqlcli handles signals itself: the first Ctrl-C cancels the query.
		os.Exit(sqlcli.Main(context.Background(), os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "dev":
		return dev(ctx, args[1:], stdout, stderr)
	case "sql":
		return sqlcli.Main(ctx, args[1:], os.Stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "hiveqd: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "hiveqd " + bi.Main.Version
	}
	return "hiveqd (devel)"
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hiveqd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := config.Register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hiveqd serve: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg, err := config.FromFlags(fs, *cfgPath, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "hiveqd serve: invalid configuration:\n%v\n", indent(err.Error()))
		return 2
	}
	return runReplica(ctx, cfg, stdout, stderr)
}

func runReplica(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) int {
	log := newLogger(cfg.Log, stderr)
	if err := replica.Run(ctx, cfg, replica.Options{Logger: log, Ready: stdout, Version: version()}); err != nil {
		log.Error("hiveqd failed", "err", err)
		fmt.Fprintf(stderr, "hiveqd: %v\n", err)
		return 1
	}
	return 0
}

// dev runs the embedded default: an in-process HS2 simulator with sample
// data behind a standalone replica, so a fresh machine needs nothing else.
func dev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hiveqd dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9090", "gRPC listen address")
	simListen := fs.String("hs2-listen", "127.0.0.1:0", "the in-process HS2 simulator's Thrift address")
	logLevel := fs.String("log-level", "info", "debug | info | warn | error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sim, err := hs2sim.Start(ctx, hs2sim.Config{Listen: *simListen})
	if err != nil {
		fmt.Fprintf(stderr, "hiveqd dev: start HS2 simulator: %v\n", err)
		return 1
	}
	defer sim.Close()
	cfg := config.Default()
	cfg.Listen = *listen
	cfg.ReplicaID = "dev"
	cfg.Log.Level = *logLevel
	cfg.Connectors = []config.Connector{{Name: "hive", Discovery: "static", Static: []string{sim.Addr()}}}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "hiveqd dev: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "hiveqd dev: HS2 simulator on %s; try:\n  grpcurl -plaintext -d '{\"statement\":\"SELECT * FROM employees LIMIT 3\"}' %s hiveq.v1.QueryService/Execute\n", sim.Addr(), *listen)
	return runReplica(ctx, cfg, stdout, stderr)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
