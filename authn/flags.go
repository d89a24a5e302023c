package authn

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"

	"github.com/hiveqd/hiveqd/tlsutil"
	"google.golang.org/grpc/credentials"
)

// Flags are the serve command's transport-security and authentication
// settings (config.Security: each has a flag, a YAML field and a HIVEQD_*
// variable).
type Flags struct {
	TokenFile        string
	Admins           string // comma-separated mTLS admin names
	ServicePrincipal string
	TLSCert          string
	TLSKey           string
	TLSClientCA      string
}

// Build returns the Authenticator and the server TLS configuration (nil for
// plaintext). --tls-client-ca requires --tls-cert/--tls-key and makes
// verified client certificates identities.
func (f *Flags) Build(logger *slog.Logger) (*Authenticator, *tls.Config, error) {
	if logger == nil {
		logger = slog.Default()
	}
	var tlsCfg *tls.Config
	switch {
	case f.TLSCert != "" || f.TLSKey != "":
		var err error
		if tlsCfg, err = tlsutil.ServerConfig(f.TLSCert, f.TLSKey, f.TLSClientCA); err != nil {
			return nil, nil, err
		}
	case f.TLSClientCA != "":
		return nil, nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	}
	var admins []string
	for _, a := range strings.Split(f.Admins, ",") {
		if a = strings.TrimSpace(a); a != "" {
			admins = append(admins, a)
		}
	}
	a, err := New(Options{
		TokenFile:        f.TokenFile,
		MTLS:             f.TLSClientCA != "",
		Admins:           admins,
		ServicePrincipal: f.ServicePrincipal,
		Logger:           logger,
	})
	if err != nil {
		return nil, nil, err
	}
	if f.TokenFile != "" && tlsCfg == nil {
		logger.Warn("bearer tokens travel in plaintext: serve TLS (--tls-cert/--tls-key) or run behind a TLS-terminating mesh")
	}
	return a, tlsCfg, nil
}

// TokenCredentials sends "authorization: Bearer Token" with every call
// (grpc.WithPerRPCCredentials). Without TLS, gRPC refuses to send them
// unless AllowInsecure is set.
type TokenCredentials struct {
	Token         string
	AllowInsecure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c TokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + c.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (c TokenCredentials) RequireTransportSecurity() bool { return !c.AllowInsecure }

var _ credentials.PerRPCCredentials = TokenCredentials{}
