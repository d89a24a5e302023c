package hs2sim

import (
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tkEOF    tokKind = iota
	tkIdent          // bare identifier or keyword
	tkQIdent         // `quoted identifier`
	tkString         // 'string' or "string" (Hive allows both)
	tkNumber
	tkOp
)

// token is one HiveQL token with its position as Hive reports it: 1-based
// line, 0-based character column.
type token struct {
	kind tokKind
	text string // as written
	val  string // identifier without backticks / decoded string literal
	pos  int    // byte offset of text in the statement
	end  int    // byte offset just past text
	line int
	col  int
}

// is reports whether t is the bare word w (case-insensitive).
func (t token) is(w string) bool { return t.kind == tkIdent && strings.EqualFold(t.text, w) }

func (t token) isOp(op string) bool { return t.kind == tkOp && t.text == op }

// ident reports whether t names something (bare or quoted) and its name.
func (t token) ident() (string, bool) {
	switch t.kind {
	case tkIdent:
		return t.text, true
	case tkQIdent:
		return t.val, true
	}
	return "", false
}

// lexError is an unterminated literal or a character Hive can't lex.
type lexError struct {
	line, col int
	near      string
}

// lex splits a HiveQL statement into tokens, dropping comments. The last
// token is always tkEOF.
func lex(s string) ([]token, *lexError) {
	var toks []token
	line, col := 1, 0
	i := 0
	advance := func(to int) {
		for i < to {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == '\n' {
				line++
				col = 0
			} else {
				col++
			}
			i += n
		}
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			advance(i + 1)
			continue
		case c == '-' && strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				j = len(s) - i
			}
			advance(i + j)
			continue
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return nil, &lexError{line, col, s[i:]}
			}
			advance(i + 2 + j + 2)
			continue
		}
		t := token{pos: i, line: line, col: col}
		switch {
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			t.kind, t.text = tkIdent, s[i:j]
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
				k := j + 1
				if k < len(s) && (s[k] == '+' || s[k] == '-') {
					k++
				}
				if k < len(s) && s[k] >= '0' && s[k] <= '9' {
					j = k
					for j < len(s) && s[j] >= '0' && s[j] <= '9' {
						j++
					}
				}
			}
			// Hive's literal suffixes: 10L, 10S, 10Y, 10BD.
			switch {
			case j+1 < len(s) && (s[j:j+2] == "BD" || s[j:j+2] == "bd"):
				j += 2
			case j < len(s) && strings.IndexByte("LSYlsy", s[j]) >= 0 && (j+1 == len(s) || !isIdentPart(s[j+1])):
				j++
			}
			t.kind, t.text = tkNumber, s[i:j]
		case c == '`':
			j := i + 1
			var b strings.Builder
			for {
				k := strings.IndexByte(s[j:], '`')
				if k < 0 {
					return nil, &lexError{line, col, s[i:]}
				}
				b.WriteString(s[j : j+k])
				j += k + 1
				if j < len(s) && s[j] == '`' { // `` is a literal backtick
					b.WriteByte('`')
					j++
					continue
				}
				break
			}
			t.kind, t.text, t.val = tkQIdent, s[i:j], b.String()
		case c == '\'' || c == '"':
			j := i + 1
			var b strings.Builder
			closed := false
			for j < len(s) {
				ch := s[j]
				if ch == '\\' && j+1 < len(s) {
					b.WriteString(unescapeHive(s[j+1]))
					j += 2
					continue
				}
				if ch == c {
					j++
					closed = true
					break
				}
				b.WriteByte(ch)
				j++
			}
			if !closed {
				return nil, &lexError{line, col, s[i:]}
			}
			t.kind, t.text, t.val = tkString, s[i:j], b.String()
		default:
			n := 1
			for _, op := range []string{"<=>", "<=", ">=", "<>", "!=", "==", "||", "&&"} {
				if strings.HasPrefix(s[i:], op) {
					n = len(op)
					break
				}
			}
			if n == 1 && strings.IndexByte("(),.;*+-/%=<>!~&|^[]:{}", c) < 0 {
				r, _ := utf8.DecodeRuneInString(s[i:])
				return nil, &lexError{line, col, string(r)}
			}
			t.kind, t.text = tkOp, s[i:i+n]
		}
		t.end = t.pos + len(t.text)
		advance(t.end)
		toks = append(toks, t)
	}
	toks = append(toks, token{kind: tkEOF, text: "<EOF>", pos: len(s), end: len(s), line: line, col: col})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// unescapeHive decodes the character after a backslash in a Hive string
// literal.
func unescapeHive(c byte) string {
	switch c {
	case 'n':
		return "\n"
	case 't':
		return "\t"
	case 'r':
		return "\r"
	case '0':
		return "\x00"
	case 'b':
		return "\b"
	case 'Z':
		return "\x1a"
	case '%':
		return "\\%"
	case '_':
		return "\\_"
	}
	return string(c)
}

// near returns the texts of up to three tokens from toks[i] on, as Hive's
// "cannot recognize input near" lists them.
func near(toks []token, i int) []string {
	var out []string
	for k := i; k < len(toks) && len(out) < 3; k++ {
		out = append(out, toks[k].text)
		if toks[k].kind == tkEOF {
			break
		}
	}
	return out
}

// parseErrorAt is a ParseException at toks[i].
func parseErrorAt(toks []token, i int) *hiveError {
	if i >= len(toks) {
		i = len(toks) - 1
	}
	return parseError(toks[i].line, toks[i].col, near(toks, i))
}

// sqlQuote renders s as a SQLite string literal.
func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// sqlIdent renders s as a SQLite quoted identifier.
func sqlIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
