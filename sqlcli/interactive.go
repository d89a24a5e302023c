package sqlcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/ergochat/readline"
)

// The interactive mode is built on github.com/ergochat/readline: pure Go
// (no cgo), maintained, with a history file, Emacs keys, and Ctrl-C and
// Ctrl-D reported as errors (ErrInterrupt, io.EOF) so that the prompt
// decides what they mean. While a statement runs the terminal is back in
// cooked mode, so Ctrl-C arrives as SIGINT (Command.Signals) and cancels
// it.

const interactiveHelp = `Statements end with ';' and may span several lines.
  !quit, !q, Ctrl-D        leave
  !connect ADDR            connect to another hiveqd (host:port)
  !set format FORMAT       table, vertical, csv, tsv or json
  !set hivevar NAME=VALUE  a variable for ${NAME} in the next statements (as --hivevar)
  !set hiveconf KEY=VALUE  a session setting for the next statements (as --hiveconf)
  !set                     show the settings
  !help                    this help
Ctrl-C cancels the running query; at an empty prompt, press it twice to leave.
`

// historyPath is $XDG_STATE_HOME/hiveqd/history, else
// ~/.local/state/hiveqd/history; "" when neither is known.
func historyPath(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "hiveqd", "history")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "hiveqd", "history")
	}
	return ""
}

// prompt is "hiveqd:CONNECTOR/DATABASE> ", or its continuation.
func (r *runner) prompt(continued bool) string {
	conn := r.opts.connector
	if conn == "" {
		conn = r.connector
	}
	if conn == "" {
		conn = "default"
	}
	db := r.opts.database
	if db == "" {
		db = "default"
	}
	p := fmt.Sprintf("hiveqd:%s/%s> ", conn, db)
	if continued {
		return strings.Repeat(" ", max(0, len(p)-6)) + ". . > "
	}
	return p
}

// interactive reads statements at a prompt until !quit, Ctrl-D, or two
// Ctrl-C at an empty prompt. The exit code is that of the last statement
// (0 after a cancelled one).
func (r *runner) interactive(ctx context.Context, c *Command) int {
	hist := historyPath(r.getenv)
	if hist != "" {
		if err := os.MkdirAll(filepath.Dir(hist), 0o700); err != nil {
			fmt.Fprintf(r.stderr, "hiveqd sql: no history: %v\n", err)
			hist = ""
		}
	}
	winch := newResizeWatcher()
	defer winch.close()
	rl, err := readline.NewFromConfig(&readline.Config{
		Prompt:                 r.prompt(false),
		HistoryFile:            hist,
		HistoryLimit:           1000,
		DisableAutoSaveHistory: true,
		Stdin:                  c.Stdin,
		// The prompt and the typed text go to stderr, with progress and
		// errors: stdout holds only results, so it can be redirected.
		Stdout: r.stderr,
		Stderr: r.stderr,
		// readline's own SIGWINCH watcher lives as long as the process;
		// this one ends with the session.
		FuncOnWidthChanged: winch.onChange,
	})
	if err != nil {
		fmt.Fprintf(r.stderr, "hiveqd sql: %v\n", err)
		return ExitError
	}
	defer rl.Close()
	sw := watchSignals(c.Signals, func() { rl.Close() })
	defer sw.close()
	fmt.Fprintf(r.stderr, "Connected to hiveqd at %s. Statements end with ';'. !help for help, Ctrl-D to leave.\n", r.opts.addr)

	var (
		buf         []string // the lines of the unfinished statement
		interrupted bool     // the last key at an empty prompt was Ctrl-C
		code        = ExitOK
	)
	for ctx.Err() == nil && !sw.term.Load() {
		rl.SetPrompt(r.prompt(len(buf) > 0))
		line, err := rl.ReadLine()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			if len(buf) == 0 && line == "" {
				if interrupted {
					return code
				}
				interrupted = true
				fmt.Fprintln(r.stderr, "(Ctrl-C again or Ctrl-D to leave)")
				continue
			}
			buf, interrupted = nil, false // Ctrl-C drops what was typed
			continue
		case sw.term.Load():
			fmt.Fprintln(r.stderr)
			return ExitInterrupted
		case errors.Is(err, io.EOF):
			if len(buf) > 0 || line != "" {
				buf = nil // Ctrl-D drops the unfinished statement
				fmt.Fprintln(r.stderr)
				continue
			}
			return code
		case err != nil:
			fmt.Fprintf(r.stderr, "hiveqd sql: %v\n", err)
			return ExitError
		}
		interrupted = false
		if len(buf) == 0 && strings.HasPrefix(strings.TrimSpace(line), "!") {
			if quit := r.command(ctx, strings.TrimSpace(line)); quit {
				return code
			}
			_ = rl.SaveToHistory(strings.TrimSpace(line))
			continue
		}
		if len(buf) == 0 && Blank(line) {
			continue
		}
		buf = append(buf, line)
		stmts, rest := Split(strings.Join(buf, "\n"))
		if len(stmts) == 0 {
			if Blank(rest) && strings.HasSuffix(strings.TrimSpace(line), ";") {
				buf = nil // only ';' and comments
			}
			continue
		}
		saveHistory(rl, buf)
		buf = nil
		if !Blank(rest) {
			buf = []string{rest}
		}
		for _, stmt := range stmts {
			if code = sw.exec(ctx, r, stmt); code == ExitInterrupted {
				code = ExitOK // back to the prompt
				break
			}
		}
	}
	return ExitInterrupted
}

// saveHistory keeps a statement as one history entry (its lines joined by
// spaces), unless a line comment would swallow the lines after it.
func saveHistory(rl *readline.Instance, lines []string) {
	joined := true
	for _, l := range lines[:len(lines)-1] {
		if strings.Contains(l, "--") {
			joined = false
		}
	}
	if joined {
		_ = rl.SaveToHistory(strings.Join(trimAll(lines), " "))
		return
	}
	for _, l := range lines {
		_ = rl.SaveToHistory(l)
	}
}

func trimAll(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// resizeWatcher calls readline back when the terminal is resized, until
// closed.
type resizeWatcher struct {
	once    sync.Once
	sigs    chan os.Signal
	stop    chan struct{}
	stopped chan struct{}
}

func newResizeWatcher() *resizeWatcher {
	return &resizeWatcher{sigs: make(chan os.Signal, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
}

func (w *resizeWatcher) onChange(f func()) {
	w.once.Do(func() {
		signal.Notify(w.sigs, syscall.SIGWINCH)
		go func() {
			defer close(w.stopped)
			for {
				select {
				case <-w.sigs:
					f()
				case <-w.stop:
					return
				}
			}
		}()
	})
}

func (w *resizeWatcher) close() {
	signal.Stop(w.sigs)
	close(w.stop)
	started := true
	w.once.Do(func() { started = false })
	if started {
		<-w.stopped
	}
}

// signalWatcher routes signals during an interactive session: SIGINT
// cancels the running statement (at the prompt the terminal is raw, and
// Ctrl-C arrives as a key instead); SIGTERM also ends the session.
type signalWatcher struct {
	mu      sync.Mutex
	cancel  context.CancelFunc // the running statement's; nil at the prompt
	term    atomic.Bool
	stop    chan struct{}
	stopped chan struct{}
}

func watchSignals(sigs <-chan os.Signal, onTerm func()) *signalWatcher {
	w := &signalWatcher{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(w.stopped)
		for {
			select {
			case sig := <-sigs: // a nil channel never delivers
				w.mu.Lock()
				if w.cancel != nil {
					w.cancel()
				}
				w.mu.Unlock()
				if sig == syscall.SIGTERM {
					w.term.Store(true)
					onTerm()
					return
				}
			case <-w.stop:
				return
			}
		}
	}()
	return w
}

func (w *signalWatcher) close() {
	close(w.stop)
	<-w.stopped
}

// exec runs one statement that a signal can cancel.
func (w *signalWatcher) exec(ctx context.Context, r *runner, stmt string) int {
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	code := r.exec(qctx, stmt)
	w.mu.Lock()
	w.cancel = nil
	w.mu.Unlock()
	return code
}

// command runs a !command; it reports whether the session ends.
func (r *runner) command(ctx context.Context, line string) (quit bool) {
	f := strings.Fields(strings.TrimPrefix(line, "!"))
	if len(f) == 0 {
		f = []string{"help"}
	}
	switch strings.ToLower(f[0]) {
	case "quit", "q", "exit":
		return true
	case "help", "h", "?":
		fmt.Fprint(r.stderr, interactiveHelp)
	case "connect":
		if len(f) != 2 {
			fmt.Fprintln(r.stderr, "Usage: !connect HOST:PORT")
			return false
		}
		if err := r.connect(ctx, f[1]); err != nil {
			fmt.Fprintf(r.stderr, "Error: %v\n", err)
			return false
		}
		r.connector = ""
		fmt.Fprintf(r.stderr, "Connected to hiveqd at %s.\n", f[1])
	case "set":
		r.set(f[1:])
	default:
		fmt.Fprintf(r.stderr, "Unknown command !%s; !help lists the commands.\n", f[0])
	}
	return false
}

func (r *runner) set(args []string) {
	switch {
	case len(args) == 0:
		fmt.Fprintf(r.stderr, "format %s\naddr %s\ndatabase %s\n", r.opts.format, r.opts.addr, orDefault(r.opts.database))
		for _, k := range sortedKeys(r.opts.vars) {
			fmt.Fprintf(r.stderr, "hivevar %s=%s\n", k, r.opts.vars[k])
		}
		for _, k := range sortedKeys(r.opts.conf) {
			fmt.Fprintf(r.stderr, "hiveconf %s=%s\n", k, r.opts.conf[k])
		}
	case len(args) == 2 && (args[0] == "hivevar" || args[0] == "hiveconf"):
		k, v, ok := strings.Cut(args[1], "=")
		if !ok || k == "" {
			fmt.Fprintf(r.stderr, "Usage: !set %s NAME=VALUE\n", args[0])
			return
		}
		m := r.opts.conf
		if args[0] == "hivevar" {
			m = r.opts.vars
		}
		m[k] = v
	case len(args) == 2 && (args[0] == "format" || args[0] == "outputformat"):
		if !slices.Contains(Formats, args[1]) {
			fmt.Fprintf(r.stderr, "Error: format %q: want one of %s\n", args[1], strings.Join(Formats, ", "))
			return
		}
		r.opts.format = args[1]
	default:
		fmt.Fprintln(r.stderr, "Usage: !set format table|vertical|csv|tsv|json, !set hivevar NAME=VALUE, !set hiveconf KEY=VALUE")
	}
}

func orDefault(db string) string {
	if db == "" {
		return "default"
	}
	return db
}
