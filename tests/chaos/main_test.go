package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// bins are built once for every test of the package: hiveqd with the race
// detector (it is what is under test), hs2sim without.
var bins map[string]string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hiveqd-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if bins, err = BuildBinaries(ctx, dir, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	// The simulators' control calls leave keep-alive connections behind.
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// runAndCheck runs the suite and fails t on any violation or leak.
func runAndCheck(t *testing.T, opts Options) *Report {
	t.Helper()
	opts.Bins, opts.Dir, opts.Logf = bins, t.TempDir(), t.Logf
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep.Summary())
	for _, v := range rep.Violations {
		t.Errorf("invariant %s: %s", v.Invariant, v.Detail)
	}
	for _, l := range rep.Leaks {
		t.Errorf("leak: %s", l)
	}
	return rep
}
