package sqlcli_test

import (
	"reflect"
	"testing"

	"github.com/hiveqd/hiveqd/sqlcli"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name   string
		script string
		stmts  []string // Split's complete statements
		rest   string   // Split's rest
		all    []string // Statements
	}{
		{"one", "SELECT 1;", []string{"SELECT 1"}, "", []string{"SELECT 1"}},
		{"two on a line", "SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}, "", []string{"SELECT 1", "SELECT 2"}},
		{"trailing statement without ;", "SELECT 1;\nSELECT 2", []string{"SELECT 1"}, "\nSELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"no ; at all", "  SELECT 1  ", nil, "  SELECT 1  ", []string{"SELECT 1"}},
		{"empty statements", ";; SELECT 1;;\n ;", []string{"SELECT 1"}, "", []string{"SELECT 1"}},
		{"empty script", "", nil, "", nil},
		{"single quotes with ;", "SELECT 'a;b', 1; SELECT 2", []string{"SELECT 'a;b', 1"}, " SELECT 2", []string{"SELECT 'a;b', 1", "SELECT 2"}},
		{"double quotes with ;", `SELECT "a;b";`, []string{`SELECT "a;b"`}, "", []string{`SELECT "a;b"`}},
		{"escaped quote", `SELECT 'it\'s; fine'; SELECT 2;`, []string{`SELECT 'it\'s; fine'`, "SELECT 2"}, "", []string{`SELECT 'it\'s; fine'`, "SELECT 2"}},
		{"escaped backslash ends the string", `SELECT 'a\\'; SELECT 2;`, []string{`SELECT 'a\\'`, "SELECT 2"}, "", []string{`SELECT 'a\\'`, "SELECT 2"}},
		{"doubled quote", `SELECT 'a'';'; SELECT 2;`, []string{`SELECT 'a'';'`, "SELECT 2"}, "", []string{`SELECT 'a'';'`, "SELECT 2"}},
		{"other quote inside", `SELECT "it's;"; SELECT 2;`, []string{`SELECT "it's;"`, "SELECT 2"}, "", []string{`SELECT "it's;"`, "SELECT 2"}},
		{"backquotes", "SELECT `a;b` FROM t; SELECT 2;", []string{"SELECT `a;b` FROM t", "SELECT 2"}, "", []string{"SELECT `a;b` FROM t", "SELECT 2"}},
		{"backslash in backquotes is plain", "SELECT `a\\`; SELECT 2;", []string{"SELECT `a\\`", "SELECT 2"}, "", []string{"SELECT `a\\`", "SELECT 2"}},
		{"line comment with ;", "SELECT 1 -- one; two\n, 2;", []string{"SELECT 1 -- one; two\n, 2"}, "", []string{"SELECT 1 -- one; two\n, 2"}},
		{"leading comment dropped", "-- setup; really\nSELECT 1;", []string{"SELECT 1"}, "", []string{"SELECT 1"}},
		{"comment-only statement", "SELECT 1; -- the end;\n", []string{"SELECT 1"}, " -- the end;\n", []string{"SELECT 1"}},
		{"comment-only tail", "SELECT 1; -- done", []string{"SELECT 1"}, " -- done", []string{"SELECT 1"}},
		{"block comment with ;", "SELECT /* a; b */ 1; /* ; */ SELECT 2;", []string{"SELECT /* a; b */ 1", "SELECT 2"}, "", []string{"SELECT /* a; b */ 1", "SELECT 2"}},
		{"hint kept", "/*+ MAPJOIN(b) */ SELECT 1;", []string{"/*+ MAPJOIN(b) */ SELECT 1"}, "", []string{"/*+ MAPJOIN(b) */ SELECT 1"}},
		{"multi-line block comment", "/* a\n;\nb */\nSELECT 1;", []string{"SELECT 1"}, "", []string{"SELECT 1"}},
		{"unclosed quote is the tail", "SELECT 1; SELECT 'a;", []string{"SELECT 1"}, " SELECT 'a;", []string{"SELECT 1", "SELECT 'a;"}},
		{"unclosed block comment", "SELECT 1; /* x;", []string{"SELECT 1"}, " /* x;", []string{"SELECT 1"}},
		{"-- inside quotes is text", "SELECT '--;'; SELECT 2;", []string{"SELECT '--;'", "SELECT 2"}, "", []string{"SELECT '--;'", "SELECT 2"}},
		{"minus is not a comment", "SELECT 2-1;", []string{"SELECT 2-1"}, "", []string{"SELECT 2-1"}},
		{"multi-line statement", "SELECT 1,\n  2\nFROM t\n;", []string{"SELECT 1,\n  2\nFROM t"}, "", []string{"SELECT 1,\n  2\nFROM t"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stmts, rest := sqlcli.Split(tc.script)
			if !reflect.DeepEqual(stmts, tc.stmts) || rest != tc.rest {
				t.Errorf("Split(%q) = %q, %q; want %q, %q", tc.script, stmts, rest, tc.stmts, tc.rest)
			}
			if all := sqlcli.Statements(tc.script); !reflect.DeepEqual(all, tc.all) {
				t.Errorf("Statements(%q) = %q; want %q", tc.script, all, tc.all)
			}
			if got, want := sqlcli.Blank(tc.script), len(tc.all) == 0; got != want {
				t.Errorf("Blank(%q) = %v, want %v", tc.script, got, want)
			}
		})
	}
}
