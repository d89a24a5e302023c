// Package replicas holds the multi-process acceptance tests of hiveqd in
// etcd coordination: a real ZooKeeper where hs2sim processes register like
// HiveServer2, a real etcd, and three `hiveqd serve --coordination etcd`
// processes, driven through the gRPC API while processes crash, hang and
// restart.
package replicas

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

var (
	bins map[string]string
	// zooKeeper is shared by the tests; each uses its own namespace.
	zooKeeper *testenv.ZooKeeper
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hiveqd-replicas-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// hiveqd is what is under test: race detector on. The simulator runs
	// without it: its SQL engine (modernc sqlite, C translated to Go) is
	// many times slower under -race, which would starve three race-built
	// replicas on a 2-core machine; hs2sim's own tests run with -race.
	b, err := harness.Build(ctx, filepath.Join(dir, "race"), true, "hiveqd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sim, err := harness.Build(ctx, filepath.Join(dir, "plain"), false, "hs2sim")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bins = map[string]string{"hiveqd": b["hiveqd"], "hs2sim": sim["hs2sim"]}
	if err := os.Mkdir(filepath.Join(dir, "zk"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	zooKeeper, err = testenv.StartZooKeeperServer(ctx, testenv.ZooKeeperOptions{Dir: filepath.Join(dir, "zk")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	zooKeeper.Close()
	// The control endpoint calls leave keep-alive connections behind.
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// namespace is a ZooKeeper namespace of the test's own.
func namespace(t *testing.T) string {
	return "hs2-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
}
