package hs2

import (
	"crypto/tls"
	"testing"

	"github.com/hiveqd/hiveqd/tlsutil"
)

// testTLS returns a server config with a fresh certificate for 127.0.0.1
// and localhost, and a client config that trusts only its CA.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	server, client, err := tlsutil.TestConfigs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}
