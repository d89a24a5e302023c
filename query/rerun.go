package query

import (
	"strings"
	"unicode"
)

// Transparent re-runs. When a query's server is lost (its own calls failed
// or stalled, or the server was declared dead) after HS2 accepted the
// statement but before any schema or row reached the client, a read runs
// again on the new route: the client sees a second SUBMITTED naming the
// new server and epoch, then the result, and the final status counts the
// re-runs. Nothing is duplicated: a stream that had sent a schema or rows
// is never re-run. Only statements IsRead accepts are re-run, and
// Request.DisableRerun or Connector.DisableRerun turn it off.

// IsRead reports whether stmt is a read that is safe to run twice. It is
// conservative: the leading keyword, after comments and opening
// parentheses, must be SELECT, WITH (with no INSERT anywhere in the
// statement), SHOW, DESCRIBE, DESC or EXPLAIN (not EXPLAIN ANALYZE or
// EXPLAIN REOPTIMIZATION, which run the statement). Anything else (INSERT,
// FROM … INSERT, CREATE, ALTER, DROP, LOAD, MERGE, UPDATE, DELETE,
// TRUNCATE, MSCK, ANALYZE, SET, anything unrecognised, and text holding
// more than one statement) is not.
func IsRead(stmt string) bool {
	words := keywords(stmt)
	for len(words) > 0 && words[len(words)-1] == ";" {
		words = words[:len(words)-1]
	}
	if len(words) == 0 || containsWord(words, ";") {
		return false // empty, or more than one statement
	}
	switch words[0] {
	case "SELECT", "SHOW", "DESCRIBE", "DESC":
		return true
	case "WITH":
		return !containsWord(words, "INSERT")
	case "EXPLAIN":
		return !containsWord(words[1:], "ANALYZE") && !containsWord(words[1:], "REOPTIMIZATION")
	}
	return false
}

// keywords returns the statement's words (letters, digits, '_'), upper
// case, outside comments and quoted text, and ";" for each semicolon.
// Parentheses and other symbols separate words and are dropped.
func keywords(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '-' && strings.HasPrefix(s[i:], "--"):
			i = skipTo(s, i+2, "\n")
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			i = skipTo(s, i+2, "*/")
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(s, i)
		case c == ';':
			out = append(out, ";")
			i++
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, strings.ToUpper(s[i:j]))
			i = j
		default:
			i++
		}
	}
	return out
}

// skipTo returns the index after the next end at or after i (len(s) if
// none).
func skipTo(s string, i int, end string) int {
	if k := strings.Index(s[i:], end); k >= 0 {
		return i + k + len(end)
	}
	return len(s)
}

// skipQuoted returns the index after the quoted text starting at i; a
// backslash escapes the next byte, as in HiveQL string literals.
func skipQuoted(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			return j + 1
		}
	}
	return len(s)
}

func isWordByte(c byte) bool {
	return c == '_' || c < 0x80 && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))) || c >= 0x80
}

func containsWord(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}
