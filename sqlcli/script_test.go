package sqlcli_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/sqlcli"
	st "github.com/hiveqd/hiveqd/sqlcli/sqlclitest"
)

// echoServer answers each statement with one row holding the statement's
// text, and fails statements that start with FAIL (as HS2 does a bad one).
func echoServer(t *testing.T) *st.Server {
	return st.Start(t, func(ctx context.Context, attempt int, req *hiveqv1.ExecuteRequest, send func(*hiveqv1.ExecuteResponse) error) error {
		stmt := req.GetStatement()
		if strings.HasPrefix(stmt, "FAIL") {
			return st.Error(codes.InvalidArgument, "Error while compiling statement: FAILED: ParseException", "HS2_ERROR", map[string]string{"sql_state": "42000"})
		}
		if strings.HasPrefix(strings.ToUpper(stmt), "USE ") {
			return nil
		}
		return st.Canned(nil, st.Schema(st.Col("s", "string", kString)), st.Batch(0, 1, st.Strings([]string{stmt})))(ctx, attempt, req, send)
	})
}

func statements(srv *st.Server) []string {
	var out []string
	for _, c := range srv.Calls() {
		out = append(out, c.Request.GetStatement())
	}
	return out
}

func TestScripts(t *testing.T) {
	script := "-- a script; with comments\n" +
		"SELECT 'a;b';\n" +
		"/* block; comment */ SELECT \"c;d\" ;;\n" +
		"SELECT `e;f`\n" +
		"  FROM t;\n" +
		"SELECT 'it\\'s; escaped' -- trailing; comment\n"
	want := []string{"SELECT 'a;b'", `SELECT "c;d"`, "SELECT `e;f`\n  FROM t", "SELECT 'it\\'s; escaped' -- trailing; comment"}
	file := filepath.Join(t.TempDir(), "script.sql")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, how := range map[string]struct {
		stdin string
		args  []string
	}{
		"-f":       {"", []string{"-f", file}},
		"-f -":     {script, []string{"-f", "-"}},
		"-e":       {"", []string{"-e", script}},
		"stdin":    {script, nil},
		"argument": {"", []string{"--", script}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := echoServer(t)
			r := run(t, t.Context(), nil, how.stdin, append([]string{"--addr", srv.Addr, "--format", "csv"}, how.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := statements(srv); !reflect.DeepEqual(got, want) {
				t.Errorf("statements %q, want %q", got, want)
			}
			// Each result in turn, each with its own header.
			if n := strings.Count(r.stdout, "s\r\n"); n != 4 {
				t.Errorf("%d results in stdout %q", n, r.stdout)
			}
			if n := strings.Count(r.stderr, "1 row selected"); n != 4 {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
}

func TestScriptErrors(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		code  int
		stmts []string
	}{
		{"all succeed", []string{"-e", "SELECT 1; SELECT 2"}, 0, []string{"SELECT 1", "SELECT 2"}},
		{"stops at the first error", []string{"-e", "SELECT 1; FAIL 2; SELECT 3"}, 1, []string{"SELECT 1", "FAIL 2"}},
		{"--force goes on, still exit 1", []string{"--force", "-e", "SELECT 1; FAIL 2; SELECT 3"}, 1, []string{"SELECT 1", "FAIL 2", "SELECT 3"}},
		{"--force, last fails", []string{"--force", "-e", "SELECT 1; FAIL 2"}, 1, []string{"SELECT 1", "FAIL 2"}},
		{"empty script", []string{"-e", " ; -- nothing\n"}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := echoServer(t)
			r := run(t, t.Context(), nil, "", append([]string{"--addr", srv.Addr}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			if got := statements(srv); !reflect.DeepEqual(got, tc.stmts) {
				t.Errorf("statements %q, want %q", got, tc.stmts)
			}
			if tc.code != 0 && !strings.Contains(r.stderr, "Error: Error while compiling statement") {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
}

// TestScriptDatabaseAndVariables: --database is the first statements'
// database, USE changes it for those after; --hivevar and --hiveconf go in
// every request's config (hivevar: keys become set:hivevar: in HS2).
func TestScriptDatabaseAndVariables(t *testing.T) {
	srv := echoServer(t)
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--database", "sales", "--hivevar", "lim=5", "--hiveconf", "hive.exec.parallel=true",
		"-e", "SELECT 1; USE `hr`; SELECT 2; use ops ;SELECT 3")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var dbs []string
	for _, c := range srv.Calls() {
		dbs = append(dbs, c.Request.GetDatabase())
		if want := map[string]string{"hivevar:lim": "5", "hive.exec.parallel": "true"}; !reflect.DeepEqual(c.Request.GetConfig(), want) {
			t.Errorf("%q: config %v, want %v", c.Request.GetStatement(), c.Request.GetConfig(), want)
		}
	}
	if want := []string{"sales", "sales", "hr", "hr", "ops"}; !reflect.DeepEqual(dbs, want) {
		t.Errorf("databases %q, want %q", dbs, want)
	}
}

// TestScriptCarriesSet: SET k=v and SET hivevar:k=v go to HS2 and also
// into the requests that follow (they may run on other pooled sessions).
func TestScriptCarriesSet(t *testing.T) {
	srv := echoServer(t)
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "-e", "SELECT 1; SET hive.exec.parallel = true; set hivevar:lim=5; SET hiveconf:a=b=c; SET -v; SELECT 2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	calls := srv.Calls()
	if len(calls) != 6 {
		t.Fatalf("%d calls", len(calls))
	}
	if c := calls[0].Request.GetConfig(); len(c) != 0 {
		t.Errorf("first statement's config %v", c)
	}
	if got, want := calls[5].Request.GetConfig(), map[string]string{"hive.exec.parallel": "true", "hivevar:lim": "5", "a": "b=c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("last statement's config %v, want %v", got, want)
	}
}

// TestScriptInterrupt: cancelling a script stops it with 130 and runs no
// further statement.
func TestScriptInterrupt(t *testing.T) {
	srv, serverSaw := blockingServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := st.NewOutput()
	done := make(chan int)
	go func() {
		cmd := &sqlcli.Command{Stdout: out}
		done <- cmd.Run(ctx, []string{"--addr", srv.Addr, "--format", "csv", "-e", "SELECT n; SELECT m"})
	}()
	out.WaitFor(t, "7\r\n", 10*time.Second)
	cancel()
	if code := <-done; code != sqlcli.ExitInterrupted {
		t.Errorf("exit %d", code)
	}
	waitClosed(t, serverSaw, "the server to see the cancel")
	if n := len(srv.Calls()); n != 1 {
		t.Errorf("%d calls after the cancel", n)
	}
}
