package gssapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jcmturner/gokrb5/v8/service"
)

// SASL GSSAPI security layers (RFC 4752 section 3.3): one bit each.
const (
	LayerNone            byte = 1
	LayerIntegrity       byte = 2
	LayerConfidentiality byte = 4
)

// DefaultMaxBuffer is the receive buffer both JDK sides announce.
const DefaultMaxBuffer = 65536

// ErrNoCommonLayer is a server that offers none of the layers we allow.
var ErrNoCommonLayer = errors.New("gssapi: no common SASL security layer")

// ParseQOP maps a SASL QOP list ("auth", "auth-int", "auth-conf", comma
// separated, as javax.security.sasl.qop and hive.server2.thrift.sasl.qop
// spell it) to a layer bitmask. "" is "auth".
func ParseQOP(s string) (byte, error) {
	if strings.TrimSpace(s) == "" {
		return LayerNone, nil
	}
	var m byte
	for _, q := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(q)) {
		case "auth":
			m |= LayerNone
		case "auth-int":
			m |= LayerIntegrity
		case "auth-conf":
			m |= LayerConfidentiality
		default:
			return 0, fmt.Errorf("gssapi: SASL QOP %q: want auth, auth-int or auth-conf", q)
		}
	}
	return m, nil
}

// QOPName is the SASL name of one layer bit, or the list of a mask.
func QOPName(mask byte) string {
	var n []string
	if mask&LayerNone != 0 {
		n = append(n, "auth")
	}
	if mask&LayerIntegrity != 0 {
		n = append(n, "auth-int")
	}
	if mask&LayerConfidentiality != 0 {
		n = append(n, "auth-conf")
	}
	return strings.Join(n, ",")
}

// SecurityLayer is the RFC 4752 negotiation message: the server's offer
// (layers it supports, its max receive buffer) or the client's choice
// (exactly one layer, its max receive buffer, an authorization id).
type SecurityLayer struct {
	Layers  byte
	MaxBuf  uint32 // 24 bits
	Authzid string
}

// Marshal is the 4-byte layer+size word followed by the authzid.
func (l SecurityLayer) Marshal() []byte {
	b := make([]byte, 4, 4+len(l.Authzid))
	binary.BigEndian.PutUint32(b, l.MaxBuf&0xffffff)
	b[0] = l.Layers
	return append(b, l.Authzid...)
}

// ParseSecurityLayer reads a negotiation message.
func ParseSecurityLayer(b []byte) (SecurityLayer, error) {
	if len(b) < 4 {
		return SecurityLayer{}, fmt.Errorf("%w: security layer message of %d bytes, want at least 4", ErrBadToken, len(b))
	}
	return SecurityLayer{Layers: b[0], MaxBuf: binary.BigEndian.Uint32(b) & 0xffffff, Authzid: string(b[4:])}, nil
}

// strongest picks the best single layer of mask.
func strongest(mask byte) byte {
	for _, l := range []byte{LayerConfidentiality, LayerIntegrity, LayerNone} {
		if mask&l != 0 {
			return l
		}
	}
	return 0
}

// SASLClient is the client side of SASL GSSAPI after the initial token,
// as the JDK's GssKrb5Client runs it: verify the server's AP-REP and answer
// with an empty message, then unwrap the server's security-layer offer and
// answer with the wrapped choice.
type SASLClient struct {
	init    *Initiator
	allowed byte
	ctx     *Context
	layer   byte
	peerMax uint32
	done    bool
}

// NewSASLClient starts the client after init's token went out as the
// initial response; allowed is the mask of layers the configuration
// permits (the strongest common one is chosen).
func NewSASLClient(init *Initiator, allowed byte) *SASLClient {
	return &SASLClient{init: init, allowed: allowed}
}

// Step evaluates one server challenge and returns the response to send;
// done is true once the client has sent its final message.
func (c *SASLClient) Step(challenge []byte) (resp []byte, done bool, err error) {
	if c.done {
		return nil, true, fmt.Errorf("gssapi: SASL exchange already complete")
	}
	if c.ctx == nil {
		if len(challenge) > 0 && challenge[0] == 0x60 { // a framed context token: the AP-REP
			if c.ctx, err = c.init.Complete(challenge); err != nil {
				return nil, false, fmt.Errorf("mutual authentication: %w", err)
			}
			return []byte{}, false, nil
		}
		if c.ctx, err = c.init.CompleteWithoutAPRep(); err != nil {
			return nil, false, err
		}
	}
	return c.answerOffer(challenge)
}

func (c *SASLClient) answerOffer(challenge []byte) ([]byte, bool, error) {
	pt, _, err := c.ctx.Unwrap(challenge)
	if err != nil {
		return nil, false, fmt.Errorf("security layer offer: %w", err)
	}
	offer, err := ParseSecurityLayer(pt)
	if err != nil {
		return nil, false, err
	}
	c.layer = strongest(offer.Layers & c.allowed)
	if c.layer == 0 {
		return nil, false, fmt.Errorf("%w: server offers %q, configuration allows %q (check sasl_qop against the server's hive.server2.thrift.sasl.qop)",
			ErrNoCommonLayer, QOPName(offer.Layers), QOPName(c.allowed))
	}
	c.peerMax = offer.MaxBuf
	choice := SecurityLayer{Layers: c.layer}
	if c.layer != LayerNone {
		// RFC 4752: the size MUST be 0 without a security layer.
		choice.MaxBuf = DefaultMaxBuffer
	}
	// No authzid: HS2 (Hadoop's SaslGssCallbackHandler) authorizes only
	// an authzid equal to the authenticated principal; impersonation
	// goes through hive.server2.proxy.user instead.
	resp, err := c.ctx.Wrap(choice.Marshal(), false)
	if err != nil {
		return nil, false, err
	}
	c.done = true
	return resp, true, nil
}

// Context is the established context (nil before the AP-REP).
func (c *SASLClient) Context() *Context { return c.ctx }

// Layer is the chosen security layer (0 before the offer).
func (c *SASLClient) Layer() byte { return c.layer }

// PeerMaxBuffer is the server's announced receive buffer.
func (c *SASLClient) PeerMaxBuffer() uint32 { return c.peerMax }

// SASLServer is the server side of SASL GSSAPI as the JDK's GssKrb5Server
// runs it under Thrift's TSaslServerTransport: accept the AP-REQ and answer
// with the AP-REP; expect an empty message and answer with the wrapped
// security-layer offer (integrity only, not sealed); unwrap the client's
// choice and complete.
type SASLServer struct {
	settings *service.Settings
	opts     AcceptOptions
	offered  byte
	maxBuf   uint32
	stage    int
	acc      *Accepted
	layer    byte
	peerMax  uint32
	authzid  string
}

// NewSASLServer serves with the keytab in settings, offering the layers
// in the mask offered (from ParseQOP).
func NewSASLServer(settings *service.Settings, offered byte, opts AcceptOptions) *SASLServer {
	return &SASLServer{settings: settings, opts: opts, offered: offered, maxBuf: DefaultMaxBuffer}
}

// Step evaluates one client message and returns the challenge to send;
// done reports that the exchange is complete (the final challenge is nil:
// send COMPLETE with an empty payload).
func (s *SASLServer) Step(msg []byte) (challenge []byte, done bool, err error) {
	switch s.stage {
	case 0:
		if s.acc, err = Accept(msg, s.settings, s.opts); err != nil {
			return nil, false, err
		}
		if s.acc.APRep != nil {
			s.stage = 1
			return s.acc.APRep, false, nil
		}
		s.stage = 2
		return s.offer()
	case 1:
		if len(msg) != 0 {
			return nil, false, fmt.Errorf("gssapi: handshake expecting no response data from the client, got %d bytes", len(msg))
		}
		s.stage = 2
		return s.offer()
	case 2:
		return nil, true, s.finish(msg)
	}
	return nil, true, fmt.Errorf("gssapi: SASL exchange already complete")
}

func (s *SASLServer) offer() ([]byte, bool, error) {
	b, err := s.acc.Context.Wrap(SecurityLayer{Layers: s.offered, MaxBuf: s.maxBuf}.Marshal(), false)
	return b, false, err
}

func (s *SASLServer) finish(msg []byte) error {
	s.stage = 3
	pt, _, err := s.acc.Context.Unwrap(msg)
	if err != nil {
		return fmt.Errorf("final handshake: %w", err)
	}
	choice, err := ParseSecurityLayer(pt)
	if err != nil {
		return err
	}
	if choice.Layers&s.offered == 0 {
		return fmt.Errorf("gssapi: client selected unsupported protection %#x (offered %q)", choice.Layers, QOPName(s.offered))
	}
	s.layer = strongest(choice.Layers & s.offered)
	s.peerMax = choice.MaxBuf
	s.authzid = choice.Authzid
	if s.authzid != "" && s.authzid != s.acc.Client {
		return fmt.Errorf("gssapi: %s is not authorized to connect as %s", s.acc.Client, s.authzid)
	}
	return nil
}

// Accepted is the acceptor's context and the client's identity (nil
// before the first step succeeds).
func (s *SASLServer) Accepted() *Accepted { return s.acc }

// Layer is the negotiated layer (0 until complete).
func (s *SASLServer) Layer() byte { return s.layer }
