package hs2sim

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/beltran/gohive/hiveserver"
)

// engine compiles and runs HiveQL: SELECTs on SQLite with Hive-like typing,
// naming and errors, synthetic tables in columnar form, and the HiveQL
// commands (SHOW, USE, DESCRIBE, SET) itself.
type engine struct {
	db      *sql.DB
	pin     *sql.Conn
	cat     *catalog
	version string
}

// maxMaterialized bounds a SQLite result held in memory.
const maxMaterialized = 2_000_000

// sessionView is what compilation needs from a session.
type sessionView struct {
	db   string
	user string
	conf map[string]string
}

// plan is a compiled statement.
type plan struct {
	hasResult bool
	cols      []column
	src       source
	// runErr is a failure found while executing during compilation (a
	// SQLite runtime error); the operation reports it as ERROR_STATE.
	runErr *hiveError
	query  bool              // a SELECT: FailQueries applies
	sync   bool              // runs in the foreground (SET), as HS2's command operations do
	useDB  string            // USE: the new current database
	setKV  map[string]string // SET k=v
}

func (e *engine) close() {
	e.pin.Close()
	e.db.Close()
}

// compile parses, checks and (for SQLite queries) executes stmt. Errors are
// compile errors as HS2 reports them from ExecuteStatement.
func (e *engine) compile(ctx context.Context, sv sessionView, stmt string) (*plan, *hiveError) {
	toks, lerr := lex(stmt)
	if lerr != nil {
		n := lerr.near
		if len(n) > 20 {
			n = n[:20]
		}
		return nil, parseError(lerr.line, lerr.col, []string{n})
	}
	for i, t := range toks {
		if t.isOp(";") {
			if toks[i+1].kind == tkEOF {
				return nil, parseErrorText(fmt.Sprintf("line %d:%d extraneous input ';' expecting EOF near '<EOF>'", t.line, t.col))
			}
			return nil, parseErrorText(fmt.Sprintf("line %d:%d missing EOF at ';' near '%s'", t.line, t.col, toks[i+1].text))
		}
	}
	first := toks[0]
	switch {
	case first.is("select"), first.is("with"), first.isOp("("):
		return e.compileQuery(ctx, sv, stmt, toks)
	case first.is("show"):
		return e.compileShow(sv, toks)
	case first.is("use"):
		return e.compileUse(toks)
	case first.is("describe"), first.is("desc"):
		return e.compileDescribe(sv, toks)
	case first.is("set"):
		return compileSet(sv, stmt, toks), nil
	}
	return nil, parseErrorAt(toks, 0)
}

// rowsPlan is a small result computed at compile time.
func rowsPlan(cols []column, rows [][]any) *plan {
	bufs := make([]*colBuf, len(cols))
	for i, c := range cols {
		bufs[i] = newColBuf(c.typ)
	}
	for _, r := range rows {
		for i := range cols {
			_ = bufs[i].appendValue(r[i])
		}
	}
	return &plan{hasResult: true, cols: cols, src: &memSource{cols: bufs, n: len(rows)}}
}

func (e *engine) compileUse(toks []token) (*plan, *hiveError) {
	name, ok := toks[1].ident()
	if !ok || toks[2].kind != tkEOF {
		return nil, parseErrorAt(toks, 1)
	}
	if !e.cat.hasDB(name) {
		return nil, semanticError(errDatabaseMissing, "Database does not exist: "+name)
	}
	return &plan{useDB: strings.ToLower(name)}, nil
}

// showPattern compiles a SHOW ... LIKE pattern: '*' matches anything, '|'
// separates alternatives, case-insensitive (Hive's semantics, not SQL's).
func showPattern(p string) *regexp.Regexp {
	var alts []string
	for _, a := range strings.Split(p, "|") {
		alts = append(alts, strings.ReplaceAll(regexp.QuoteMeta(strings.TrimSpace(a)), `\*`, ".*"))
	}
	return regexp.MustCompile("(?i)^(" + strings.Join(alts, "|") + ")$")
}

func (e *engine) compileShow(sv sessionView, toks []token) (*plan, *hiveError) {
	i := 1
	pattern := func() (*regexp.Regexp, bool) {
		if toks[i].is("like") {
			i++
		}
		if toks[i].kind == tkString {
			re := showPattern(toks[i].val)
			i++
			return re, true
		}
		return nil, true
	}
	switch {
	case toks[i].is("databases"), toks[i].is("schemas"):
		i++
		re, _ := pattern()
		if toks[i].kind != tkEOF {
			return nil, parseErrorAt(toks, i)
		}
		var rows [][]any
		for _, db := range e.cat.databases() {
			if re == nil || re.MatchString(db) {
				rows = append(rows, []any{db})
			}
		}
		return rowsPlan([]column{{name: "database_name", typ: tString}}, rows), nil
	case toks[i].is("tables"):
		i++
		db := sv.db
		if toks[i].is("in") || toks[i].is("from") {
			name, ok := toks[i+1].ident()
			if !ok {
				return nil, parseErrorAt(toks, i+1)
			}
			db = name
			i += 2
		}
		re, _ := pattern()
		if toks[i].kind != tkEOF {
			return nil, parseErrorAt(toks, i)
		}
		if !e.cat.hasDB(db) {
			return nil, semanticError(errDatabaseMissing, "Database does not exist: "+db)
		}
		var rows [][]any
		for _, t := range e.cat.tables(db) {
			if re == nil || re.MatchString(t) {
				rows = append(rows, []any{t})
			}
		}
		return rowsPlan([]column{{name: "tab_name", typ: tString}}, rows), nil
	}
	return nil, parseErrorAt(toks, i)
}

func (e *engine) compileDescribe(sv sessionView, toks []token) (*plan, *hiveError) {
	i := 1
	if toks[i].is("extended") || toks[i].is("formatted") {
		i++
	}
	db := sv.db
	name, ok := toks[i].ident()
	if !ok {
		return nil, parseErrorAt(toks, i)
	}
	written := name
	i++
	if toks[i].isOp(".") {
		n2, ok := toks[i+1].ident()
		if !ok {
			return nil, parseErrorAt(toks, i+1)
		}
		db, name, written = name, n2, name+"."+n2
		i += 2
	}
	if toks[i].kind != tkEOF {
		return nil, parseErrorAt(toks, i)
	}
	t := e.cat.lookup(db, name)
	if t == nil {
		return nil, semanticError(errInvalidTable, "Table not found "+written)
	}
	var rows [][]any
	for _, c := range t.cols {
		rows = append(rows, []any{c.name, c.typ.String(), c.comment})
	}
	return rowsPlan([]column{{name: "col_name", typ: tString}, {name: "data_type", typ: tString}, {name: "comment", typ: tString}}, rows), nil
}

// compileSet handles SET [k[=v]] like Hive's SetProcessor: the text after
// SET is split at the first '='.
func compileSet(sv sessionView, stmt string, toks []token) *plan {
	rest := ""
	if toks[1].kind != tkEOF {
		rest = strings.TrimSpace(stmt[toks[1].pos:])
	}
	setCol := []column{{name: "set", typ: tString}}
	if rest == "" || rest == "-v" {
		keys := make([]string, 0, len(sv.conf))
		for k := range sv.conf {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var rows [][]any
		for _, k := range keys {
			rows = append(rows, []any{k + "=" + sv.conf[k]})
		}
		p := rowsPlan(setCol, rows)
		p.sync = true
		return p
	}
	if k, v, ok := strings.Cut(rest, "="); ok {
		k = strings.TrimPrefix(strings.TrimSpace(k), "hiveconf:")
		return &plan{sync: true, setKV: map[string]string{k: strings.TrimSpace(v)}}
	}
	k := strings.TrimPrefix(rest, "hiveconf:")
	line := k + " is undefined"
	if v, ok := sv.conf[k]; ok {
		line = k + "=" + v
	}
	p := rowsPlan(setCol, [][]any{{line}})
	p.sync = true
	return p
}

// source produces an operation's rows in columnar batches.
type source interface {
	// read returns up to n rows from row off, and how many it returned.
	read(off int64, n int) ([]*hiveserver.TColumn, int)
	// synthetic reports whether pacing applies.
	synthetic() bool
}

// memSource is a materialised result.
type memSource struct {
	cols []*colBuf
	n    int
}

func (m *memSource) read(off int64, n int) ([]*hiveserver.TColumn, int) {
	if off > int64(m.n) {
		off = int64(m.n)
	}
	n = min(n, m.n-int(off))
	out := make([]*hiveserver.TColumn, len(m.cols))
	for i, c := range m.cols {
		out[i] = c.tcolumn(int(off), n)
	}
	return out, n
}

func (m *memSource) synthetic() bool { return false }

// sortedKeys returns m's keys sorted.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validDB reports whether name is a database (used by OpenSession's use:).
func (e *engine) validDB(name string) bool { return e.cat.hasDB(name) }
