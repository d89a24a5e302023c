package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/tests/harness"
)

// TestInteractive types at `hiveqd sql` in a real terminal: a multi-line
// statement, history recall with Up, !set format vertical, Ctrl-C during
// a long query (HS2 cancels the operation, the prompt returns), Ctrl-D.
func TestInteractive(t *testing.T) {
	sim, hq := startServers(t)
	state := t.TempDir()
	cmd := "env XDG_STATE_HOME=" + shellQuote(state) + " HIVEQD_ADDR=" + hq.Addr + " " + shellQuote(bins["hiveqd"]) + ` sql; echo "[exited $?]"; exec sleep 600`
	term := newTmux(t, cmd)
	term.waitFor(`hiveqd:default/default>$`)

	// A statement over two lines; the prompt then names the connector.
	term.typeLine("SELECT name,")
	term.waitFor(`\. \. >$`)
	term.typeLine("salary FROM employees WHERE id < 3;")
	s := term.waitFor(`2 rows selected \(\d+\.\d+ seconds\)\nhiveqd:hive/default>$`)
	for _, want := range []string{"| name   | salary     |", "| Alice  | 120000.00  |", "| Bob    | 95000.50   |"} {
		if !strings.Contains(s, want) {
			t.Errorf("screen lacks %q:\n%s", want, s)
		}
	}

	// Up recalls the whole statement; Enter runs it again.
	term.keys("Up")
	term.waitFor(`hiveqd:hive/default> SELECT name, salary FROM employees WHERE id < 3;$`)
	term.keys("Enter")
	term.waitFor(`(?s)2 rows selected.*2 rows selected.*hiveqd:hive/default>$`)

	// The vertical format.
	term.typeLine("!set format vertical")
	term.typeLine("SELECT name, dept FROM employees WHERE id = 1;")
	term.waitFor(`\nname  Alice\ndept  eng\n1 row selected \(\d+\.\d+ seconds\)\nhiveqd:hive/default>$`)

	// Ctrl-C during a long query: HS2 cancels the operation and the
	// prompt returns.
	before := simStats(t, sim)
	term.typeLine("!set hiveconf hs2sim.exec_delay_ms=600000")
	term.typeLine("SELECT 42;")
	waitStats(t, sim, "the query to start on HS2", func(s harness.SimStats) bool {
		return s.OperationsOpened > before.OperationsOpened && s.OpenOperations > 0
	})
	term.waitFor(`(SUBMITTED|RUNNING) on ` + regexp.QuoteMeta(sim.Addr) + `  \d+\.\ds`) // the live progress line
	term.keys("C-c")
	term.waitFor(`Query canceled \(0 rows received, \d+\.\d+ seconds\)\nhiveqd:hive/default>$`)
	waitStats(t, sim, "HS2 to cancel and close the operation", func(s harness.SimStats) bool {
		return s.OperationsCancelled == before.OperationsCancelled+1 && s.OpenOperations == 0
	})

	// Ctrl-D at the prompt leaves with status 0.
	term.keys("C-d")
	term.waitFor(`\[exited 0\]`)

	// The history file holds the statements, one entry each.
	hist, err := os.ReadFile(filepath.Join(state, "hiveqd", "history"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hist), "SELECT name, salary FROM employees WHERE id < 3;\n") {
		t.Errorf("history:\n%s", hist)
	}
}

// TestInteractiveCtrlCTwice: history survives the session; Ctrl-C at an
// empty prompt warns, a second one leaves.
func TestInteractiveCtrlCTwice(t *testing.T) {
	_, hq := startServers(t)
	state := t.TempDir()
	if err := os.MkdirAll(filepath.Join(state, "hiveqd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "hiveqd", "history"), []byte("SELECT 'from last time';\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := "env XDG_STATE_HOME=" + shellQuote(state) + " " + shellQuote(bins["hiveqd"]) + " sql --addr " + hq.Addr + ` --database sales; echo "[exited $?]"; exec sleep 600`
	term := newTmux(t, cmd)
	term.waitFor(`hiveqd:default/sales>$`)
	term.keys("Up")
	term.waitFor(`hiveqd:default/sales> SELECT 'from last time';$`)
	term.keys("C-c")
	term.waitFor(`Ctrl-C again or Ctrl-D to leave`)
	term.keys("C-c")
	term.waitFor(`\[exited 0\]`)
}

func simStats(t *testing.T, sim *harness.Sim) harness.SimStats {
	t.Helper()
	s, err := sim.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitStats(t *testing.T, sim *harness.Sim, what string, ok func(harness.SimStats) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for {
		s, err := sim.Stats(ctx)
		if err == nil && ok(s) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: last stats %+v (%v)", what, s, err)
		case <-time.After(50 * time.Millisecond): // polling the simulator's counters
		}
	}
}

// TestInteractiveSIGTERM: SIGTERM at the prompt ends the session (the
// client holds SIGTERM to cancel queries, so it must also end idle).
func TestInteractiveSIGTERM(t *testing.T) {
	_, hq := startServers(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	cmd := "sh -c " + shellQuote("echo $$ > "+shellQuote(pidFile)+"; exec env XDG_STATE_HOME="+shellQuote(dir)+" "+shellQuote(bins["hiveqd"])+" sql --addr "+hq.Addr) + `; echo "[exited $?]"; exec sleep 600`
	term := newTmux(t, cmd)
	term.waitFor(`hiveqd:default/default>$`)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	term.waitFor(`\[exited 130\]`)
}
