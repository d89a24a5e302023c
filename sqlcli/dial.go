package sqlcli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ServiceConfig is the gRPC service config every hiveqd client should use
// (grpc.WithDefaultServiceConfig in Go, channel option
// "grpc.service_config" in grpc-js; examples/node/service-config.json is
// the same document). It retries calls that fail with UNAVAILABLE before
// the server sent anything: connection refused or reset, a replica that is
// shutting down, or no HS2 available yet (hiveqd answers that before it
// sends the first status). gRPC never retries a stream once a response has
// arrived, and hiveqd sends its first status before the statement goes to
// HS2, so a query that started is never run twice. ClusterService.Failover
// is left out: it is not idempotent.
const ServiceConfig = `{
  "methodConfig": [
    {
      "name": [
        { "service": "hiveq.v1.QueryService" },
        { "service": "hiveq.v1.ClusterService", "method": "GetTopology" },
        { "service": "hiveq.v1.ClusterService", "method": "WatchTopology" }
      ],
      "retryPolicy": {
        "maxAttempts": 5,
        "initialBackoff": "0.2s",
        "maxBackoff": "5s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]
      }
    }
  ]
}`

// dial builds the client connection (lazy: nothing is dialled until the
// call) and returns the bearer token to send, if any.
func dial(o *options, getenv func(string) string, extra []grpc.DialOption) (*grpc.ClientConn, string, error) {
	token, err := readToken(o.tokenFile, getenv)
	if err != nil {
		return nil, "", err
	}
	creds := insecure.NewCredentials()
	if o.useTLS() {
		cfg, err := tlsConfig(o)
		if err != nil {
			return nil, "", err
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(ServiceConfig),
		grpc.WithUserAgent("hiveqd-sql"),
	}
	conn, err := grpc.NewClient(o.addr, append(opts, extra...)...)
	if err != nil {
		return nil, "", fmt.Errorf("--addr %q: %w", o.addr, err)
	}
	return conn, token, nil
}

// readToken reads --token-file, else $HIVEQD_TOKEN; surrounding space
// (the file's newline) is not part of the token.
func readToken(file string, getenv func(string) string) (string, error) {
	if file == "" {
		return strings.TrimSpace(getenv("HIVEQD_TOKEN")), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	return tok, nil
}

func tlsConfig(o *options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.tlsServerName}
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", o.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
