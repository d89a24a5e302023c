package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/internal/cliflags"
	"github.com/hiveqd/hiveqd/sqlcli/sqlclitest"
)

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inOutput string
	}{
		{"no command", nil, 2, "Usage:"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"help", []string{"help"}, 0, "hiveqd serve"},
		{"version", []string{"version"}, 0, "hiveqd"},
		{"serve without connectors", []string{"serve", "--listen", "127.0.0.1:0"}, 2, "connectors: at least one"},
		{"serve with a bad flag value", []string{"serve", "--hs2", "h:1", "--lease-ttl", "soon"}, 2, "--lease-ttl"},
		{"serve with every problem named", []string{"serve", "--hs2", "nope", "--coordination", "raft", "--log-level", "loud"}, 2, "log.level"},
		{"serve with stray arguments", []string{"serve", "--hs2", "127.0.0.1:1", "extra"}, 2, "unexpected arguments"},
		{"dev with stray arguments", []string{"dev", "extra"}, 2, "unexpected arguments"},
		{"sql with an empty script", []string{"sql", "-e", ";"}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
			if got := out.String() + errOut.String(); !strings.Contains(got, tc.inOutput) {
				t.Errorf("output lacks %q:\n%s", tc.inOutput, got)
			}
		})
	}
}

// TestHelpAndBadFlags: every subcommand answers -h and --help on stdout
// with exit 0, and a bad flag with one line on stderr that names it and
// points at --help, exit 2.
func TestHelpAndBadFlags(t *testing.T) {
	for _, cmd := range []string{"serve", "dev", "sql", "version"} {
		for _, h := range []string{"-h", "--help", "-help"} {
			t.Run(cmd+" "+h, func(t *testing.T) {
				var out, errOut bytes.Buffer
				if code := run(t.Context(), []string{cmd, h}, &out, &errOut); code != 0 || errOut.Len() != 0 {
					t.Fatalf("exit %d stderr %q", code, errOut.String())
				}
				if !strings.HasPrefix(out.String(), "Usage: hiveqd "+cmd) {
					t.Errorf("stdout %q", out.String())
				}
			})
		}
		for _, bad := range [][]string{{"--no-such-flag"}, {"-x"}, {"--no-such-flag=1"}} {
			t.Run(cmd+" "+bad[0], func(t *testing.T) {
				var out, errOut bytes.Buffer
				code := run(t.Context(), append([]string{cmd}, bad...), &out, &errOut)
				name := strings.SplitN(bad[0], "=", 2)[0]
				want := fmt.Sprintf("hiveqd %s: unknown flag %s (see 'hiveqd %s --help')\n", cmd, name, cmd)
				if code != 2 || errOut.String() != want || out.Len() != 0 {
					t.Errorf("exit %d stdout %q stderr %q, want %q", code, out.String(), errOut.String(), want)
				}
			})
		}
	}
	for _, tc := range []struct{ args []string }{{[]string{"serve", "--listen"}}, {[]string{"dev", "--listen"}}, {[]string{"sql", "--addr"}}} {
		var out, errOut bytes.Buffer
		code := run(t.Context(), tc.args, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "flag --") || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("%q: exit %d stderr %q", tc.args, code, errOut.String())
		}
	}
}

// TestServeHelp: types, defaults and groups come from the settings.
func TestServeHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run(t.Context(), []string{"serve", "--help"}, &out, &out); code != 0 {
		t.Fatal(out.String())
	}
	help := out.String()
	for _, want := range []string{
		"\nServer:\n", "\nCoordination:\n", "\nHiveServer2 connector:\n", "\nLogging:\n",
		`--listen string `, `[default "127.0.0.1:9090"; env HIVEQD_LISTEN]`,
		"--lease-ttl duration ", "[default 10s; env HIVEQD_LEASE_TTL]",
		"--max-concurrent-queries int ", "[default 512;",
		"--trace-sample-ratio float ", "--hs2 list ", "--etcd list ",
		`--zk-namespace string `, `[default "hiveserver2";`,
		"--config string ",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q:\n%s", want, help)
		}
	}
	// Every setting is shown, each once.
	for _, s := range config.Settings {
		if n := strings.Count(help, "  --"+s.Flag+" "); n != 1 {
			t.Errorf("--%s shown %d times", s.Flag, n)
		}
	}
}

// TestServeHelpNewSettings: a setting added to config.Settings (as other
// features add theirs) is typed, defaulted and grouped without any change
// here.
func TestServeHelpNewSettings(t *testing.T) {
	added := []config.Setting{
		{Flag: "test-listen", Usage: "a new listener", Apply: func(c *config.Config, v string) error { c.MetricsListen = v; return nil }},
		{Flag: "test-probe-interval", Usage: "a connector duration", Apply: func(c *config.Config, v string) error {
			d, err := time.ParseDuration(v)
			c.Connectors[len(c.Connectors)-1].Probe.Interval = d
			return err
		}},
		{Flag: "test-qop", Usage: "SASL QOP: auth | auth-int | auth-conf", Apply: func(c *config.Config, v string) error {
			if v != "auth" && v != "auth-int" && v != "auth-conf" {
				return fmt.Errorf("bad qop %q", v)
			}
			c.Connectors[len(c.Connectors)-1].HTTPPath = v
			return nil
		}},
		{Flag: "krb5-test-conf", Usage: "krb5.conf to read", Apply: func(*config.Config, string) error { return errors.New("no such file") }},
		{Flag: "test-unknown", Usage: "changes nothing", Apply: func(*config.Config, string) error { return nil }},
	}
	saved := config.Settings
	config.Settings = append(append([]config.Setting{}, saved...), added...)
	t.Cleanup(func() { config.Settings = saved })
	fs := flag.NewFlagSet("hiveqd serve", flag.ContinueOnError)
	config.Register(fs)
	docs := map[string]cliflags.Doc{}
	for _, d := range serveDocs(fs) {
		docs[d.Name] = d
	}
	for name, want := range map[string]cliflags.Doc{
		"test-listen":         {Type: "string", Group: "Server", Env: "HIVEQD_TEST_LISTEN"},
		"test-probe-interval": {Type: "duration", Default: "200ms", Group: "HiveServer2 connector", Env: "HIVEQD_TEST_PROBE_INTERVAL"},
		"test-unknown":        {Type: "string", Group: "Other", Env: "HIVEQD_TEST_UNKNOWN"},
		"krb5-test-conf":      {Type: "string", Group: "Kerberos", Env: "HIVEQD_KRB5_TEST_CONF"},
		"test-qop":            {Type: "string", Group: "HiveServer2 connector", Env: "HIVEQD_TEST_QOP"},
	} {
		d := docs[name]
		if d.Type != want.Type || d.Default != want.Default || d.Group != want.Group || d.Env != want.Env {
			t.Errorf("--%s: %+v, want %+v", name, d, want)
		}
	}
}

func TestVersion(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		name  string
		bi    *debug.BuildInfo
		stamp string
		want  string
	}{
		{"module version", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "", "hiveqd v1.4.0"},
		{"stamp wins", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203-633583f+dirty"}}, "v2.0.0", "hiveqd v2.0.0"},
		{"stamp without VCS", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "v1.5.0-rc1", "hiveqd v1.5.0-rc1"},
		{"VCS revision", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "", "hiveqd (devel) 0123456789ab-dirty"},
		{"nothing", &debug.BuildInfo{}, "", "hiveqd (devel)"},
		{"no build info", nil, "", "hiveqd (devel)"},
	} {
		if got := versionOf(tc.bi, tc.stamp); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestDevLogsNoRepeatedKeys runs hiveqd dev until it has chosen its HS2
// and checks that no log line repeats a key (it once said
// connector=hive ... connector=hive).
func TestDevLogsNoRepeatedKeys(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithCancel(t.Context())
	out := sqlclitest.NewOutput()
	done := make(chan int)
	go func() { done <- run(ctx, []string{"dev", "--listen", addr}, out, out) }()
	out.WaitFor(t, "hiveserver2 chosen", 60*time.Second)
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
	key := regexp.MustCompile(`(?:^| )([a-z_.]+)=`)
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, "time=") {
			continue
		}
		seen := map[string]bool{}
		for _, m := range key.FindAllStringSubmatch(line, -1) {
			if seen[m[1]] {
				t.Errorf("key %s repeated in %q", m[1], line)
			}
			seen[m[1]] = true
		}
	}
}
