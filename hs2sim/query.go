package hs2sim

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// tableRef is a table (or subquery) named in a FROM or JOIN clause.
type tableRef struct {
	start, end int // token range of the name
	db, name   string
	written    string // as written, for errors
	alias      string
	depth      int
	tbl        *table // nil: missing, a CTE or a subquery
	cte        bool
	subquery   bool
	tok        token // first token, for error positions
}

// clauseEnd are words that end a FROM clause's table list.
var clauseEnd = map[string]bool{
	"where": true, "group": true, "order": true, "having": true, "limit": true, "union": true,
	"on": true, "using": true, "window": true, "cluster": true, "distribute": true, "sort": true,
	"lateral": true, "select": true, "intersect": true, "except": true,
}

// notAlias are words that can follow a table name without being its alias.
var notAlias = map[string]bool{
	"where": true, "join": true, "left": true, "right": true, "inner": true, "outer": true, "full": true,
	"cross": true, "on": true, "group": true, "order": true, "limit": true, "having": true, "union": true,
	"using": true, "natural": true, "lateral": true, "window": true, "sort": true, "cluster": true,
	"distribute": true, "select": true, "from": true, "intersect": true, "except": true, "semi": true,
	"tablesample": true, "as": true,
}

// scanRefs finds the table references of a query and the names its WITH
// clause defines.
func scanRefs(toks []token, currentDB string, cat *catalog) []tableRef {
	ctes := map[string]bool{}
	if toks[0].is("with") {
		for i := 1; i+2 < len(toks); {
			name, ok := toks[i].ident()
			if !ok || !toks[i+1].is("as") || !toks[i+2].isOp("(") {
				break
			}
			ctes[strings.ToLower(name)] = true
			j := matchParen(toks, i+2)
			if j < 0 || !toks[j+1].isOp(",") {
				break
			}
			i = j + 2
		}
	}
	var refs []tableRef
	inFrom := map[int]bool{}
	depth := 0
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.isOp("("):
			depth++
		case t.isOp(")"):
			inFrom[depth] = false
			depth--
		case t.is("from") || t.is("join"):
			inFrom[depth] = true
			if r, ok := parseRef(toks, i+1, depth, currentDB, cat, ctes); ok {
				refs = append(refs, r)
			}
		case t.isOp(",") && inFrom[depth]:
			if r, ok := parseRef(toks, i+1, depth, currentDB, cat, ctes); ok {
				refs = append(refs, r)
			}
		case t.kind == tkIdent && clauseEnd[strings.ToLower(t.text)]:
			inFrom[depth] = false
		}
	}
	return refs
}

// matchParen returns the index of the ')' closing toks[i] == '(' or -1.
func matchParen(toks []token, i int) int {
	depth := 0
	for j := i; j < len(toks); j++ {
		switch {
		case toks[j].isOp("("):
			depth++
		case toks[j].isOp(")"):
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

func parseRef(toks []token, j, depth int, currentDB string, cat *catalog, ctes map[string]bool) (tableRef, bool) {
	r := tableRef{start: j, depth: depth, tok: toks[j]}
	if toks[j].isOp("(") {
		m := matchParen(toks, j)
		if m < 0 {
			return r, false
		}
		r.subquery, r.end = true, m+1
	} else {
		name, ok := toks[j].ident()
		if !ok || toks[j].kind == tkIdent && notAlias[strings.ToLower(name)] {
			return r, false
		}
		r.db, r.name, r.written, r.end = currentDB, name, name, j+1
		if toks[j+1].isOp(".") {
			n2, ok := toks[j+2].ident()
			if !ok {
				return r, false
			}
			r.db, r.name, r.written, r.end = name, n2, name+"."+n2, j+3
		} else if ctes[strings.ToLower(name)] {
			r.cte = true
		}
		r.db, r.name = strings.ToLower(r.db), strings.ToLower(r.name)
		r.alias = r.name
		if !r.cte {
			r.tbl = cat.lookup(r.db, r.name)
		}
	}
	k := r.end
	if toks[k].is("as") {
		k++
	}
	if a, ok := toks[k].ident(); ok && !(toks[k].kind == tkIdent && notAlias[strings.ToLower(a)]) {
		r.alias = strings.ToLower(a)
	}
	return r, true
}

// rewrite turns HiveQL tokens into SQLite text: backtick identifiers and
// Hive string literals requoted, table names qualified with their
// database, Hive-only functions and operators replaced.
func (e *engine) rewrite(stmt string, toks []token, refs []tableRef, sv sessionView) string {
	starts := map[int]*tableRef{}
	for i := range refs {
		if !refs[i].subquery && !refs[i].cte {
			starts[refs[i].start] = &refs[i]
		}
	}
	var b strings.Builder
	prev := 0
	for i := 0; i < len(toks) && toks[i].kind != tkEOF; i++ {
		t := toks[i]
		b.WriteString(stmt[prev:t.pos])
		prev = t.end
		if r := starts[i]; r != nil {
			b.WriteString(sqlIdent(r.db) + "." + sqlIdent(r.name))
			i = r.end - 1
			prev = toks[i].end
			continue
		}
		switch t.kind {
		case tkQIdent:
			b.WriteString(sqlIdent(t.val))
		case tkString:
			b.WriteString(sqlQuote(t.val))
		case tkNumber:
			b.WriteString(strings.TrimRight(strings.TrimSuffix(strings.TrimSuffix(t.text, "BD"), "bd"), "LSYlsy"))
		case tkOp:
			if t.text == "<=>" {
				b.WriteString(" IS ")
			} else {
				b.WriteString(t.text)
			}
		default:
			if toks[i+1].isOp("(") && toks[i+2].isOp(")") {
				if v, ok := builtinValue(strings.ToLower(t.text), sv, e.version); ok {
					b.WriteString(sqlQuote(v))
					i += 2
					prev = toks[i].end
					continue
				}
			}
			b.WriteString(t.text)
		}
	}
	b.WriteString(stmt[prev:len(stmt)])
	return b.String()
}

// builtinValue evaluates Hive's session functions that SQLite lacks.
func builtinValue(fn string, sv sessionView, version string) (string, bool) {
	switch fn {
	case "current_database":
		return sv.db, true
	case "current_user", "logged_in_user":
		return sv.user, true
	case "version":
		return version + " r" + strings.Repeat("0", 40), true
	}
	return "", false
}

// selectItems splits the main SELECT list at top-level commas. It returns
// nil when the statement has no plain SELECT list at the top.
func selectItems(toks []token) [][]token {
	i := 0
	if toks[0].is("with") {
		for i = 1; i+2 < len(toks); {
			if _, ok := toks[i].ident(); !ok || !toks[i+1].is("as") || !toks[i+2].isOp("(") {
				return nil
			}
			j := matchParen(toks, i+2)
			if j < 0 {
				return nil
			}
			i = j + 1
			if toks[i].isOp(",") {
				i++
				continue
			}
			break
		}
	}
	if !toks[i].is("select") {
		return nil
	}
	i++
	if toks[i].is("distinct") || toks[i].is("all") {
		i++
	}
	var items [][]token
	var cur []token
	depth := 0
	for ; i < len(toks); i++ {
		t := toks[i]
		if depth == 0 && (t.kind == tkEOF || t.is("from") || t.is("where") || t.is("group") ||
			t.is("order") || t.is("limit") || t.is("union") || t.is("having")) {
			break
		}
		switch {
		case t.isOp("("):
			depth++
		case t.isOp(")"):
			depth--
		}
		if depth == 0 && t.isOp(",") {
			items = append(items, cur)
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	if len(cur) > 0 {
		items = append(items, cur)
	}
	return items
}

// exprWords are keywords that can precede a trailing identifier inside an
// expression, so that identifier is not an alias.
var exprWords = map[string]bool{
	"and": true, "or": true, "not": true, "is": true, "in": true, "like": true, "rlike": true, "regexp": true,
	"between": true, "when": true, "then": true, "else": true, "case": true, "distinct": true, "select": true,
}

// aliasWords can't be an alias.
var aliasWords = map[string]bool{"end": true, "null": true, "true": true, "false": true}

// itemName is Hive's column name for a select item: its alias, a column's
// name, or "" for an expression (Hive then says _c<i>).
func itemName(item []token) string {
	n := len(item)
	if n == 0 {
		return ""
	}
	last := item[n-1]
	if name, ok := last.ident(); ok && n >= 2 && !(last.kind == tkIdent && aliasWords[strings.ToLower(name)]) {
		p := item[n-2]
		switch {
		case p.is("as"):
			return strings.ToLower(name)
		case p.isOp(")"), p.kind == tkString, p.kind == tkNumber, p.kind == tkQIdent,
			p.kind == tkIdent && !exprWords[strings.ToLower(p.text)]:
			if !p.isOp(".") {
				return strings.ToLower(name)
			}
		}
	}
	// a column reference: name or qualifier.name
	if n%2 == 1 {
		for k, t := range item {
			if k%2 == 1 && !t.isOp(".") {
				return ""
			}
			if k%2 == 0 {
				if _, ok := t.ident(); !ok || t.kind == tkIdent && aliasWords[strings.ToLower(t.text)] {
					return ""
				}
			}
		}
		name, _ := last.ident()
		return strings.ToLower(name)
	}
	return ""
}

// itemTypeHint is the Hive type of aggregate and literal items whose SQLite
// value alone would be typed wrongly.
func itemTypeHint(item []token) (hiveType, bool) {
	if len(item) == 0 {
		return hiveType{}, false
	}
	f := item[0]
	if len(item) >= 3 && f.kind == tkIdent && item[1].isOp("(") {
		switch strings.ToLower(f.text) {
		case "count", "sum":
			return tBigint, true
		case "avg", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp":
			return tDouble, true
		}
	}
	if f.is("true") || f.is("false") {
		return tBoolean, true
	}
	if f.kind == tkNumber && strings.HasSuffix(strings.ToUpper(f.text), "L") {
		return tBigint, true
	}
	return hiveType{}, false
}

func isStarItem(item []token) (qualifier string, ok bool) {
	if len(item) == 1 && item[0].isOp("*") {
		return "", true
	}
	if len(item) == 3 && item[1].isOp(".") && item[2].isOp("*") {
		q, ok := item[0].ident()
		return strings.ToLower(q), ok
	}
	return "", false
}

func (e *engine) compileQuery(ctx context.Context, sv sessionView, stmt string, toks []token) (*plan, *hiveError) {
	refs := scanRefs(toks, sv.db, e.cat)
	for _, r := range refs {
		if r.tbl != nil && r.tbl.synth != 0 {
			return e.compileSynth(toks, r)
		}
	}
	sqlText := e.rewrite(stmt, toks, refs, sv)
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, runtimeError("hs2sim: " + err.Error())
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, sqlText)
	if err != nil {
		return nil, e.compileErr(err, toks, refs)
	}
	defer rows.Close()
	names, _ := rows.Columns()
	cts, _ := rows.ColumnTypes()
	var data [][]any
	var runErr *hiveError
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			runErr = runtimeError("hs2sim: " + err.Error())
			break
		}
		data = append(data, vals)
		if len(data) > maxMaterialized {
			runErr = runtimeError(fmt.Sprintf("hs2sim: a SQLite result is limited to %d rows", maxMaterialized))
			break
		}
	}
	if err := rows.Err(); err != nil && runErr == nil {
		runErr = sqliteRuntimeError(err)
	}
	items := selectItems(toks)
	cols := make([]column, len(names))
	for i := range names {
		cols[i].typ = resultType(cts[i].DatabaseTypeName(), i, items, len(names), data)
	}
	nameColumns(cols, names, items, refs)
	bufs := make([]*colBuf, len(cols))
	for i, c := range cols {
		bufs[i] = newColBuf(c.typ)
	}
	for _, r := range data {
		for i := range cols {
			if err := bufs[i].appendValue(r[i]); err != nil {
				bufs[i].appendNull()
			}
		}
	}
	return &plan{hasResult: true, query: true, cols: cols, src: &memSource{cols: bufs, n: len(data)}, runErr: runErr}, nil
}

// sqliteRuntimeError maps an error raised while rows were produced.
func sqliteRuntimeError(err error) *hiveError {
	return runtimeError("Execution Error, return code 2 from org.apache.hadoop.hive.ql.exec.mr.MapRedTask. " + cleanSQLiteMsg(err.Error()))
}

// resultType is a result column's Hive type: the declared type when the
// column comes straight from a table, else a hint from the select item,
// else what the values are.
func resultType(decl string, i int, items [][]token, ncols int, data [][]any) hiveType {
	if t, ok := parseHiveType(decl); ok && decl != "" {
		return t
	}
	if len(items) == ncols {
		if t, ok := itemTypeHint(items[i]); ok {
			return t
		}
	}
	var sawInt, sawBig, sawFloat, sawText, sawBlob, sawTime bool
	for _, r := range data {
		switch v := r[i].(type) {
		case int64:
			sawInt = true
			if v > math.MaxInt32 || v < math.MinInt32 {
				sawBig = true
			}
		case float64:
			sawFloat = true
		case string:
			sawText = true
		case []byte:
			sawBlob = true
		case time.Time:
			sawTime = true
		}
	}
	switch {
	case sawText || sawTime && (sawInt || sawFloat):
		return tString
	case sawTime:
		return tTimestamp
	case sawBlob:
		return tBinary
	case sawFloat:
		return tDouble
	case sawBig:
		return tBigint
	case sawInt:
		return tInt
	}
	return tString
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// nameColumns applies Hive's result column names: "alias.col" for SELECT *
// (hive.resultset.use.unique.column.names), the alias or column name for
// plain items, _c<i> for expressions.
func nameColumns(cols []column, names []string, items [][]token, refs []tableRef) {
	if len(items) == 1 {
		if q, ok := isStarItem(items[0]); ok {
			var top []tableRef
			for _, r := range refs {
				if r.depth == 0 && (q == "" || r.alias == q) {
					top = append(top, r)
				}
			}
			var out []string
			for _, r := range top {
				if r.tbl == nil {
					out = nil
					break
				}
				for _, c := range r.tbl.cols {
					out = append(out, r.alias+"."+c.name)
				}
			}
			if len(out) == len(cols) {
				for i := range cols {
					cols[i].name = out[i]
				}
				return
			}
			if len(top) == 1 && top[0].alias != "" {
				for i := range cols {
					cols[i].name = top[0].alias + "." + strings.ToLower(names[i])
				}
				return
			}
		}
	}
	for i := range cols {
		name := ""
		if len(items) == len(cols) {
			name = itemName(items[i])
		} else if identRE.MatchString(names[i]) && !aliasWords[strings.ToLower(names[i])] {
			name = strings.ToLower(names[i])
		}
		if name == "" {
			name = "_c" + strconv.Itoa(i)
		}
		cols[i].name = name
	}
}

var (
	reNear      = regexp.MustCompile(`near "((?s).*?)": syntax error`)
	reNoColumn  = regexp.MustCompile(`no such column: (\S+)`)
	reNoFunc    = regexp.MustCompile(`no such function: (\S+)`)
	reAmbiguous = regexp.MustCompile(`ambiguous column name: (\S+)`)
	reCode      = regexp.MustCompile(`\s*\(\d+\)$`)
)

// cleanSQLiteMsg drops the driver's "SQL logic error: " prefix and " (1)"
// suffix.
func cleanSQLiteMsg(msg string) string {
	if _, after, ok := strings.Cut(msg, "SQL logic error: "); ok {
		msg = after
	}
	return reCode.ReplaceAllString(msg, "")
}

// findToken returns the index of the first token whose text is s
// (case-insensitive), or -1.
func findToken(toks []token, s string, from int) int {
	for i := from; i < len(toks); i++ {
		name, _ := toks[i].ident()
		if strings.EqualFold(toks[i].text, s) || name != "" && strings.EqualFold(name, s) ||
			toks[i].kind == tkString && (sqlQuote(toks[i].val) == s) {
			return i
		}
	}
	return -1
}

// compileErr maps a SQLite prepare error to Hive's compile error, in
// Hive's order: syntax, then missing tables, then columns and functions.
func (e *engine) compileErr(err error, toks []token, refs []tableRef) *hiveError {
	msg := cleanSQLiteMsg(err.Error())
	switch {
	case strings.Contains(msg, "incomplete input"):
		return parseErrorAt(toks, len(toks)-1)
	case strings.Contains(msg, "syntax error"), strings.Contains(msg, "unrecognized token"):
		if m := reNear.FindStringSubmatch(msg); m != nil {
			if i := findToken(toks, m[1], 0); i >= 0 {
				return parseErrorAt(toks, i)
			}
		}
		return parseErrorAt(toks, 0)
	}
	for _, r := range refs {
		if r.tbl == nil && !r.cte && !r.subquery {
			return semanticError(errInvalidTable, fmt.Sprintf("Line %d:%d Table not found '%s'", r.tok.line, r.tok.col, r.name))
		}
	}
	pos := func(name string) token {
		if i := findToken(toks, name, 0); i >= 0 {
			return toks[i]
		}
		return toks[0]
	}
	if m := reNoColumn.FindStringSubmatch(msg); m != nil {
		name := m[1]
		if q, c, ok := strings.Cut(name, "."); ok {
			for _, r := range refs {
				if r.alias == strings.ToLower(q) {
					t := pos(q)
					return semanticError(errInvalidColumn, fmt.Sprintf("Line %d:%d Invalid column reference '%s'", t.line, t.col, c))
				}
			}
			name = q
		}
		t := pos(name)
		return semanticError(errInvalidTabAlias, fmt.Sprintf("Line %d:%d Invalid table alias or column reference '%s': (possible column names are: %s)",
			t.line, t.col, name, possibleColumns(refs)))
	}
	if m := reNoFunc.FindStringSubmatch(msg); m != nil {
		t := pos(m[1])
		return semanticError(errInvalidFunction, fmt.Sprintf("Line %d:%d Invalid function '%s'", t.line, t.col, m[1]))
	}
	if m := reAmbiguous.FindStringSubmatch(msg); m != nil {
		name := m[1]
		if _, c, ok := strings.Cut(name, "."); ok {
			name = c
		}
		t := pos(name)
		return semanticError(10007, fmt.Sprintf("Line %d:%d Ambiguous column reference %s", t.line, t.col, name))
	}
	return semanticError(errGeneric, msg)
}

func possibleColumns(refs []tableRef) string {
	var top []tableRef
	for _, r := range refs {
		if r.depth == 0 && r.tbl != nil {
			top = append(top, r)
		}
	}
	var out []string
	for _, r := range top {
		for _, c := range r.tbl.cols {
			if len(top) == 1 {
				out = append(out, c.name)
			} else {
				out = append(out, r.alias+"."+c.name)
			}
		}
	}
	return strings.Join(out, ", ")
}
