package service_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/hiveqd/hiveqd/authn"
	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/query"
)

// withTokens turns on bearer-token authentication (alice, bob, and the
// admin root) and maps principals as replica does.
func withTokens(t *testing.T) fixtureOption {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("tok-alice-0123456789 alice\ntok-bob-0123456789 bob\ntok-root-0123456789 root admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := authn.New(authn.Options{TokenFile: path, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return func(s *fixtureSetup) {
		s.serverOpts = append(s.serverOpts, a.ServerOptions()...)
		s.svc.UserFromContext = func(ctx context.Context) string {
			p, _ := authn.FromContext(ctx)
			return p.Name
		}
		s.svc.AdminFromContext = func(ctx context.Context) bool {
			p, _ := authn.FromContext(ctx)
			return p.Admin
		}
	}
}

func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// Issue 12.8: only a query's owner or an admin may cancel it.
func TestCancelRequiresOwnerOrAdmin(t *testing.T) {
	s := startSim(t)
	f := newFixture(t, s, nil, withTokens(t))
	ctx := ctxT(t, 60*time.Second)
	startSlow := func(id string) chan *stream {
		done := make(chan *stream, 1)
		go func() {
			done <- f.execute(as(ctx, "tok-alice-0123456789"), &hiveqv1.ExecuteRequest{QueryId: id, Statement: "SELECT * FROM default.employees",
				Config: map[string]string{"hs2sim.exec_delay_ms": "60000"}}, nil)
		}()
		return done
	}
	running := func(n int) {
		testenv.Eventually(t, 10*time.Second, func() error {
			if got := s.Stats().OpenOperations; got != n {
				return fmt.Errorf("%d HS2 operations open, want %d", got, n)
			}
			return nil
		})
	}
	cancelAs := func(token, id string) (*hiveqv1.CancelResponse, error) {
		return f.client.Cancel(as(ctx, token), &hiveqv1.CancelRequest{QueryId: id})
	}

	q1 := startSlow("q-alice-1")
	running(1)
	_, err := cancelAs("tok-bob-0123456789", "q-alice-1")
	info := errorInfo(t, err, codes.PermissionDenied, query.ReasonNotQueryOwner)
	if info.Metadata[query.MetaQueryID] != "q-alice-1" {
		t.Errorf("metadata %v", info.Metadata)
	}
	running(1) // bob's attempt changed nothing
	if resp, err := cancelAs("tok-root-0123456789", "q-alice-1"); err != nil || resp.State != hiveqv1.QueryState_QUERY_STATE_CANCELED {
		t.Fatalf("admin Cancel: %v %v", resp, err)
	}
	errorInfo(t, (<-q1).err, codes.Canceled, query.ReasonCancelled)

	running(0) // q1's HS2 operation is closed
	q2 := startSlow("q-alice-2")
	running(1)
	if resp, err := cancelAs("tok-alice-0123456789", "q-alice-2"); err != nil || resp.State != hiveqv1.QueryState_QUERY_STATE_CANCELED {
		t.Fatalf("owner Cancel: %v %v", resp, err)
	}
	errorInfo(t, (<-q2).err, codes.Canceled, query.ReasonCancelled)
	// A query that is not running stays NOT_FOUND, for anyone.
	_, err = cancelAs("tok-bob-0123456789", "q-alice-2")
	errorInfo(t, err, codes.NotFound, query.ReasonQueryNotFound)
	f.checkClean(t, s)
}
