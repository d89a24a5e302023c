package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/routing"
)

// A failure report already in etcd when a term starts is acted on once the
// connector is ready, not consumed (and dropped for good) while its
// selector is still starting (issue 12, item 4).
func TestReportAtTermStartActedOn(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := client(t, e.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep := s1
	route, _ := json.Marshal(routing.Route{Connector: "a", Epoch: 1, Endpoint: &ep, Reason: "earlier term", ChosenBy: "old", ChosenAt: time.Now()})
	report, _ := json.Marshal(map[string]any{"epoch": 1, "server": s1.Addr(), "error": "reset", "time": time.Now()})
	for k, v := range map[string]string{"connectors/a": string(route), "reports/a/r9": string(report)} {
		if _, err := cli.Put(ctx, "/hiveqd/"+clusterName+"/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	// A selector that takes a while to construct (as one that dials
	// ZooKeeper does): the report watch starts meanwhile.
	var w fakeWorld
	slow := func() cluster.Selector {
		time.Sleep(300 * time.Millisecond)
		return w.newSelector()
	}
	r := startReplica(t, "r1", e.Endpoints(), []cluster.ConnectorConfig{{Name: "a", NewSelector: slow}})
	waitLeader(t, 10*time.Second, r)
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := w.reports(); !slices.Equal(got, []string{s1.Addr()}) {
			return fmt.Errorf("selector got reports %v, want [%s]", got, s1.Addr())
		}
		return nil
	})
}
