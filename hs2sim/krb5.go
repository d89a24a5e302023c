package hs2sim

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// The Kerberos acceptor: what the JDK's Krb5 GSS mechanism does for HS2.
// gokrb5 decrypts and checks the AP-REQ; this file adds what it lacks on
// the service side: the AP-REP (with an acceptor subkey and a sequence
// number) and RFC 4121 wrap tokens with sealing and real sequence numbers.
// It is written apart from hiveqd's client code on purpose, so the two
// check each other against the RFCs (and gohive's MIT library checks it).

// GSS-API context flags carried in the authenticator checksum (RFC 4121
// 4.1.1.1).
const (
	gssMutualFlag = 2
)

// Wrap token flags (RFC 4121 4.2.2).
const (
	wrapSentByAcceptor = 0x01
	wrapSealed         = 0x02
	wrapAcceptorSubkey = 0x04
)

// krbAcceptor accepts Kerberos GSS-API initial context tokens for a set of
// service principals from a keytab.
type krbAcceptor struct {
	kt      *keytab.Keytab
	skew    time.Duration
	subkey  bool // send an acceptor subkey in the AP-REP
	replays *replayCache
}

// gssContext is an established security context (acceptor side).
type gssContext struct {
	client    string // the initiator's principal, name@REALM
	service   string // the ticket's server principal, name@REALM
	key       types.EncryptionKey
	accSubkey bool   // key is the acceptor subkey (flag 0x04 in tokens)
	apRep     []byte // the GSS AP-REP token; nil without mutual auth
	sendSeq   uint64
	recvSeq   uint64
}

// accept verifies an initial context token, raw krb5 (RFC 1964 framing)
// or SPNEGO carrying one, whose ticket is for one of services.
func (a *krbAcceptor) accept(token []byte, services ...string) (*gssContext, error) {
	apReq, err := parseInitToken(token)
	if err != nil {
		return nil, err
	}
	sname := apReq.Ticket.SName.PrincipalNameString() + "@" + apReq.Ticket.Realm
	if !containsFold(services, sname) {
		return nil, fmt.Errorf("ticket is for %s, not for this server (%s)", sname, strings.Join(services, " or "))
	}
	if ok, err := apReq.Verify(a.kt, a.skew, types.HostAddress{}, nil); err != nil || !ok {
		if err == nil {
			err = errors.New("AP-REQ not valid")
		}
		return nil, fmt.Errorf("verify AP-REQ for %s: %w", sname, err)
	}
	auth := apReq.Authenticator
	client := auth.CName.PrincipalNameString() + "@" + auth.CRealm
	if a.replays.seen(client, sname, auth.CTime, auth.Cusec, a.skew) {
		return nil, fmt.Errorf("request from %s is a replay", client)
	}
	if auth.Cksum.CksumType != chksumtype.GSSAPI || len(auth.Cksum.Checksum) < 24 {
		return nil, fmt.Errorf("authenticator has no GSS-API checksum (type %d)", auth.Cksum.CksumType)
	}
	flags := binary.LittleEndian.Uint32(auth.Cksum.Checksum[20:24])
	ctx := &gssContext{client: client, service: sname, key: apReq.Ticket.DecryptedEncPart.Key}
	if auth.SubKey.KeyType != 0 {
		ctx.key = auth.SubKey
	}
	ctx.recvSeq = uint64(auth.SeqNumber)
	// Without mutual authentication both directions start at the
	// initiator's sequence number (RFC 4121 4.2.3's note; MIT and the JDK).
	ctx.sendSeq = ctx.recvSeq
	if flags&gssMutualFlag != 0 {
		if err := a.reply(ctx, apReq); err != nil {
			return nil, err
		}
	}
	return ctx, nil
}

// reply builds the AP-REP: the authenticator's time, a new sequence number
// and, if configured, a random acceptor subkey, encrypted in the ticket's
// session key (RFC 4120 5.5.2).
func (a *krbAcceptor) reply(ctx *gssContext, apReq messages.APReq) error {
	seq, err := rand.Int(rand.Reader, big.NewInt(1<<30-1))
	if err != nil {
		return err
	}
	enc := messages.EncAPRepPart{CTime: apReq.Authenticator.CTime, Cusec: apReq.Authenticator.Cusec,
		SequenceNumber: seq.Int64() + 1}
	if a.subkey {
		et, err := crypto.GetEtype(ctx.key.KeyType)
		if err != nil {
			return err
		}
		k := make([]byte, et.GetKeyByteSize())
		if _, err := rand.Read(k); err != nil {
			return err
		}
		enc.Subkey = types.EncryptionKey{KeyType: ctx.key.KeyType, KeyValue: k}
	}
	b, err := asn1.Marshal(enc)
	if err != nil {
		return fmt.Errorf("marshal EncAPRepPart: %w", err)
	}
	b = asn1tools.AddASNAppTag(b, asnAppTag.EncAPRepPart)
	ed, err := crypto.GetEncryptedData(b, apReq.Ticket.DecryptedEncPart.Key, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		return err
	}
	rb, err := asn1.Marshal(messages.APRep{PVNO: 5, MsgType: msgtype.KRB_AP_REP, EncPart: ed})
	if err != nil {
		return fmt.Errorf("marshal AP-REP: %w", err)
	}
	oid, _ := asn1.Marshal(gssapi.OIDKRB5.OID())
	tok := append(oid, 0x02, 0x00) // TOK_ID KRB_AP_REP
	ctx.apRep = asn1tools.AddASNAppTag(append(tok, asn1tools.AddASNAppTag(rb, asnAppTag.APREP)...), 0)
	ctx.sendSeq = uint64(enc.SequenceNumber)
	if a.subkey {
		ctx.key, ctx.accSubkey = enc.Subkey, true
	}
	return nil
}

// parseInitToken takes the AP-REQ out of a krb5 initial context token,
// itself possibly inside a SPNEGO NegTokenInit.
func parseInitToken(b []byte) (messages.APReq, error) {
	var oid asn1.ObjectIdentifier
	rest, err := asn1.UnmarshalWithParams(b, &oid, "application,explicit,tag:0")
	if err != nil {
		return messages.APReq{}, fmt.Errorf("not a GSS-API initial context token: %w", err)
	}
	switch {
	case oid.Equal(gssapi.OIDSPNEGO.OID()):
		var st spnego.SPNEGOToken
		if err := st.Unmarshal(b); err != nil {
			return messages.APReq{}, fmt.Errorf("SPNEGO: %w", err)
		}
		if !st.Init || len(st.NegTokenInit.MechTokenBytes) == 0 {
			return messages.APReq{}, errors.New("SPNEGO: no NegTokenInit with a Kerberos mechanism token")
		}
		return parseInitToken(st.NegTokenInit.MechTokenBytes)
	case oid.Equal(gssapi.OIDKRB5.OID()), oid.Equal(gssapi.OIDMSLegacyKRB5.OID()):
		if len(rest) < 2 || rest[0] != 0x01 || rest[1] != 0x00 {
			return messages.APReq{}, errors.New("krb5 token is not an AP-REQ")
		}
		var ap messages.APReq
		if err := ap.Unmarshal(rest[2:]); err != nil {
			return messages.APReq{}, fmt.Errorf("AP-REQ: %w", err)
		}
		return ap, nil
	default:
		return messages.APReq{}, fmt.Errorf("unsupported GSS-API mechanism %s", oid)
	}
}

// wrap protects msg as an RFC 4121 wrap token from the acceptor, sealed
// (encrypted) or with integrity only. Both kinds use the SEAL key usage
// (the SIGN usages are for MIC tokens), as MIT and the JDK do.
func (c *gssContext) wrap(msg []byte, seal bool) ([]byte, error) {
	et, err := crypto.GetEtype(c.key.KeyType)
	if err != nil {
		return nil, err
	}
	flags := byte(wrapSentByAcceptor)
	if c.accSubkey {
		flags |= wrapAcceptorSubkey
	}
	if seal {
		flags |= wrapSealed
	}
	hdr := []byte{0x05, 0x04, flags, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(hdr[8:], c.sendSeq)
	c.sendSeq++
	if seal {
		// {plaintext | filler (EC = 0 for AES) | header}, RRC 0.
		plain := make([]byte, 0, len(msg)+16)
		plain = append(append(plain, msg...), hdr...)
		_, ct, err := et.EncryptMessage(c.key.KeyValue, plain, keyusage.GSSAPI_ACCEPTOR_SEAL)
		if err != nil {
			return nil, err
		}
		return append(hdr, ct...), nil
	}
	data := make([]byte, 0, len(msg)+16)
	data = append(append(data, msg...), hdr...) // EC and RRC are 0 here
	sum, err := et.GetChecksumHash(c.key.KeyValue, data, keyusage.GSSAPI_ACCEPTOR_SEAL)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(hdr[4:], uint16(len(sum)))
	out := make([]byte, 0, 16+len(msg)+len(sum))
	return append(append(append(out, hdr...), msg...), sum...), nil
}

// unwrap checks a wrap token from the initiator and returns its message
// and whether it was sealed. Tokens must come in sequence, as the JDK's
// SASL layer requires.
func (c *gssContext) unwrap(tok []byte) ([]byte, bool, error) {
	if len(tok) < 16 || tok[0] != 0x05 || tok[1] != 0x04 || tok[3] != 0xff {
		return nil, false, errors.New("defective wrap token (bad header)")
	}
	flags := tok[2]
	if flags&wrapSentByAcceptor != 0 {
		return nil, false, errors.New("wrap token claims to come from the acceptor (reflected)")
	}
	if c.accSubkey != (flags&wrapAcceptorSubkey != 0) {
		return nil, false, fmt.Errorf("wrap token AcceptorSubkey flag is %v, want %v", flags&wrapAcceptorSubkey != 0, c.accSubkey)
	}
	ec := int(binary.BigEndian.Uint16(tok[4:6]))
	rrc := int(binary.BigEndian.Uint16(tok[6:8]))
	seq := binary.BigEndian.Uint64(tok[8:16])
	body := tok[16:]
	if len(body) > 0 && rrc%len(body) != 0 {
		r := rrc % len(body)
		body = append(append([]byte{}, body[r:]...), body[:r]...)
	}
	et, err := crypto.GetEtype(c.key.KeyType)
	if err != nil {
		return nil, false, err
	}
	var msg []byte
	sealed := flags&wrapSealed != 0
	if sealed {
		plain, err := et.DecryptMessage(c.key.KeyValue, body, keyusage.GSSAPI_INITIATOR_SEAL)
		if err != nil {
			return nil, true, fmt.Errorf("wrap token: %w", err)
		}
		if len(plain) < ec+16 {
			return nil, true, errors.New("defective sealed wrap token (too short)")
		}
		inner := plain[len(plain)-16:]
		if !bytes.Equal(inner[:6], tok[:6]) || !bytes.Equal(inner[8:], tok[8:16]) {
			return nil, true, errors.New("sealed wrap token: the encrypted header does not match")
		}
		msg = plain[:len(plain)-16-ec]
	} else {
		if ec > len(body) {
			return nil, false, errors.New("defective wrap token (checksum length)")
		}
		msg = body[:len(body)-ec]
		hdr := append([]byte{}, tok[:16]...)
		hdr[4], hdr[5], hdr[6], hdr[7] = 0, 0, 0, 0
		data := append(append(make([]byte, 0, len(msg)+16), msg...), hdr...)
		if !et.VerifyChecksum(c.key.KeyValue, data, body[len(body)-ec:], keyusage.GSSAPI_INITIATOR_SEAL) {
			return nil, false, errors.New("wrap token checksum does not verify")
		}
	}
	if seq != c.recvSeq {
		return nil, sealed, fmt.Errorf("wrap token out of sequence: got %d, want %d", seq, c.recvSeq)
	}
	c.recvSeq++
	return msg, sealed, nil
}

// replayCache remembers authenticators for the clock-skew window, as a
// Kerberos acceptor must (RFC 4120 3.2.3).
type replayCache struct {
	mu      sync.Mutex
	entries map[string]time.Time // key -> when it can be forgotten
}

func (r *replayCache) seen(client, service string, ctime time.Time, cusec int, skew time.Duration) bool {
	now := time.Now()
	key := fmt.Sprintf("%s|%s|%d|%d", client, service, ctime.Unix(), cusec)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[string]time.Time{}
	}
	for k, until := range r.entries {
		if now.After(until) {
			delete(r.entries, k)
		}
	}
	if _, ok := r.entries[key]; ok {
		return true
	}
	r.entries[key] = now.Add(2 * skew)
	return false
}

// shortName is Hadoop's default auth_to_local mapping of a principal in
// the default realm: the first component (alice@R -> alice,
// hive/host@R -> hive).
func shortName(principal string) string {
	if i := strings.IndexAny(principal, "/@"); i >= 0 {
		return principal[:i]
	}
	return principal
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// newKrbAcceptor checks a Kerberos configuration and loads its keytab.
func newKrbAcceptor(cfg *Config) (*krbAcceptor, error) {
	p := cfg.KerberosPrincipal
	name, realm, ok := strings.Cut(p, "@")
	if !ok || realm == "" || !strings.Contains(name, "/") {
		return nil, fmt.Errorf("hs2sim: kerberos needs a service principal like hive/host@REALM, got %q", p)
	}
	if _, err := qopBit(cfg.SASLQOP); err != nil {
		return nil, err
	}
	if cfg.SASLQOP == "" {
		cfg.SASLQOP = "auth"
	}
	kt, err := keytab.Load(cfg.KerberosKeytab)
	if err != nil {
		return nil, fmt.Errorf("hs2sim: kerberos keytab %q: %w", cfg.KerberosKeytab, err)
	}
	found := false
	for _, e := range kt.Entries {
		found = found || strings.EqualFold(e.Principal.String(), p)
	}
	if !found {
		return nil, fmt.Errorf("hs2sim: keytab %s has no key for %s", cfg.KerberosKeytab, p)
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = 5 * time.Minute
		if path := os.Getenv("KRB5_CONFIG"); path != "" {
			if c, err := config.Load(path); err == nil && c.LibDefaults.Clockskew > 0 {
				cfg.ClockSkew = c.LibDefaults.Clockskew
			}
		}
	}
	if cfg.PublishedPrincipal == "" {
		svc, _, _ := strings.Cut(name, "/")
		cfg.PublishedPrincipal = svc + "/_HOST@" + realm
	}
	return &krbAcceptor{kt: kt, skew: cfg.ClockSkew, subkey: !cfg.NoAcceptorSubkey, replays: &replayCache{}}, nil
}

// httpPrincipals are the principals HS2's HTTP servlet accepts tickets
// for: HTTP/<host> (the SPNEGO principal) and the service principal.
func httpPrincipals(service string) []string {
	name, realm, _ := strings.Cut(service, "@")
	_, host, _ := strings.Cut(name, "/")
	return []string{"HTTP/" + host + "@" + realm, service}
}
