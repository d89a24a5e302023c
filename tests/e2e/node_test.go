package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/tests/harness"
)

// TestNodeClient runs the Node.js example client under node against a real
// hiveqd and simulator (examples/nodetest covers its decoding in depth).
func TestNodeClient(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the Node.js client is not tested", tool)
		}
	}
	e := start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join(harness.RepoRoot(), "examples", "node")
	npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
	npm.Dir = dir
	if out, err := npm.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	node := exec.CommandContext(ctx, "node", "query.js", e.hiveqd.Addr, "SELECT id, name, salary FROM employees ORDER BY id")
	node.Dir = dir
	out, err := node.CombinedOutput()
	if err != nil {
		t.Fatalf("node query.js: %v\n%s", err, out)
	}
	for _, want := range []string{`row: [1,"Alice","120000.00"]`, `row: [5,"Eve",null]`, "end: OK, 6 rows"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	node = exec.CommandContext(ctx, "node", "query.js", e.hiveqd.Addr, "SELECT * FROM nope")
	node.Dir = dir
	out, err = node.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HS2_NOT_FOUND") || !strings.Contains(string(out), "42S02") {
		t.Fatalf("error case: %v\n%s", err, out)
	}
}
