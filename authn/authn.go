// Package authn authenticates and authorizes hiveqd's gRPC calls.
//
// A caller is identified by a bearer token listed in a token file
// ("authorization: Bearer TOKEN") or by a verified mTLS client certificate;
// the identity travels in the request context as a Principal. Methods with
// an exempt prefix (health, reflection) need no credentials, and admin
// methods (Failover) need an admin principal. With neither tokens nor mTLS
// configured, authentication is off and every call runs as the service
// principal, which is an admin.
package authn

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// How a principal was authenticated.
const (
	MethodNone  = "none" // authentication is off: the service principal
	MethodToken = "token"
	MethodMTLS  = "mtls"
)

// Principal is the authenticated caller.
type Principal struct {
	Name  string
	Admin bool
	// Method is MethodToken, MethodMTLS or MethodNone.
	Method string
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller's principal; ok is false for exempt
// methods (health, reflection) when authentication is on.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// DefaultExemptPrefixes stay reachable without credentials: Kubernetes
// gRPC probes and grpcurl's discovery cannot send tokens.
var DefaultExemptPrefixes = []string{"/grpc.health.v1.Health/", "/grpc.reflection."}

// DefaultAdminMethods need an admin principal.
var DefaultAdminMethods = []string{"/hiveq.v1.ClusterService/Failover"}

// DefaultServicePrincipal is the principal of every call when
// authentication is off.
const DefaultServicePrincipal = "hiveqd"

// Options configure an Authenticator. The zero value turns authentication
// off.
type Options struct {
	// TokenFile lists bearer tokens, one "TOKEN PRINCIPAL [admin]" a line.
	TokenFile string
	// MTLS accepts verified client certificates as identities. The server
	// must verify them (tlsutil.ServerConfig with a client CA).
	MTLS bool
	// Admins are the mTLS principal names with admin rights (token
	// principals get admin from their token file line).
	Admins []string
	// ServicePrincipal names every caller when authentication is off;
	// default DefaultServicePrincipal.
	ServicePrincipal string
	// ExemptPrefixes default to DefaultExemptPrefixes when nil; an empty
	// non-nil slice exempts nothing.
	ExemptPrefixes []string
	// AdminMethods default to DefaultAdminMethods when nil.
	AdminMethods []string
	// ReloadEvery is the least time between checks of the token file's
	// modification time, made on use; default one second.
	ReloadEvery time.Duration
	Logger      *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Authenticator holds the credentials in force.
type Authenticator struct {
	opts   Options
	admins map[string]bool
	log    *slog.Logger
	now    func() time.Time

	tokens    atomic.Pointer[tokenSet]
	lastCheck atomic.Int64 // unix nanoseconds of the last token file check
	reloadMu  sync.Mutex   // one reload at a time; guards the fields below
	file      fileStamp
	lastErr   string // last reload error, so a broken file is logged once
}

// New checks the options and loads the token file; a missing or malformed
// file is an error here (later, a bad file only keeps the previous tokens).
func New(opts Options) (*Authenticator, error) {
	if opts.ServicePrincipal == "" {
		opts.ServicePrincipal = DefaultServicePrincipal
	}
	if opts.ExemptPrefixes == nil {
		opts.ExemptPrefixes = DefaultExemptPrefixes
	}
	if opts.AdminMethods == nil {
		opts.AdminMethods = DefaultAdminMethods
	}
	if opts.ReloadEvery <= 0 {
		opts.ReloadEvery = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authenticator{opts: opts, admins: map[string]bool{}, log: opts.Logger.With("component", "authn"), now: opts.Now}
	for _, n := range opts.Admins {
		if n = strings.TrimSpace(n); n != "" {
			a.admins[n] = true
		}
	}
	if len(a.admins) > 0 && !opts.MTLS {
		return nil, fmt.Errorf("authn: admin names %v apply to mTLS client certificates, but mTLS is off", opts.Admins)
	}
	if opts.TokenFile != "" {
		if err := a.Reload(); err != nil {
			return nil, err
		}
		a.lastCheck.Store(a.now().UnixNano())
	}
	switch {
	case !a.Enabled():
		a.log.Info("authentication off: every call runs as the service principal", "principal", opts.ServicePrincipal)
	default:
		a.log.Info("authentication on", "tokens", opts.TokenFile != "", "mtls", opts.MTLS, "mtls_admins", len(a.admins))
	}
	return a, nil
}

// Enabled reports whether callers must present credentials.
func (a *Authenticator) Enabled() bool { return a.opts.TokenFile != "" || a.opts.MTLS }

// Interceptors authenticate (go-grpc-middleware's auth interceptor), then
// authorize admin methods. Put them after recovery/logging/metrics
// interceptors so refused calls are still counted and logged. A service
// implementing auth.ServiceAuthFuncOverride would replace Authenticate for
// its methods; hiveqd's services must not implement it.
func (a *Authenticator) Interceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	authU := auth.UnaryServerInterceptor(a.Authenticate)
	authS := auth.StreamServerInterceptor(a.Authenticate)
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return authU(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			if err := a.Authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		})
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return authS(srv, ss, info, func(srv any, ss grpc.ServerStream) error {
			if err := a.Authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return handler(srv, ss)
		})
	}
	if !a.Enabled() {
		return unary, stream
	}
	needsAuth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool { return !a.Exempt(c.FullMethod()) })
	return selector.UnaryServerInterceptor(unary, needsAuth), selector.StreamServerInterceptor(stream, needsAuth)
}

// ServerOptions chains Interceptors into a server.
func (a *Authenticator) ServerOptions() []grpc.ServerOption {
	u, s := a.Interceptors()
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(u), grpc.ChainStreamInterceptor(s)}
}

// Exempt reports whether fullMethod needs no credentials.
func (a *Authenticator) Exempt(fullMethod string) bool {
	return slices.ContainsFunc(a.opts.ExemptPrefixes, func(p string) bool { return strings.HasPrefix(fullMethod, p) })
}

// Authenticate is the auth.AuthFunc: it returns ctx carrying the caller's
// Principal, or UNAUTHENTICATED. A bearer token, when sent and tokens are
// configured, decides alone (a wrong token is refused even over mTLS);
// otherwise a verified client certificate identifies the caller.
func (a *Authenticator) Authenticate(ctx context.Context) (context.Context, error) {
	if !a.Enabled() {
		return NewContext(ctx, Principal{Name: a.opts.ServicePrincipal, Admin: true, Method: MethodNone}), nil
	}
	if a.opts.TokenFile != "" && len(metadata.ValueFromIncomingContext(ctx, "authorization")) > 0 {
		token, err := auth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, err // its messages never echo the header
		}
		a.maybeReload()
		e, ok := a.tokens.Load().lookup(token)
		if !ok {
			a.log.Warn("refused unknown bearer token", "fingerprint", Fingerprint(token), "peer", peerAddr(ctx))
			return nil, status.Error(codes.Unauthenticated, "invalid bearer token")
		}
		return NewContext(ctx, Principal{Name: e.principal, Admin: e.admin, Method: MethodToken}), nil
	}
	if a.opts.MTLS {
		if name, ok := certName(ctx); ok {
			return NewContext(ctx, Principal{Name: name, Admin: a.admins[name], Method: MethodMTLS}), nil
		}
	}
	switch {
	case a.opts.TokenFile != "" && a.opts.MTLS:
		return nil, status.Error(codes.Unauthenticated, "credentials required: a client certificate or authorization: Bearer <token>")
	case a.opts.TokenFile != "":
		return nil, status.Error(codes.Unauthenticated, "credentials required: authorization: Bearer <token>")
	default:
		return nil, status.Error(codes.Unauthenticated, "credentials required: a verified client certificate")
	}
}

// Authorize refuses admin methods to non-admins with PERMISSION_DENIED.
func (a *Authenticator) Authorize(ctx context.Context, fullMethod string) error {
	if !slices.Contains(a.opts.AdminMethods, fullMethod) {
		return nil
	}
	p, ok := FromContext(ctx)
	if !ok {
		return status.Errorf(codes.Unauthenticated, "%s needs an authenticated admin", fullMethod)
	}
	if !p.Admin {
		a.log.Warn("refused admin method", "method", fullMethod, "principal", p.Name, "auth", p.Method)
		return status.Errorf(codes.PermissionDenied, "%s needs an admin principal; %q is not one", fullMethod, p.Name)
	}
	return nil
}

// certName is the verified client certificate's identity: its CommonName,
// else its first URI SAN (SPIFFE IDs), else its first DNS SAN.
func certName(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", false // unverified certificates never identify anyone
	}
	leaf := ti.State.VerifiedChains[0][0]
	switch {
	case leaf.Subject.CommonName != "":
		return leaf.Subject.CommonName, true
	case len(leaf.URIs) > 0:
		return leaf.URIs[0].String(), true
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0], true
	}
	return "", false
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
