package sqlcli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
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
	conf          map[string]string
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
	statement     string
}

func (o *options) useTLS() bool {
	return o.tls || o.tlsCA != "" || o.tlsCert != "" || o.tlsKey != "" || o.tlsServerName != ""
}

func (o *options) request() *hiveqv1.ExecuteRequest {
	return &hiveqv1.ExecuteRequest{
		Statement: o.statement,
		Connector: o.connector,
		Database:  o.database,
		Config:    o.conf,
		FetchSize: int32(o.fetchSize),
		MaxRows:   o.maxRows,
	}
}

// usageError is a bad command line (exit 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

const usageHead = `Usage: hiveqd sql [flags] STATEMENT
       hiveqd sql [flags] -  < file.sql

Runs one HiveQL statement on hiveqd and prints its rows on stdout; progress,
errors and the "N rows selected" line go to stderr. A trailing ';' is
dropped. Flags may come before or after the statement.

Formats: table (beeline-like, NULL shown as NULL; buffers up to 10000 rows,
then prints each chunk as its own table), csv (RFC 4180 with CRLF and a
header row; NULL is an empty field, an empty string is ""), json (JSON
Lines: one object per row, NULL as null, bigint as a number, binary as
base64, NaN/Infinity as strings). Binary is base64 in every format.

Authentication: --token-file or $HIVEQD_TOKEN is sent as
"authorization: Bearer <token>". TLS is used when any --tls* flag is given,
plaintext otherwise.

Exit status: 0 success, 1 query or connection error, 2 usage error,
130 cancelled (Ctrl-C).

Flags:
`

// parseArgs parses the command line. Usage problems are usageError; a
// missing token or statement file is a plain error; -h is flag.ErrHelp
// (the usage is then printed on helpOut).
func parseArgs(args []string, getenv func(string) string, stdin io.Reader, helpOut io.Writer) (*options, error) {
	o := &options{conf: map[string]string{}}
	fs := flag.NewFlagSet("hiveqd sql", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := getenv("HIVEQD_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	fs.StringVar(&o.addr, "addr", addr, "hiveqd gRPC address host:port (env HIVEQD_ADDR)")
	fs.StringVar(&o.format, "format", "table", "output format: table, csv or json")
	fs.StringVar(&o.connector, "connector", "", "connector (HS2 cluster); default: the server's default")
	fs.StringVar(&o.database, "database", "", "database for the session; default: default")
	confFn := func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("%q is not key=value", kv)
		}
		o.conf[strings.TrimSpace(k)] = v
		return nil
	}
	fs.Func("conf", "session configuration key=value (repeatable)", confFn)
	fs.Func("hiveconf", "same as --conf (beeline's name)", confFn)
	fs.IntVar(&o.fetchSize, "fetch-size", 0, "rows per HS2 fetch, 1..10000; 0: server default")
	fs.Int64Var(&o.maxRows, "max-rows", 0, "stop after this many rows (the server stops the query); 0: the server's limit")
	fs.DurationVar(&o.timeout, "timeout", 0, "cancel the query after this long (e.g. 30s, 10m); 0: none")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token (default: env HIVEQD_TOKEN)")
	fs.BoolVar(&o.tls, "tls", false, "use TLS with the system's CAs")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA file to verify the server (implies TLS)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM client certificate (with --tls-key; implies TLS)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM client key (with --tls-cert; implies TLS)")
	fs.StringVar(&o.tlsServerName, "tls-server-name", "", "name to verify in the server certificate (implies TLS)")
	fs.BoolVar(&o.plaintext, "plaintext", false, "no TLS (the default without --tls* flags)")
	fs.BoolVar(&o.progress, "progress", false, "show state and progress on stderr even when it is not a terminal")
	fs.BoolVar(&o.silent, "silent", false, "no progress and no final \"rows selected\" line")

	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(helpOut, usageHead)
			fs.SetOutput(helpOut)
			fs.PrintDefaults()
			return nil, err
		}
		if err != nil {
			return nil, usageError{err}
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

	switch o.format {
	case "table", "csv", "json":
	default:
		return nil, usagef("--format %q: want table, csv or json", o.format)
	}
	if o.fetchSize < 0 || o.fetchSize > 10000 {
		return nil, usagef("--fetch-size %d: want 1..10000 (0: server default)", o.fetchSize)
	}
	if o.maxRows < 0 {
		return nil, usagef("--max-rows %d: want >= 0", o.maxRows)
	}
	if o.timeout < 0 {
		return nil, usagef("--timeout %v: want >= 0", o.timeout)
	}
	if o.plaintext && o.useTLS() {
		return nil, usagef("--plaintext conflicts with the --tls* flags")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	if o.addr == "" {
		return nil, usagef("--addr is empty")
	}
	switch len(positional) {
	case 0:
		return nil, usagef("no statement (give it as the last argument, or - to read stdin)")
	case 1:
	default:
		return nil, usagef("one statement expected, got %d arguments: %s (quote the statement)", len(positional), strings.Join(quoteAll(positional), " "))
	}
	stmt := positional[0]
	if stmt == "-" {
		if stdin == nil {
			return nil, errors.New("no standard input to read the statement from")
		}
		b, err := io.ReadAll(io.LimitReader(stdin, maxStatementBytes+1))
		if err != nil {
			return nil, fmt.Errorf("reading the statement from stdin: %w", err)
		}
		stmt = string(b)
	}
	stmt = trimStatement(stmt)
	if stmt == "" {
		return nil, usagef("the statement is empty")
	}
	if len(stmt) > maxStatementBytes {
		return nil, usagef("the statement is longer than %d bytes", maxStatementBytes)
	}
	o.statement = stmt
	if len(o.conf) == 0 {
		o.conf = nil
	}
	return o, nil
}

// trimStatement drops surrounding space and trailing semicolons: HS2
// refuses a statement ending in ';' (beeline strips it too).
func trimStatement(s string) string {
	s = strings.TrimSpace(s)
	for strings.HasSuffix(s, ";") {
		s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
	}
	return s
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
