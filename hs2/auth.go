package hs2

import (
	"errors"
	"fmt"
	"net/http"
)

// Authenticator chooses how this process proves itself to one HS2 server:
// a SASL mechanism on the binary transport (the connection's credentials,
// like grpc-go's TransportCredentials) and a request hook on HTTP (like
// PerRPCCredentials). Options.Authenticator replaces the default, which
// picks PLAIN, NOSASL, Basic or Kerberos from Endpoint.Auth.
type Authenticator interface {
	// SASL returns a fresh mechanism for one binary connection to ep; nil
	// means NOSASL (Thrift straight on the socket).
	SASL(ep Endpoint) (SASLMechanism, error)
	// HTTP returns the hook for an HTTP transport to ep.
	HTTP(ep Endpoint) (HTTPAuthorizer, error)
}

// SASLMechanism is the client side of one SASL exchange, driven by Thrift's
// SASL negotiation (TSaslClientTransport): Start's initial response goes
// out with the mechanism name, then each server challenge goes to Step
// until the mechanism is done.
type SASLMechanism interface {
	Name() string
	// Start returns the initial response and whether the client is
	// already complete (PLAIN).
	Start() (initial []byte, done bool, err error)
	// Step evaluates a server challenge.
	Step(challenge []byte) (response []byte, done bool, err error)
	// Layer is the negotiated security layer once complete; nil when
	// frames travel unprotected (QOP auth).
	Layer() SecurityLayer
}

// SecurityLayer protects each Thrift SASL frame after negotiation (QOP
// auth-int or auth-conf): the frame's payload is one wrapped token.
type SecurityLayer interface {
	Wrap(payload []byte) ([]byte, error)
	Unwrap(token []byte) ([]byte, error)
}

// HTTPAuthorizer adds credentials to an HTTP request sent without a live
// hive.server2.auth cookie (the first one, and after the server refused an
// expired cookie). It is called for every such request, so a Kerberos
// token is fresh each time.
type HTTPAuthorizer interface {
	Authorize(req *http.Request) error
}

// defaultAuth is the Authenticator behind Options without one.
type defaultAuth struct{ opts Options }

func (a defaultAuth) SASL(ep Endpoint) (SASLMechanism, error) {
	switch ep.Auth {
	case AuthNoSASL:
		return nil, nil
	case AuthKerberos:
		return newGSSAPIMechanism(ep, a.opts.Kerberos)
	}
	return &plainMechanism{user: a.opts.User, password: a.opts.Password}, nil
}

func (a defaultAuth) HTTP(ep Endpoint) (HTTPAuthorizer, error) {
	if ep.Auth == AuthKerberos {
		return newSPNEGOAuthorizer(ep, a.opts.Kerberos)
	}
	return basicAuth{user: a.opts.User, password: a.opts.Password}, nil
}

// plainMechanism is SASL PLAIN: one initial response,
// "\x00user\x00password" (authzid empty).
type plainMechanism struct{ user, password string }

func (*plainMechanism) Name() string { return "PLAIN" }

func (m *plainMechanism) Start() ([]byte, bool, error) {
	resp := make([]byte, 0, 2+len(m.user)+len(m.password))
	resp = append(resp, 0)
	resp = append(resp, m.user...)
	resp = append(resp, 0)
	resp = append(resp, m.password...)
	return resp, true, nil
}

func (*plainMechanism) Step([]byte) ([]byte, bool, error) {
	return nil, false, fmt.Errorf("%w: unexpected challenge after PLAIN response", errSASLProtocol)
}

func (*plainMechanism) Layer() SecurityLayer { return nil }

// basicAuth is HTTP Basic with hiveqd's HS2 credentials.
type basicAuth struct{ user, password string }

func (b basicAuth) Authorize(req *http.Request) error {
	req.SetBasicAuth(b.user, b.password)
	return nil
}

// errNoKerberos is a KERBEROS server with no identity configured.
var errNoKerberos = errors.New("hs2: the server requires Kerberos and no Kerberos identity is configured (kerberos: principal/keytab, or KRB5CCNAME)")
