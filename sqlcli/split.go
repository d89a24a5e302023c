package sqlcli

import "strings"

// Split cuts a HiveQL script into statements the way beeline does: at each
// ';' that is outside a quoted string ('...' or "...", where a backslash
// escapes the next character), a backquoted identifier (`...`), a line
// comment (-- to the end of the line) and a block comment (/* ... */).
//
// It returns the complete statements (those ended by ';'), without the
// ';', without surrounding space and without leading comments, skipping
// those that hold nothing but space and comments; and rest, the text after
// the last ';' as it is (an unfinished statement, for the interactive
// mode to continue; Statements runs it as the last statement of a
// script). Comments inside a statement stay: HS2's parser drops them, and
// /*+ ... */ is an optimizer hint.
func Split(script string) (stmts []string, rest string) {
	stmts, rest, _ = scan(script)
	return stmts, rest
}

// scan is Split, also returning where rest's first byte of content is
// (-1: rest is blank).
func scan(script string) (stmts []string, rest string, restContent int) {
	var (
		start   int  // where the current statement begins
		content = -1 // where its first non-comment, non-space byte is
		quote   byte // the open quote: ', ", ` or 0
	)
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case quote != 0:
			switch {
			case c == '\\' && quote != '`':
				i++ // the escaped character, whatever it is
			case c == quote:
				quote = 0
			}
			continue
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			if nl := strings.IndexByte(script[i:], '\n'); nl >= 0 {
				i += nl
			} else {
				i = len(script)
			}
			continue
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			if end := strings.Index(script[i+2:], "*/"); end >= 0 {
				if content < 0 && strings.HasPrefix(script[i:], "/*+") {
					content = i // a hint is part of the statement
				}
				i += 2 + end + 1
			} else {
				i = len(script)
			}
			continue
		case c == ';':
			if content >= 0 {
				stmts = append(stmts, strings.TrimSpace(script[content:i]))
			}
			start, content = i+1, -1
			continue
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case isSpace(c):
			continue
		}
		if content < 0 {
			content = i
		}
	}
	if content >= 0 {
		content -= start
	}
	return stmts, script[start:], content
}

// Statements is every statement of a script: Split's complete statements
// and, when it holds more than space and comments, the unterminated last
// one.
func Statements(script string) []string {
	stmts, rest, content := scan(script)
	if content >= 0 {
		stmts = append(stmts, strings.TrimSpace(rest[content:]))
	}
	return stmts
}

// Blank reports whether s holds nothing but space and comments.
func Blank(s string) bool {
	stmts, _, content := scan(s)
	return len(stmts) == 0 && content < 0
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
