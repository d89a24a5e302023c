package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
		{"sql usage", []string{"sql"}, 2, ""},
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
