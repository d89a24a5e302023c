// Package kerberos runs hiveqd against Kerberized HS2 simulators with a
// real MIT KDC (Debian's krb5-kdc, unprivileged on a loopback port), all as
// processes: every SASL QOP on the binary transport, HTTP SPNEGO with the
// auth cookie, ticket expiry during and between queries, the errors a
// misconfigured identity gets, failover between servers whose principals
// differ by host, impersonation, and `hiveqd sql` and grpcurl as clients.
package kerberos

import (
	"fmt"
	"os"
	"testing"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

var bins map[string]string

func TestMain(m *testing.M) {
	if err := testenv.KDCInstalled(); err != nil {
		fmt.Fprintln(os.Stderr, "tests/kerberos: skipped:", err)
		os.Exit(0)
	}
	harness.Main(m, &bins, true, true, "hiveqd", "hs2sim")
}
