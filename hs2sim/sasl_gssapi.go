package hs2sim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SASL security-layer bits (RFC 4752 3.3).
const (
	qopAuth     = 1
	qopAuthInt  = 2
	qopAuthConf = 4
)

// saslMaxBuf is the JDK's javax.security.sasl.maxbuf default, offered in
// the security-layer message.
const saslMaxBuf = 65536

func qopBit(qop string) (byte, error) {
	switch qop {
	case "", "auth":
		return qopAuth, nil
	case "auth-int":
		return qopAuthInt, nil
	case "auth-conf":
		return qopAuthConf, nil
	}
	return 0, fmt.Errorf("hs2sim: unknown SASL QOP %q (auth|auth-int|auth-conf)", qop)
}

// gssLayer protects frames after a GSSAPI negotiation with integrity or
// confidentiality.
type gssLayer struct {
	ctx  *gssContext
	seal bool
}

func (l *gssLayer) wrap(b []byte) ([]byte, error) { return l.ctx.wrap(b, l.seal) }

func (l *gssLayer) unwrap(b []byte) ([]byte, error) {
	msg, sealed, err := l.ctx.unwrap(b)
	if err == nil && l.seal && !sealed {
		err = errors.New("auth-conf negotiated but the client sent an unsealed frame")
	}
	return msg, err
}

// gssapiHandshake runs the server side of Thrift's SASL negotiation for
// GSSAPI as HS2 does it (TSaslServerTransport with the JDK's
// GssKrb5Server):
//
//	C: START "GSSAPI"          C: OK <initial context token (AP-REQ)>
//	S: OK <AP-REP>             C: OK <empty>          (mutual auth only)
//	S: OK <wrap(qop bits, max buffer)>
//	C: OK <wrap(chosen qop, max buffer, [authzid])>
//	S: COMPLETE
//
// It returns the client's principal and the security layer (nil for
// auth). Failures send BAD with the JDK's message; the detail is logged.
func (s *Server) gssapiHandshake(r *bufio.Reader, w io.Writer, wait func() error) (string, *gssLayer, error) {
	status, mech, err := readSASL(r)
	if err != nil {
		return "", nil, err
	}
	if status != saslStart {
		_ = writeSASL(w, saslError, fmt.Sprintf("Expecting START status, received %d", status))
		return "", nil, fmt.Errorf("hs2sim: sasl: expected START, got %d", status)
	}
	if string(mech) != "GSSAPI" {
		_ = writeSASL(w, saslBad, "Unsupported mechanism type "+string(mech))
		return "", nil, fmt.Errorf("hs2sim: sasl: unsupported mechanism %q", mech)
	}
	tok, err := readSASLResponse(r, w)
	if err != nil {
		return "", nil, err
	}
	ctx, err := s.krb.accept(tok, s.cfg.KerberosPrincipal)
	if err != nil {
		s.log.Warn("hs2sim: kerberos: GSS initiate failed", "err", err)
		_ = writeSASL(w, saslBad, "GSS initiate failed")
		return "", nil, fmt.Errorf("%w: %v", errAuth, err)
	}
	if err := wait(); err != nil {
		return "", nil, err
	}
	if ctx.apRep != nil {
		if err := writeSASL(w, saslOK, string(ctx.apRep)); err != nil {
			return "", nil, err
		}
		empty, err := readSASLResponse(r, w)
		if err != nil {
			return "", nil, err
		}
		if len(empty) > 0 {
			_ = writeSASL(w, saslBad, "Handshake expecting no response data from server")
			return "", nil, errAuth
		}
	}
	offered, _ := qopBit(s.cfg.SASLQOP)
	offer := []byte{offered, 0, 0, 0}
	putUint24(offer[1:], saslMaxBuf)
	wrapped, err := ctx.wrap(offer, false)
	if err != nil {
		_ = writeSASL(w, saslBad, "Problem wrapping handshake1")
		return "", nil, err
	}
	if err := writeSASL(w, saslOK, string(wrapped)); err != nil {
		return "", nil, err
	}
	return s.gssapiFinish(r, w, ctx, offered)
}

// gssapiFinish reads the client's security-layer choice (RFC 4752 3.1) and
// completes the negotiation.
func (s *Server) gssapiFinish(r *bufio.Reader, w io.Writer, ctx *gssContext, offered byte) (string, *gssLayer, error) {
	resp, err := readSASLResponse(r, w)
	if err != nil {
		return "", nil, err
	}
	choice, _, err := ctx.unwrap(resp)
	if err != nil || len(choice) < 4 {
		if err == nil {
			err = fmt.Errorf("security-layer message of %d bytes", len(choice))
		}
		s.log.Warn("hs2sim: kerberos: final handshake step failed", "client", ctx.client, "err", err)
		_ = writeSASL(w, saslBad, "Final handshake step failed")
		return "", nil, fmt.Errorf("%w: %v", errAuth, err)
	}
	sel := choice[0]
	if sel&offered == 0 {
		_ = writeSASL(w, saslBad, fmt.Sprintf("Client selected unsupported protection: %d", sel))
		return "", nil, errAuth
	}
	// HS2's SaslGssCallbackHandler: the authorization id must be the
	// authenticated principal itself.
	if authz := string(choice[4:]); authz != "" && authz != ctx.client {
		_ = writeSASL(w, saslBad, ctx.client+" is not authorized to connect as "+authz)
		return "", nil, errAuth
	}
	if err := writeSASL(w, saslComplete, ""); err != nil {
		return "", nil, err
	}
	s.kerberosLogins.Add(1)
	var layer *gssLayer
	switch {
	case sel&qopAuthConf != 0:
		layer = &gssLayer{ctx: ctx, seal: true}
	case sel&qopAuthInt != 0:
		layer = &gssLayer{ctx: ctx}
	}
	return ctx.client, layer, nil
}

// readSASLResponse reads a client message during negotiation: OK or
// COMPLETE, anything else ends it.
func readSASLResponse(r *bufio.Reader, w io.Writer) ([]byte, error) {
	status, payload, err := readSASL(r)
	if err != nil {
		return nil, err
	}
	switch status {
	case saslOK, saslComplete:
		return payload, nil
	case saslBad, saslError:
		return nil, fmt.Errorf("hs2sim: sasl: peer indicated failure: %s", payload)
	}
	_ = writeSASL(w, saslError, fmt.Sprintf("Expecting OK or COMPLETE status, received %d", status))
	return nil, fmt.Errorf("hs2sim: sasl: unexpected status %d", status)
}

func putUint24(b []byte, v uint32) {
	var tmp [4]byte
	binary.BigEndian.PutUint32(tmp[:], v)
	copy(b, tmp[1:])
}
