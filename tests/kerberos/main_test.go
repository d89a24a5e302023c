// Package kerberos runs hiveqd against Kerberized HS2 simulators with a
// real MIT KDC (Debian's krb5-kdc, unprivileged on a loopback port), all as
// processes: every SASL QOP on the binary transport, HTTP SPNEGO with the
// auth cookie, ticket expiry during and between queries, the errors a
// misconfigured identity gets, failover between servers whose principals
// differ by host, impersonation, and `hiveqd sql` and grpcurl as clients.
package kerberos

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

var bins map[string]string

func TestMain(m *testing.M) {
	if err := testenv.KDCInstalled(); err != nil {
		fmt.Fprintln(os.Stderr, "tests/kerberos: skipped:", err)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "hiveqd-krb-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	bins, err = harness.Build(ctx, dir, true, "hiveqd", "hs2sim")
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
