package hs2sim

import (
	"os"
	"regexp"
	"strings"
)

// varRef is Hive's variable reference, ${name} (SystemVariables.varPat).
var varRef = regexp.MustCompile(`\$\{[^\}\$ ]+\}`)

// maxSubstDepth is hive.variable.substitute.depth's default.
const maxSubstDepth = 40

// substitute replaces ${...} in stmt as HS2 does before compiling
// (VariableSubstitution): ${hiveconf:k} and ${k} are the session's
// configuration, ${hivevar:k} and then ${k} its variables (kept in conf as
// hivevar:k), ${env:k} the server's environment; ${system:k} and
// undefined names stay as written. Replacements are substituted again, up
// to hive.variable.substitute.depth rounds; hive.variable.substitute=false
// turns it off.
func substitute(conf map[string]string, stmt string) string {
	if strings.EqualFold(conf["hive.variable.substitute"], "false") || !strings.Contains(stmt, "${") {
		return stmt
	}
	lookup := func(name string) (string, bool) {
		if k, ok := strings.CutPrefix(name, "env:"); ok {
			return os.LookupEnv(k)
		}
		if k, ok := strings.CutPrefix(name, "hiveconf:"); ok {
			v, ok := conf[k]
			return v, ok
		}
		if v, ok := conf[name]; ok { // conf.getRaw(name); covers hivevar:k
			return v, true
		}
		v, ok := conf["hivevar:"+name]
		return v, ok
	}
	for range maxSubstDepth {
		next := varRef.ReplaceAllStringFunc(stmt, func(ref string) string {
			if v, ok := lookup(ref[2 : len(ref)-1]); ok {
				return v
			}
			return ref
		})
		if next == stmt {
			break
		}
		stmt = next
	}
	return stmt
}
