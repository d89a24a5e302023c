//go:build chaos

package chaos

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestChaos is the chaos suite in short mode (CHAOS=1 scripts/test.sh):
// every fault kind once, in order, under load — about 4 minutes. Set
// CHAOS_DURATION (e.g. 20m) for a soak of random faults instead, and
// CHAOS_SEED to replay a run's fault schedule.
func TestChaos(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with CHAOS_SEED=%d)", seed, seed)
	opts := Options{Seed: seed, Kinds: AllKinds, InOrder: true, Faults: len(AllKinds)}
	if d := os.Getenv("CHAOS_DURATION"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("CHAOS_DURATION: %v", err)
		}
		opts = Options{Seed: seed, Duration: dur}
	}
	runAndCheck(t, opts)
}

// TestChaosEtcd runs the etcd faults of issue 12 once each, in order, under
// load: compaction, a deleted route key, a restore from the snapshot taken
// at the start, and a follower cut off from etcd during a failover.
func TestChaosEtcd(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	runAndCheck(t, Options{Seed: seed, Kinds: EtcdKinds, InOrder: true, Faults: len(EtcdKinds)})
}
