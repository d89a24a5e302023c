// Package sqlcli is `hiveqd sql`, a beeline-like command-line client: it
// runs one statement through hiveq.v1.QueryService.Execute and prints the
// rows as an aligned table, CSV or JSON Lines, with progress and a
// "N rows selected" line on stderr.
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
// is shown when stderr is a terminal, and SIGINT/SIGTERM cancel the query
// (a second Ctrl-C kills the process). It returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default action so that a second
	// Ctrl-C ends a client whose cancel does not get through.
	unhook := context.AfterFunc(ctx, stop)
	defer unhook()
	c := &Command{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, StderrIsTerminal: isTerminal(stderr)}
	return c.Run(ctx, args)
}

// Command is `hiveqd sql` with its environment injected (for tests and
// embedding). The zero value reads nothing, writes nowhere and sees no
// environment.
type Command struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv looks up HIVEQD_TOKEN and HIVEQD_ADDR; nil: no environment.
	Getenv func(string) string
	// StderrIsTerminal turns progress on (as --progress does).
	StderrIsTerminal bool
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
	opts, err := parseArgs(args, getenv, c.Stdin, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "hiveqd sql: %v\nRun 'hiveqd sql -h' for usage.\n", err)
		return ExitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "hiveqd sql: %v\n", err)
		return ExitError
	}

	conn, token, err := dial(opts, getenv, c.DialOptions)
	if err != nil {
		fmt.Fprintf(stderr, "hiveqd sql: %v\n", err)
		return ExitError
	}
	defer conn.Close()

	now := c.Now
	if now == nil {
		now = time.Now
	}
	chunk := c.TableChunk
	if chunk <= 0 {
		chunk = DefaultTableChunk
	}
	r := &runner{
		client:   hiveqv1.NewQueryServiceClient(conn),
		opts:     opts,
		token:    token,
		stdout:   stdout,
		stderr:   stderr,
		now:      now,
		chunk:    chunk,
		progress: &progressPrinter{w: stderr, on: !opts.silent && (opts.progress || c.StderrIsTerminal)},
	}
	return r.run(ctx)
}

type runner struct {
	client   hiveqv1.QueryServiceClient
	opts     *options
	token    string
	stdout   io.Writer
	stderr   io.Writer
	now      func() time.Time
	chunk    int
	progress *progressPrinter
}

// protocolError is a response the client cannot make sense of.
type protocolError struct{ msg string }

func (e protocolError) Error() string { return "malformed response from server: " + e.msg }

func (r *runner) run(ctx context.Context) int {
	callCtx, cancel := context.WithCancel(ctx)
	if r.opts.timeout > 0 {
		callCtx, cancel = context.WithTimeout(ctx, r.opts.timeout)
	}
	defer cancel()
	if r.token != "" {
		callCtx = metadata.AppendToOutgoingContext(callCtx, "authorization", "Bearer "+r.token)
	}

	start := r.now()
	out := bufio.NewWriterSize(r.stdout, 64<<10)
	var f formatter
	switch r.opts.format {
	case "csv":
		f = &csvFormat{w: out}
	case "json":
		f = &jsonFormat{w: out}
	default:
		f = &tableFormat{w: out, chunk: r.chunk}
	}

	var (
		rows      int64
		schema    []*hiveqv1.ColumnSchema
		hasSchema bool
		callErr   error // the stream's end, from the server
		localErr  error // ours: bad response, output failed
	)
	stream, err := r.client.Execute(callCtx, r.opts.request(), grpc.MaxCallRecvMsgSize(maxRecvMsgSize))
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
			r.progress.status(ev.Status)
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

// isTerminal reports whether w is a character device (a terminal), without
// a dependency on x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
