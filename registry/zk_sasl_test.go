package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
)

// A ZooKeeper that demands SASL from every client (ZooKeeper 3.7+
// enforce.auth) is refused with a message that says so.
func TestZKDemandsSASL(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	// Restart the same server with SASL enforced.
	z.Stop()
	cfgPath := filepath.Join(z.Dir(), "zoo.cfg")
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\nenforce.auth.enabled=true\nenforce.auth.schemes=sasl\n")
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := z.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d := NewZooKeeper(ZKConfig{Servers: z.Servers(), Logger: testLogger()})
	runDiscovery(t, d)
	testenv.Eventually(t, 30*time.Second, func() error {
		st := d.(StatusReporter).Status()
		if !strings.Contains(st.Err, "demands SASL") {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}
