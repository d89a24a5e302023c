// Command hiveqd is a highly available, streaming gRPC front for
// HiveServer2.
//
//	hiveqd serve [flags]     serve the gRPC API (see --help)
//	hiveqd dev [--listen]    serve on 127.0.0.1:9090 with an in-process HS2 simulator
//	hiveqd sql [flags] ...   run statements against a hiveqd (interactive on a terminal)
//	hiveqd version
//
// Every subcommand takes -h/--help (exit 0) and reports a bad flag in one
// line (exit 2). A build without VCS information can be stamped with
// -ldflags "-X main.buildVersion=v1.2.3" (make build does).
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
	"github.com/hiveqd/hiveqd/internal/cliflags"
	"github.com/hiveqd/hiveqd/replica"
	"github.com/hiveqd/hiveqd/sqlcli"
)

const usage = `hiveqd: a highly available, streaming gRPC front for HiveServer2

Usage:
  hiveqd serve [flags]      serve the gRPC API
  hiveqd dev [flags]        serve on 127.0.0.1:9090 with an in-process HS2 simulator and sample data
  hiveqd sql [flags]        run statements on a hiveqd: interactive on a terminal, or -e, -f, stdin
  hiveqd version            print the version

Each command takes --help.
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
		fs := flag.NewFlagSet("hiveqd version", flag.ContinueOnError)
		if code, ok := parseFlags(fs, args[1:], stdout, stderr, func(w io.Writer) {
			fmt.Fprint(w, "Usage: hiveqd version\n\nPrints the version: the -ldflags stamp (-X main.buildVersion=...) when the\nbuild has one, else the module version, else the VCS revision.\n")
		}); !ok {
			return code
		}
		if fs.NArg() > 0 {
			return usageLine(stderr, "hiveqd version", fmt.Sprintf("unexpected arguments %q", fs.Args()))
		}
		fmt.Fprintln(stdout, version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "hiveqd: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// buildVersion is stamped by -ldflags "-X main.buildVersion=v1.2.3" for
// builds that have no module version (go build in a checkout).
var buildVersion string

func version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi, buildVersion)
}

// versionOf is the version line: the -ldflags stamp when the build was
// given one (a deliberate name wins), else the module version (go install
// module@version, or the pseudo-version Go derives from VCS), else the
// VCS revision the build recorded, else (devel).
func versionOf(bi *debug.BuildInfo, stamp string) string {
	if stamp != "" {
		return "hiveqd " + stamp
	}
	if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return "hiveqd " + bi.Main.Version
	}
	if bi != nil {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if modified == "true" {
				rev += "-dirty"
			}
			return "hiveqd (devel) " + rev
		}
	}
	return "hiveqd (devel)"
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hiveqd serve", flag.ContinueOnError)
	cfgPath := config.Register(fs)
	if code, ok := parseFlags(fs, args, stdout, stderr, func(w io.Writer) {
		fmt.Fprint(w, serveUsage)
		cliflags.Print(w, serveDocs(fs))
	}); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageLine(stderr, "hiveqd serve", fmt.Sprintf("unexpected arguments %q", fs.Args()))
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
	// Until SIGTERM or a server fails.
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
	listen := fs.String("listen", "127.0.0.1:9090", "gRPC listen address")
	simListen := fs.String("hs2-listen", "127.0.0.1:0", "the in-process HS2 simulator's Thrift address")
	logLevel := fs.String("log-level", "info", "debug | info | warn | error")
	if code, ok := parseFlags(fs, args, stdout, stderr, func(w io.Writer) {
		fmt.Fprint(w, devUsage)
		cliflags.Print(w, cliflags.FromFlagSet(fs, func(string) string { return "" }))
	}); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageLine(stderr, "hiveqd dev", fmt.Sprintf("unexpected arguments %q", fs.Args()))
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
	fmt.Fprintf(stderr, "hiveqd dev: HS2 simulator on %s; try:\n  hiveqd sql --addr %s -e 'SELECT * FROM employees LIMIT 3'\n", sim.Addr(), *listen)
	return runReplica(ctx, cfg, stdout, stderr)
}

const serveUsage = `Usage: hiveqd serve [flags]

Serves the gRPC API. Settings come from the YAML file named by --config,
then HIVEQD_* environment variables, then flags; the flags below set the
most common ones (the README documents the whole file).
`

const devUsage = `Usage: hiveqd dev [flags]

Serves the gRPC API with an in-process HS2 simulator and sample data, so a
fresh machine needs nothing else. Try: hiveqd sql -e 'SELECT * FROM employees LIMIT 3'
`

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
