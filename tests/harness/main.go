package harness

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Main is a test package's TestMain: it builds ./cmd/<name> for each name
// into a temporary directory (race: with the race detector) and stores the
// paths in *bins, runs the tests, checks that passing tests leaked no
// goroutine (leaks: for packages that start no long-lived goroutines of
// their own), removes the directory and exits with the tests' code.
func Main(m *testing.M, bins *map[string]string, race, leaks bool, names ...string) {
	os.Exit(runMain(m, bins, race, leaks, names))
}

func runMain(m *testing.M, bins *map[string]string, race, leaks bool, names []string) int {
	dir, err := os.MkdirTemp("", "hiveqd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	*bins, err = Build(ctx, dir, race, names...)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code == 0 && leaks {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}
