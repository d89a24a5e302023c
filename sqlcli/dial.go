package sqlcli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
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
func dial(o *options, addr string, getenv func(string) string, extra []grpc.DialOption) (*grpc.ClientConn, string, error) {
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
	conn, err := grpc.NewClient(addr, append(opts, extra...)...)
	if err != nil {
		return nil, "", fmt.Errorf("--addr %q: %w", addr, err)
	}
	return conn, token, nil
}

// connectTimeout bounds the first connection (a host that drops packets).
const connectTimeout = 10 * time.Second

// checkConnect makes the first connection and fails as soon as it does,
// naming the address and what to check: a refused connection is reported
// at once instead of after the service config's retries. Later calls keep
// the retries (a replica restarting, no HS2 yet).
func checkConnect(ctx context.Context, conn *grpc.ClientConn, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return connectError(addr, "")
		}
		if !conn.WaitForStateChange(ctx, s) {
			if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return connectError(addr, fmt.Sprintf("no answer within %v", connectTimeout))
			}
			return ctx.Err()
		}
	}
}

// connectError explains a failed connection; why is found by dialing
// plain TCP when not given (gRPC's state does not say).
func connectError(addr, why string) error {
	if why == "" {
		why = "the connection failed (TLS or HTTP/2 handshake: check --tls* and --plaintext)"
		if c, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
			why = err.Error()
			var se *net.OpError
			if errors.As(err, &se) && se.Err != nil {
				why = se.Err.Error()
			}
		} else {
			c.Close()
		}
	}
	return fmt.Errorf("cannot reach hiveqd at %s: %s\n  Check that hiveqd is running there (hiveqd serve, or hiveqd dev for a local one)\n  and that --addr (or $HIVEQD_ADDR) names its gRPC address.", addr, why)
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
