package sqlcli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/cliflags"
)

// DefaultAddr is hiveqd's default listen address.
const DefaultAddr = "127.0.0.1:9090"

// maxStatementBytes is the server's limit; checked here to fail early.
const maxStatementBytes = 1 << 20

type options struct {
	addr          string
	format        string
	connector     string
	database      string
	conf          map[string]string // --hiveconf
	vars          map[string]string // --hivevar
	fetchSize     int
	maxRows       int64
	timeout       time.Duration
	tokenFile     string
	tls           bool
	tlsCA         string
	tlsCert       string
	tlsKey        string
	tlsServerName string
	plaintext     bool
	progress      bool
	silent        bool
	force         bool

	// statements to run; nil with interactive set: read them at a prompt.
	statements  []string
	interactive bool
}

func (o *options) useTLS() bool {
	return o.tls || o.tlsCA != "" || o.tlsCert != "" || o.tlsKey != "" || o.tlsServerName != ""
}

// request is the ExecuteRequest of one statement. --hivevar k=v travels as
// config key "hivevar:k", which hiveqd opens the HS2 session with as
// set:hivevar:k (beeline's key), so HS2 substitutes ${k} and ${hivevar:k};
// --hiveconf k=v becomes set:hiveconf:k.
func (o *options) request(stmt string) *hiveqv1.ExecuteRequest {
	var conf map[string]string
	if len(o.conf)+len(o.vars) > 0 {
		conf = make(map[string]string, len(o.conf)+len(o.vars))
		for k, v := range o.conf {
			conf[k] = v
		}
		for k, v := range o.vars {
			conf["hivevar:"+k] = v
		}
	}
	return &hiveqv1.ExecuteRequest{
		Statement: stmt,
		Connector: o.connector,
		Database:  o.database,
		Config:    conf,
		FetchSize: int32(o.fetchSize),
		MaxRows:   o.maxRows,
		// Integers and strings as buffers: fewer allocations per row.
		BatchLayout: hiveqv1.BatchLayout_BATCH_LAYOUT_COMPACT,
	}
}

// usageError is a bad command line (exit 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

const usageHead = `Usage: hiveqd sql [flags]                      interactive, on a terminal
       hiveqd sql [flags] -e "STMT; STMT ..."    run statements
       hiveqd sql [flags] -f FILE                run a script (- is stdin)
       hiveqd sql [flags] < FILE                 run a script from stdin
       hiveqd sql [flags] STATEMENT              run one statement

Runs HiveQL on hiveqd and prints each result on stdout; progress, errors
and the "N rows selected" lines go to stderr. Scripts are split into
statements at each ';' outside quotes, backquotes and comments, as beeline
does; each result is printed in turn, and the run stops at the first error
unless --force is given. USE db and SET k=v carry to the statements that
follow (hiveqd may run each on another pooled HS2 session, so the client
sends them with each). Flags may come before or after a statement.

Interactive mode (a terminal and no statement): statements end with ';'
and may span lines; Up/Down recall history (kept in
$XDG_STATE_HOME/hiveqd/history, else ~/.local/state/hiveqd/history);
Ctrl-C cancels the running query (and, at an empty prompt twice, exits);
Ctrl-D or !quit exits; !help lists the other commands.

Formats: table (beeline-like, NULL shown as NULL; buffers up to 10000 rows,
then prints each chunk as its own table), vertical (one "column value"
line per column, a blank line between rows; NULL as NULL), csv (RFC 4180
with CRLF and a header row; NULL is an empty field, an empty string is ""),
tsv (a header row, tab-separated, \t \n \r \\ escaped; NULL as NULL), json
(JSON Lines: one object per row, NULL as null, bigint as a number, binary
as base64, NaN/Infinity as strings). Binary is base64 in every format.

Variables: --hivevar k=v and --hiveconf k=v are set in the HS2 session, so
HS2 replaces ${k}, ${hivevar:k} and ${hiveconf:k} in the statements.

Authentication: --token-file or $HIVEQD_TOKEN is sent as
"authorization: Bearer <token>". TLS is used when any --tls* flag is given,
plaintext otherwise.

Exit status: 0 every statement succeeded, 1 a statement or the connection
failed, 2 usage error, 130 cancelled (Ctrl-C).
`

// flagGroups are the help's groups, in order.
var flagGroups = []string{"Statements", "Session", "Output", "Connection"}

// flagGroup is each flag's group in the help.
func flagGroup(name string) string {
	switch name {
	case "e", "f", "force", "timeout":
		return "Statements"
	case "addr", "token-file", "tls", "tls-ca", "tls-cert", "tls-key", "tls-server-name", "plaintext":
		return "Connection"
	case "connector", "database", "hiveconf", "conf", "hivevar", "fetch-size", "max-rows":
		return "Session"
	}
	return "Output"
}

// parseArgs parses the command line. Usage problems are usageError; a
// missing token or script file is a plain error; -h is flag.ErrHelp (the
// usage is then printed on helpOut). stdinTerminal chooses interactive
// mode when no statement is given.
func parseArgs(args []string, getenv func(string) string, stdin io.Reader, stdinTerminal bool, helpOut io.Writer) (*options, error) {
	o := &options{conf: map[string]string{}, vars: map[string]string{}}
	fs := flag.NewFlagSet("hiveqd sql", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	addr := getenv("HIVEQD_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	var exec, file string
	fs.StringVar(&exec, "e", "", "statements to run, separated by ';'")
	fs.StringVar(&file, "f", "", "script file to run (- is stdin)")
	fs.BoolVar(&o.force, "force", false, "go on after a failed statement (the exit status is still 1)")
	fs.StringVar(&o.addr, "addr", addr, "hiveqd gRPC address host:port (env HIVEQD_ADDR)")
	fs.StringVar(&o.format, "format", "table", "output format: "+strings.Join(Formats, ", "))
	fs.StringVar(&o.connector, "connector", "", "connector (HS2 cluster); default: the server's default")
	fs.StringVar(&o.database, "database", "", "database of the session; default: default (USE db changes it)")
	kvInto := func(m map[string]string) func(string) error {
		return func(kv string) error {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("%q is not key=value", kv)
			}
			m[strings.TrimSpace(k)] = v
			return nil
		}
	}
	fs.Func("hiveconf", "session configuration key=value, set:hiveconf in HS2 (repeatable)", kvInto(o.conf))
	fs.Func("conf", "same as --hiveconf", kvInto(o.conf))
	fs.Func("hivevar", "variable key=value for ${key} substitution, set:hivevar in HS2 (repeatable)", kvInto(o.vars))
	fs.IntVar(&o.fetchSize, "fetch-size", 0, "rows per HS2 fetch, 1..10000; 0: server default")
	fs.Int64Var(&o.maxRows, "max-rows", 0, "stop after this many rows (the server stops the query); 0: the server's limit")
	fs.DurationVar(&o.timeout, "timeout", 0, "cancel each statement after this long (e.g. 30s, 10m); 0: none")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token (default: env HIVEQD_TOKEN)")
	fs.BoolVar(&o.tls, "tls", false, "use TLS with the system's CAs")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA file to verify the server (implies TLS)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM client certificate (with --tls-key; implies TLS)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM client key (with --tls-cert; implies TLS)")
	fs.StringVar(&o.tlsServerName, "tls-server-name", "", "name to verify in the server certificate (implies TLS)")
	fs.BoolVar(&o.plaintext, "plaintext", false, "no TLS (the default without --tls* flags)")
	fs.BoolVar(&o.progress, "progress", false, "show progress as plain lines on stderr (on a terminal: one line updated in place)")
	fs.BoolVar(&o.silent, "silent", false, "no progress and no \"rows selected\" lines")

	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(helpOut, usageHead)
			docs := cliflags.FromFlagSet(fs, flagGroup)
			slices.SortStableFunc(docs, func(a, b cliflags.Doc) int {
				return slices.Index(flagGroups, a.Group) - slices.Index(flagGroups, b.Group)
			})
			cliflags.Print(helpOut, docs)
			return nil, err
		}
		if err != nil {
			return nil, usageError{cliflags.Error(err)}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	script, err := scriptOf(exec, file, positional, stdin, stdinTerminal)
	if err != nil {
		return nil, err
	}
	if script == nil {
		o.interactive = true
		return o, nil
	}
	o.statements = Statements(*script)
	for _, s := range o.statements {
		if len(s) > maxStatementBytes {
			return nil, usagef("a statement is longer than %d bytes", maxStatementBytes)
		}
	}
	return o, nil
}

func (o *options) check() error {
	if !slices.Contains(Formats, o.format) {
		return usagef("--format %q: want one of %s", o.format, strings.Join(Formats, ", "))
	}
	if o.fetchSize < 0 || o.fetchSize > 10000 {
		return usagef("--fetch-size %d: want 1..10000 (0: server default)", o.fetchSize)
	}
	if o.maxRows < 0 {
		return usagef("--max-rows %d: want >= 0", o.maxRows)
	}
	if o.timeout < 0 {
		return usagef("--timeout %v: want >= 0", o.timeout)
	}
	if o.plaintext && o.useTLS() {
		return usagef("--plaintext conflicts with the --tls* flags")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if o.addr == "" {
		return usagef("--addr is empty")
	}
	return nil
}

// scriptOf is the script to run: -e, -f, the positional statement (- is
// stdin), else stdin when it is not a terminal; nil: interactive.
func scriptOf(exec, file string, positional []string, stdin io.Reader, stdinTerminal bool) (*string, error) {
	given := 0
	for _, set := range []bool{exec != "", file != "", len(positional) > 0} {
		if set {
			given++
		}
	}
	if given > 1 {
		return nil, usagef("give statements one way: -e, -f or as an argument")
	}
	if len(positional) > 1 {
		return nil, usagef("one statement argument expected, got %d: %s (quote the statement, or use -e)", len(positional), strings.Join(quoteAll(positional), " "))
	}
	readStdin := func() (*string, error) {
		if stdin == nil {
			return nil, errors.New("no standard input to read statements from")
		}
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading statements from stdin: %w", err)
		}
		s := string(b)
		return &s, nil
	}
	switch {
	case exec != "":
		return &exec, nil
	case file == "-":
		return readStdin()
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("-f: %w", err)
		}
		s := string(b)
		return &s, nil
	case len(positional) == 1 && positional[0] == "-":
		return readStdin()
	case len(positional) == 1:
		return &positional[0], nil
	case stdinTerminal:
		return nil, nil
	}
	return readStdin()
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// sortedKeys is for deterministic output.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
