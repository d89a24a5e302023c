// Package sqlcli is `hiveqd sql`, a beeline-like command-line client: it
// runs statements (one, a script split as beeline splits it, or typed at an
// interactive prompt) through hiveq.v1.QueryService.Execute and prints the
// rows as an aligned table, vertically, as CSV, TSV or JSON Lines, with
// progress and a "N rows selected" line on stderr.
package sqlcli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// Exit codes of Main and Command.Run.
const (
	ExitOK    = 0
	ExitError = 1 // the query failed, the server was unreachable, bad output
	ExitUsage = 2 // bad flags or arguments
	// ExitInterrupted is the shells' 128+SIGINT: the query was cancelled by
	// Ctrl-C (or the caller's context).
	ExitInterrupted = 130
)

// DefaultTableChunk is how many rows the table format buffers before it
// prints them (each chunk as its own aligned table).
const DefaultTableChunk = 10000

// maxRecvMsgSize bounds one response message. hiveqd keeps batches well
// under gRPC's 4 MiB default; the margin is for other servers.
const maxRecvMsgSize = 64 << 20

// Main runs `hiveqd sql` with args (the arguments after "sql") on the
// process's environment: HIVEQD_TOKEN and HIVEQD_ADDR are read, progress
// is shown when stderr is a terminal, interactive mode starts when stdin
// is a terminal and no statement is given, and SIGINT/SIGTERM cancel the
// running query (in a script, a second Ctrl-C kills the process). It
// returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	c := &Command{
		Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv,
		StdinIsTerminal: isTerminal(stdin), StderrIsTerminal: isTerminal(stderr),
		Signals: sigs, StopSignals: func() { signal.Stop(sigs) },
	}
	return c.Run(ctx, args)
}

// Command is `hiveqd sql` with its environment injected (for tests and
// embedding). The zero value reads nothing, writes nowhere and sees no
// environment.
type Command struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv looks up HIVEQD_TOKEN, HIVEQD_ADDR and, for the history
	// file, XDG_STATE_HOME and HOME; nil: no environment.
	Getenv func(string) string
	// StdinIsTerminal starts interactive mode when no statement is given
	// (else the statements are read from Stdin).
	StdinIsTerminal bool
	// StderrIsTerminal shows progress as one line updated in place.
	StderrIsTerminal bool
	// Signals delivers Ctrl-C: it cancels the running query. In a script
	// StopSignals is then called, so that a second Ctrl-C ends a client
	// whose cancel does not get through. nil: no signals.
	Signals     <-chan os.Signal
	StopSignals func()
	// Now is the clock for the elapsed time; nil: time.Now.
	Now func() time.Time
	// TableChunk overrides DefaultTableChunk when > 0.
	TableChunk int
	// DialOptions are added to the client's (tests: custom dialers).
	DialOptions []grpc.DialOption
}

// Run runs the command line args (without "hiveqd sql") and returns the
// exit code. Cancelling ctx cancels the query and returns ExitInterrupted.
func (c *Command) Run(ctx context.Context, args []string) int {
	stdout, stderr := orDiscard(c.Stdout), orDiscard(c.Stderr)
	getenv := c.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	opts, err := parseArgs(args, getenv, c.Stdin, c.StdinIsTerminal, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "hiveqd sql: %v (see 'hiveqd sql --help')\n", err)
		return ExitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "hiveqd sql: %v\n", err)
		return ExitError
	}
	if !opts.interactive && len(opts.statements) == 0 {
		return ExitOK // an empty script
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	chunk := c.TableChunk
	if chunk <= 0 {
		chunk = DefaultTableChunk
	}
	r := &runner{
		opts:   opts,
		getenv: getenv,
		dialOp: c.DialOptions,
		stdout: stdout,
		stderr: stderr,
		now:    now,
		chunk:  chunk,
		live:   c.StderrIsTerminal,
	}
	if err := r.connect(ctx, opts.addr); err != nil {
		fmt.Fprintf(stderr, "hiveqd sql: %v\n", err)
		return ExitError
	}
	defer r.close()
	if opts.interactive {
		return r.interactive(ctx, c)
	}
	return r.script(ctx, c.Signals, c.StopSignals)
}

// runner runs statements on one connection and keeps what a statement
// changes for the next ones (USE: the database).
type runner struct {
	opts   *options
	getenv func(string) string
	dialOp []grpc.DialOption
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	chunk  int
	live   bool // stderr is a terminal

	conn   *grpc.ClientConn
	client hiveqv1.QueryServiceClient
	token  string
	// connector is the one the server last reported (for the prompt).
	connector string
}

// connect dials addr and checks that it answers (see checkConnect);
// the previous connection, if any, is kept when this one fails.
func (r *runner) connect(ctx context.Context, addr string) error {
	conn, token, err := dial(r.opts, addr, r.getenv, r.dialOp)
	if err != nil {
		return err
	}
	if err := checkConnect(ctx, conn, addr); err != nil {
		conn.Close()
		return err
	}
	r.close()
	r.conn, r.token, r.client = conn, token, hiveqv1.NewQueryServiceClient(conn)
	r.opts.addr = addr
	return nil
}

func (r *runner) close() {
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}

// script runs the statements in turn: it stops at the first failure
// unless --force, and at Ctrl-C. The exit code is 0 only when every
// statement succeeded.
func (r *runner) script(ctx context.Context, sigs <-chan os.Signal, stopSignals func()) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if sigs != nil {
		go func() {
			select {
			case <-sigs:
				if stopSignals != nil {
					stopSignals()
				}
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	code := ExitOK
	for _, stmt := range r.opts.statements {
		switch c := r.exec(ctx, stmt); {
		case c == ExitInterrupted:
			return c
		case c != ExitOK:
			code = c
			if !r.opts.force {
				return code
			}
		}
	}
	return code
}

// protocolError is a response the client cannot make sense of.
type protocolError struct{ msg string }

func (e protocolError) Error() string { return "malformed response from server: " + e.msg }

// exec runs one statement and prints its result; the exit code is its
// outcome.
func (r *runner) exec(ctx context.Context, stmt string) int {
	callCtx, cancel := context.WithCancel(ctx)
	if r.opts.timeout > 0 {
		callCtx, cancel = context.WithTimeout(ctx, r.opts.timeout)
	}
	defer cancel()
	if r.token != "" {
		callCtx = metadata.AppendToOutgoingContext(callCtx, "authorization", "Bearer "+r.token)
	}

	start := r.now()
	prog := r.newProgress(start)
	defer prog.close()
	out := bufio.NewWriterSize(clearingWriter{w: r.stdout, p: prog}, 64<<10)
	f := newFormatter(r.opts.format, out, r.chunk)

	var (
		rows      int64
		schema    []*hiveqv1.ColumnSchema
		hasSchema bool
		callErr   error // the stream's end, from the server
		localErr  error // ours: bad response, output failed
	)
	stream, err := r.client.Execute(callCtx, r.opts.request(stmt), grpc.MaxCallRecvMsgSize(maxRecvMsgSize))
	if err != nil {
		callErr = err
	}
	for callErr == nil && localErr == nil {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			callErr = err
			break
		}
		switch ev := resp.GetEvent().(type) {
		case *hiveqv1.ExecuteResponse_Status:
			prog.status(ev.Status)
			if c := ev.Status.GetConnector(); c != "" {
				r.connector = c
			}
		case *hiveqv1.ExecuteResponse_Schema:
			if hasSchema {
				localErr = protocolError{"a second schema"}
				break
			}
			hasSchema = true
			schema = ev.Schema.GetColumns()
			localErr = f.schema(schema)
		case *hiveqv1.ExecuteResponse_Batch:
			if !hasSchema {
				localErr = protocolError{"a row batch before the schema"}
				break
			}
			b, err := decodeBatch(ev.Batch, schema)
			if err != nil {
				localErr = protocolError{err.Error()}
				break
			}
			if localErr = f.batch(b); localErr == nil {
				// csv and json stream: rows go out batch by batch.
				localErr = out.Flush()
			}
			rows += int64(b.rows)
			prog.rows(rows)
		}
	}
	if localErr != nil {
		cancel() // stop the query: nobody reads its rows any more
	}
	// Rows received before a failure are still printed.
	if err := f.finish(); err != nil && localErr == nil {
		localErr = err
	}
	if err := out.Flush(); err != nil && localErr == nil {
		localErr = err
	}
	elapsed := r.now().Sub(start)
	prog.close()

	switch {
	case localErr != nil:
		var pe protocolError
		if errors.As(localErr, &pe) {
			fmt.Fprintf(r.stderr, "Error: %v\n", localErr)
		} else {
			fmt.Fprintf(r.stderr, "Error: writing output: %v\n", localErr)
		}
		return ExitError
	case callErr != nil && ctx.Err() != nil:
		fmt.Fprintf(r.stderr, "Query canceled (%s received, %.3f seconds)\n", plural(rows, "row"), elapsed.Seconds())
		return ExitInterrupted
	case callErr != nil:
		printError(r.stderr, callErr)
		return ExitError
	}
	r.carry(stmt)
	if !r.opts.silent {
		switch {
		case !hasSchema:
			fmt.Fprintf(r.stderr, "No rows affected (%.3f seconds)\n", elapsed.Seconds())
		case rows == 0:
			fmt.Fprintf(r.stderr, "No rows selected (%.3f seconds)\n", elapsed.Seconds())
		default:
			fmt.Fprintf(r.stderr, "%s selected (%.3f seconds)\n", plural(rows, "row"), elapsed.Seconds())
		}
	}
	return ExitOK
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// isTerminal reports whether f is a character device (a terminal), without
// a dependency on x/term.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// carry keeps what a successful USE or SET changes for the statements
// after it: hiveqd may run each statement on a different pooled HS2
// session, so the client sends the database and the settings with each.
func (r *runner) carry(stmt string) {
	if db := useTarget(stmt); db != "" {
		r.opts.database = db
		return
	}
	if m := setRE.FindStringSubmatch(strings.TrimSpace(stmt)); m != nil {
		k, v := m[1], strings.TrimSpace(m[2])
		switch {
		case strings.HasPrefix(k, "hivevar:"):
			r.opts.vars[strings.TrimPrefix(k, "hivevar:")] = v
		case strings.HasPrefix(k, "system:"), strings.HasPrefix(k, "env:"):
		default:
			r.opts.conf[strings.TrimPrefix(k, "hiveconf:")] = v
		}
	}
}

// setRE is SET key=value (Hive's SetProcessor splits at the first '=').
var setRE = regexp.MustCompile(`(?is)^set\s+([^=\s]+)\s*=(.*)$`)

var useRE = regexp.MustCompile(`(?is)^use\s+(\S+)$`)

// useTarget is the database a USE statement switches to, else "".
func useTarget(stmt string) string {
	m := useRE.FindStringSubmatch(strings.TrimSpace(stmt))
	if m == nil {
		return ""
	}
	return strings.Trim(m[1], "`")
}
