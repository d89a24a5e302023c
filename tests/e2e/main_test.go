// Package e2e runs the hiveqd and hs2sim binaries as processes and calls
// them the way users do: with grpcurl (installed by scripts/install-deps.sh)
// and a raw gRPC client for what grpcurl cannot send.
package e2e

import (
	"testing"

	"github.com/hiveqd/hiveqd/tests/harness"
)

var bins map[string]string

func TestMain(m *testing.M) {
	harness.Main(m, &bins, true, true, "hiveqd", "hs2sim")
}
