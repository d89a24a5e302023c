package hs2

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/hiveqd/hiveqd/gssapi"
	"github.com/hiveqd/hiveqd/kerberos"
)

// Kerberos is how this process authenticates to KERBEROS servers.
type Kerberos struct {
	// Identity issues service tickets for hiveqd's principal.
	Identity TicketSource
	// Principal is the server principal pattern, e.g. hive/_HOST@REALM;
	// it overrides the one the server publishes (Endpoint.Principal).
	Principal string
	// HTTPPrincipal is the SPNEGO principal for the HTTP transport;
	// default the server principal (HS2 accepts its hive/ principal, and
	// its HTTP/ one when hive.server2.authentication.spnego.principal is
	// set, as Hive JDBC uses the former).
	HTTPPrincipal string
	// QOP allows SASL security layers (auth, auth-int, auth-conf, or a
	// list); it overrides the server's published hive.server2.thrift.sasl.qop.
	QOP string
}

// TicketSource issues service tickets (kerberos.Identity).
type TicketSource interface {
	ServiceTicket(spn string) (kerberos.Ticket, error)
}

// ServicePrincipal is the principal of the server on host: a _HOST host
// component becomes host lower-cased, as Hadoop's
// SecurityUtil.getServerPrincipal does. Each connection builds it from the
// server it dials, so a failover to another host uses that host's
// principal (the bug of HIVE-28220 and kyuubi#6337).
func ServicePrincipal(pattern, host string) string {
	name, realm, hasRealm := strings.Cut(pattern, "@")
	parts := strings.Split(name, "/")
	if len(parts) == 2 && parts[1] == "_HOST" {
		parts[1] = strings.ToLower(host)
	}
	p := strings.Join(parts, "/")
	if hasRealm {
		p += "@" + realm
	}
	return p
}

func serverPrincipal(ep Endpoint, k *Kerberos, http bool) (string, error) {
	pattern := ep.Principal
	if k.Principal != "" {
		pattern = k.Principal
	}
	if http && k.HTTPPrincipal != "" {
		pattern = k.HTTPPrincipal
	}
	if pattern == "" {
		return "", fmt.Errorf("hs2 %s: no server principal: set the connector's principal (hive/_HOST@REALM); the server published none", ep.Addr())
	}
	return ServicePrincipal(pattern, ep.Host), nil
}

// ticket gets a service ticket for ep's principal; failures are
// *AuthError wrapping the kerberos package's classified error.
func ticketFor(ep Endpoint, k *Kerberos, http bool) (kerberos.Ticket, error) {
	if k == nil || k.Identity == nil {
		return kerberos.Ticket{}, &AuthError{Server: ep.Addr(), Message: errNoKerberos.Error(), Err: errNoKerberos}
	}
	spn, err := serverPrincipal(ep, k, http)
	if err != nil {
		return kerberos.Ticket{}, &AuthError{Server: ep.Addr(), Message: err.Error(), Err: err}
	}
	t, err := k.Identity.ServiceTicket(spn)
	if err != nil {
		return kerberos.Ticket{}, &AuthError{Server: ep.Addr(), Message: err.Error(), Err: err}
	}
	return t, nil
}

// gssapiMechanism is SASL GSSAPI (RFC 4752) as HS2's Java server speaks it.
type gssapiMechanism struct {
	ep      Endpoint
	k       *Kerberos
	allowed byte
	spn     string
	cl      *gssapi.SASLClient
}

// refusalHint explains a server's refusal of our ticket.
func (m *gssapiMechanism) refusalHint() string {
	return fmt.Sprintf(" (the server refused our Kerberos ticket for %s: check that its keytab holds that principal, i.e. that the connector's principal and the host name %q match the server's hive.server2.authentication.kerberos.principal, and that hiveqd's principal may log in)", m.spn, m.ep.Host)
}

func newGSSAPIMechanism(ep Endpoint, k *Kerberos) (SASLMechanism, error) {
	if k == nil || k.Identity == nil {
		return nil, &AuthError{Server: ep.Addr(), Message: errNoKerberos.Error(), Err: errNoKerberos}
	}
	qop := ep.SASLQOP
	if k != nil && k.QOP != "" {
		qop = k.QOP
	}
	allowed, err := gssapi.ParseQOP(qop)
	if err != nil {
		return nil, fmt.Errorf("hs2 %s: %w", ep.Addr(), err)
	}
	return &gssapiMechanism{ep: ep, k: k, allowed: allowed}, nil
}

func (*gssapiMechanism) Name() string { return "GSSAPI" }

func (m *gssapiMechanism) Start() ([]byte, bool, error) {
	t, err := ticketFor(m.ep, m.k, false)
	if err != nil {
		return nil, false, err
	}
	m.spn, _ = serverPrincipal(m.ep, m.k, false)
	init, tok, err := gssapi.NewInitiator(t.CName, t.Realm, t.Ticket, t.SessionKey, gssapi.DefaultFlags)
	if err != nil {
		return nil, false, err
	}
	m.cl = gssapi.NewSASLClient(init, m.allowed)
	return tok, false, nil
}

func (m *gssapiMechanism) Step(challenge []byte) ([]byte, bool, error) {
	resp, done, err := m.cl.Step(challenge)
	if err != nil {
		return nil, false, &AuthError{Server: m.ep.Addr(), Message: "GSSAPI: " + err.Error(), Err: err}
	}
	return resp, done, nil
}

func (m *gssapiMechanism) Layer() SecurityLayer {
	switch m.cl.Layer() {
	case gssapi.LayerIntegrity:
		return gssLayer{ctx: m.cl.Context()}
	case gssapi.LayerConfidentiality:
		return gssLayer{ctx: m.cl.Context(), seal: true}
	}
	return nil
}

// gssLayer wraps frames per RFC 4121: integrity, or sealed for auth-conf.
type gssLayer struct {
	ctx  *gssapi.Context
	seal bool
}

func (l gssLayer) Wrap(p []byte) ([]byte, error) { return l.ctx.Wrap(p, l.seal) }

func (l gssLayer) Unwrap(tok []byte) ([]byte, error) {
	p, sealed, err := l.ctx.Unwrap(tok)
	if err != nil {
		return nil, err
	}
	if l.seal && !sealed {
		return nil, fmt.Errorf("%w: an unsealed frame under auth-conf", gssapi.ErrBadToken)
	}
	return p, nil
}

// spnegoAuthorizer sends "Authorization: Negotiate <SPNEGO NegTokenInit>"
// with a fresh Kerberos token (acceptors keep a replay cache).
type spnegoAuthorizer struct {
	ep Endpoint
	k  *Kerberos
}

func newSPNEGOAuthorizer(ep Endpoint, k *Kerberos) (HTTPAuthorizer, error) {
	if k == nil || k.Identity == nil {
		return nil, &AuthError{Server: ep.Addr(), Message: errNoKerberos.Error(), Err: errNoKerberos}
	}
	return spnegoAuthorizer{ep: ep, k: k}, nil
}

func (a spnegoAuthorizer) Authorize(req *http.Request) error {
	t, err := ticketFor(a.ep, a.k, true)
	if err != nil {
		return err
	}
	_, tok, err := gssapi.NewInitiator(t.CName, t.Realm, t.Ticket, t.SessionKey, gssapi.ContextFlagInteg|gssapi.ContextFlagConf)
	if err != nil {
		return err
	}
	neg := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{
		MechTypes:      []asn1.ObjectIdentifier{gssapi.OIDKRB5},
		MechTokenBytes: tok,
	}}
	b, err := neg.Marshal()
	if err != nil {
		return fmt.Errorf("hs2 %s: SPNEGO token: %w", a.ep.Addr(), err)
	}
	req.Header.Set("Authorization", "Negotiate "+base64.StdEncoding.EncodeToString(b))
	return nil
}
