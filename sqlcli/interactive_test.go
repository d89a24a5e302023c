package sqlcli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/hiveqd/hiveqd/sqlcli"
)

// TestInteractiveLoop feeds the prompt loop typed lines (readline reads
// them plainly when stdin is not a terminal; tests/cli drives a real one):
// multi-line statements, several on a line, !commands, the history file.
func TestInteractiveLoop(t *testing.T) {
	srv := echoServer(t)
	state := t.TempDir()
	typed := "SELECT 1,\n  2;\n" +
		"-- a comment line\n" +
		"SELECT 3; SELECT\n4;\n" +
		"!set format csv\n" +
		"!set hivevar lim=5\n" +
		"USE sales;\n" +
		"SELECT 5;\n" +
		"!bogus\n" +
		"!set format xml\n" +
		"SELECT 'unfinished\n" +
		"!quit\n"
	var stdout, stderr bytes.Buffer
	cmd := &sqlcli.Command{
		Stdin: strings.NewReader(typed), Stdout: &stdout, Stderr: &stderr, StdinIsTerminal: true,
		Getenv: func(k string) string { return map[string]string{"XDG_STATE_HOME": state}[k] },
	}
	if code := cmd.Run(t.Context(), []string{"--addr", srv.Addr}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := []string{"SELECT 1,\n  2", "SELECT 3", "SELECT\n4", "USE sales", "SELECT 5"}
	if got := statements(srv); !reflect.DeepEqual(got, want) {
		t.Errorf("statements %q, want %q", got, want)
	}
	last := srv.Calls()[4].Request
	if last.GetDatabase() != "sales" || last.GetConfig()["hivevar:lim"] != "5" {
		t.Errorf("last request %v", last)
	}
	if !strings.HasSuffix(stdout.String(), "s\r\nSELECT 5\r\n") {
		t.Errorf("stdout (csv at the end) %q", stdout.String())
	}
	for _, w := range []string{"Unknown command !bogus", `format "xml": want one of`} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
		}
	}
	hist, err := os.ReadFile(filepath.Join(state, "hiveqd", "history"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hist), "SELECT 1, 2;\n") || !strings.Contains(string(hist), "!set format csv\n") {
		t.Errorf("history:\n%s", hist)
	}
}

// TestInteractiveEOFAndSIGTERM: end of input leaves with 0; SIGTERM
// (Command.Signals) leaves with 130.
func TestInteractiveEOFAndSIGTERM(t *testing.T) {
	srv := echoServer(t)
	run := func(stdin *os.File, sigs chan os.Signal) int {
		cmd := &sqlcli.Command{Stdin: stdin, StdinIsTerminal: true, Signals: sigs}
		return cmd.Run(t.Context(), []string{"--addr", srv.Addr})
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.WriteString("SELECT 1;\n")
	w.Close()
	if code := run(r, nil); code != 0 {
		t.Errorf("EOF: exit %d", code)
	}

	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	defer w2.Close()
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	if code := run(r2, sigs); code != sqlcli.ExitInterrupted {
		t.Errorf("SIGTERM: exit %d", code)
	}
}
