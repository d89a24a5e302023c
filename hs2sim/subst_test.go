package hs2sim

import (
	"reflect"
	"testing"
)

func TestSubstitute(t *testing.T) {
	conf := map[string]string{"tbl": "employees", "hivevar:lim": "3", "hivevar:tbl": "var_wins_not", "hivevar:nested": "${lim}", "hivevar:loop": "${loop}"}
	for in, want := range map[string]string{
		"SELECT 1":                                "SELECT 1",
		"SELECT * FROM ${tbl} LIMIT ${lim}":       "SELECT * FROM employees LIMIT 3", // conf first, then variables
		"SELECT ${hivevar:tbl}, ${hiveconf:tbl}":  "SELECT var_wins_not, employees",
		"SELECT ${nested}":                        "SELECT 3",
		"SELECT '${undefined}', ${system:user.x}": "SELECT '${undefined}', ${system:user.x}",
		"SELECT ${loop}":                          "SELECT ${loop}",
		"SELECT '${lim}'":                         "SELECT '3'", // Hive substitutes inside literals too
		"SELECT ${ lim}":                          "SELECT ${ lim}",
	} {
		if got := substitute(conf, in); got != want {
			t.Errorf("substitute(%q) = %q, want %q", in, got, want)
		}
	}
	off := map[string]string{"hive.variable.substitute": "false", "hivevar:lim": "3"}
	if got := substitute(off, "SELECT ${lim}"); got != "SELECT ${lim}" {
		t.Errorf("substitution off: %q", got)
	}
}

// TestSessionVariables: set:hivevar: and set:hiveconf: in OpenSession, and
// SET hivevar:, are substituted in statements.
func TestSessionVariables(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(map[string]string{"set:hivevar:lim": "2", "set:hiveconf:my.tbl": "employees"})
	defer c.closeSession(h)
	if got := c.query(h, "SELECT count(*) FROM (SELECT * FROM ${hiveconf:my.tbl} LIMIT ${hivevar:lim}) t"); !reflect.DeepEqual(got, [][]string{{"2"}}) {
		t.Errorf("count: %v", got)
	}
	c.query(h, "SET hivevar:n=41")
	if got := c.query(h, "SELECT ${n} + 1"); !reflect.DeepEqual(got, [][]string{{"42"}}) {
		t.Errorf("SET hivevar: %v", got)
	}
	if got := c.query(h, "SET hivevar:lim"); !reflect.DeepEqual(got, [][]string{{"hivevar:lim=2"}}) {
		t.Errorf("SET hivevar:lim: %v", got)
	}
}
