package chaos

import (
	"testing"
	"time"
)

// TestChaosSmoke is the always-on variant (about a minute): load on three
// replicas while the routed HS2 pauses (a GC pause), then crashes, and the
// leader is SIGKILLed, with every invariant checked. The full suite is behind the chaos build tag.
func TestChaosSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper, etcd, 3 simulators and 3 replicas")
	}
	runAndCheck(t, Options{
		Seed:       time.Now().UnixNano(),
		Kinds:      []string{HS2Pause, HS2Crash, LeaderKill},
		InOrder:    true,
		Faults:     3,
		Hold:       2 * time.Second,
		PerReplica: 1,
	})
}
