// Package cli tests hiveqd's command line as a person uses it: the
// interactive `hiveqd sql` driven in a real terminal (tmux), and the
// README's examples run against `hiveqd dev`.
package cli

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/tests/harness"
)

// bins are hiveqd and hs2sim, built once for the package.
var bins map[string]string

func TestMain(m *testing.M) {
	harness.Main(m, &bins, false, false, "hiveqd", "hs2sim")
}

// tmux is one tmux server on its own socket, with one window.
type tmux struct {
	t      *testing.T
	socket string
	name   string
}

// newTmux starts command (a shell command line) in a 200x50 terminal;
// the server is killed when the test ends.
func newTmux(t *testing.T, command string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (scripts/install-deps.sh installs it)")
	}
	m := &tmux{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock"), name: "cli"}
	m.run("-f", "/dev/null", "new-session", "-d", "-s", m.name, "-x", "200", "-y", "50", command)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", m.socket, "kill-server").Run() })
	return m
}

func (m *tmux) run(args ...string) string {
	m.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", m.socket}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// typeLine types text as it is and presses Enter.
func (m *tmux) typeLine(text string) {
	m.t.Helper()
	if strings.HasSuffix(text, ";") { // tmux reads a trailing ; as its command separator
		text = strings.TrimSuffix(text, ";") + `\;`
	}
	m.run("send-keys", "-t", m.name, "-l", text)
	m.keys("Enter")
}

// keys presses keys by tmux name: Enter, Up, C-c, C-d.
func (m *tmux) keys(keys ...string) {
	m.t.Helper()
	m.run(append([]string{"send-keys", "-t", m.name}, keys...)...)
}

// screen is the terminal's text, scrollback included, without trailing
// space on each line and without the empty lines below the cursor.
func (m *tmux) screen() string {
	m.t.Helper()
	lines := strings.Split(m.run("capture-pane", "-p", "-J", "-S", "-2000", "-t", m.name), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// waitFor polls the screen until it matches re (regular expression).
func (m *tmux) waitFor(re string) string {
	m.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := m.screen()
		if rx.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the terminal never showed %q; it shows:\n%s", re, s)
		}
		time.Sleep(50 * time.Millisecond) // polling the screen, not waiting on time
	}
}

// startServers runs an hs2sim and a hiveqd serve in front of it.
func startServers(t *testing.T) (*harness.Sim, *harness.Hiveqd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	sim, err := harness.StartSim(ctx, bins["hs2sim"], dir, "hs2sim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Stop(10 * time.Second) })
	hq, err := harness.StartHiveqd(ctx, bins["hiveqd"], dir, "hiveqd", nil, "--hs2", sim.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hq.Stop(10 * time.Second) })
	return sim, hq
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
