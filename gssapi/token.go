package gssapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// OIDKRB5 is the Kerberos V5 GSS-API mechanism, 1.2.840.113554.1.2.2.
var OIDKRB5 = asn1.ObjectIdentifier{1, 2, 840, 113554, 1, 2, 2}

// Inner token ids of context tokens (RFC 1964 section 1.1).
var (
	tokAPReq    = [2]byte{0x01, 0x00}
	tokAPRep    = [2]byte{0x02, 0x00}
	tokKRBError = [2]byte{0x03, 0x00}
)

// GSS-API context flags carried in the authenticator checksum (RFC 4121
// section 4.1.1.1).
const (
	ContextFlagMutual   uint32 = 2
	ContextFlagReplay   uint32 = 4
	ContextFlagSequence uint32 = 8
	ContextFlagConf     uint32 = 16
	ContextFlagInteg    uint32 = 32
)

// DefaultFlags is what the JDK's and MIT's initiators request for SASL:
// mutual authentication, replay and sequence detection, integrity and
// confidentiality available.
const DefaultFlags = ContextFlagMutual | ContextFlagReplay | ContextFlagSequence | ContextFlagConf | ContextFlagInteg

// ErrKRBError is a KRB-ERROR sent by the peer in place of a context token.
var ErrKRBError = errors.New("gssapi: peer sent a KRB-ERROR")

// frame wraps an inner context token in the GSS-API framing:
// [APPLICATION 0] { thisMech OID, token id, message }.
func frame(id [2]byte, msg []byte) []byte {
	oid, _ := asn1.Marshal(OIDKRB5)
	b := make([]byte, 0, len(oid)+2+len(msg))
	b = append(b, oid...)
	b = append(b, id[:]...)
	b = append(b, msg...)
	return asn1tools.AddASNAppTag(b, 0)
}

// unframe returns the token id and message of a framed context token.
func unframe(tok []byte) ([2]byte, []byte, error) {
	var id [2]byte
	var oid asn1.ObjectIdentifier
	rest, err := asn1.UnmarshalWithParams(tok, &oid, "application,explicit,tag:0")
	if err != nil {
		return id, nil, fmt.Errorf("%w: not a GSS-API context token: %v", ErrBadToken, err)
	}
	if !oid.Equal(OIDKRB5) {
		return id, nil, fmt.Errorf("%w: mechanism %s, want Kerberos V5 %s", ErrBadToken, oid, OIDKRB5)
	}
	if len(rest) < 2 {
		return id, nil, fmt.Errorf("%w: context token without a token id", ErrBadToken)
	}
	copy(id[:], rest[:2])
	return id, rest[2:], nil
}

// authChecksum is the GSS-API authenticator checksum (type 0x8003): no
// channel bindings, the requested context flags.
func authChecksum(ctxFlags uint32) types.Checksum {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:4], 16)
	binary.LittleEndian.PutUint32(b[20:24], ctxFlags)
	return types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: b}
}

// checksumFlags reads the context flags from an authenticator checksum.
func checksumFlags(c types.Checksum) (uint32, error) {
	if c.CksumType != chksumtype.GSSAPI || len(c.Checksum) < 24 {
		return 0, fmt.Errorf("%w: authenticator checksum is not a GSS-API checksum (type %d, %d bytes)", ErrBadToken, c.CksumType, len(c.Checksum))
	}
	return binary.LittleEndian.Uint32(c.Checksum[20:24]), nil
}

// apRep and encAPRepPart mirror gokrb5's types for marshalling, which it
// lacks. A zero subkey or sequence number is omitted (both OPTIONAL).
type apRep struct {
	PVNO    int                 `asn1:"explicit,tag:0"`
	MsgType int                 `asn1:"explicit,tag:1"`
	EncPart types.EncryptedData `asn1:"explicit,tag:2"`
}

type encAPRepPart struct {
	CTime          time.Time           `asn1:"generalized,explicit,tag:0"`
	Cusec          int                 `asn1:"explicit,tag:1"`
	Subkey         types.EncryptionKey `asn1:"optional,explicit,tag:2"`
	SequenceNumber int64               `asn1:"optional,explicit,tag:3"`
}

// BuildAPRep is the acceptor's mutual-authentication token: an AP-REP,
// GSS-API framed, whose encrypted part (key usage 12, under the ticket's
// session key) echoes the authenticator's ctime and cusec and carries the
// acceptor's subkey (nil for none) and first sequence number.
func BuildAPRep(sessionKey types.EncryptionKey, auth types.Authenticator, subkey *types.EncryptionKey, seq uint64) ([]byte, error) {
	part := encAPRepPart{CTime: auth.CTime.UTC(), Cusec: auth.Cusec, SequenceNumber: int64(seq & 0xffffffff)}
	if subkey != nil {
		part.Subkey = *subkey
	}
	pb, err := asn1.Marshal(part)
	if err != nil {
		return nil, fmt.Errorf("gssapi: marshal EncAPRepPart: %w", err)
	}
	pb = asn1tools.AddASNAppTag(pb, asnAppTag.EncAPRepPart)
	ed, err := crypto.GetEncryptedData(pb, sessionKey, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		return nil, fmt.Errorf("gssapi: encrypt EncAPRepPart: %w", err)
	}
	rb, err := asn1.Marshal(apRep{PVNO: iana.PVNO, MsgType: msgtype.KRB_AP_REP, EncPart: ed})
	if err != nil {
		return nil, fmt.Errorf("gssapi: marshal AP-REP: %w", err)
	}
	return frame(tokAPRep, asn1tools.AddASNAppTag(rb, asnAppTag.APREP)), nil
}

// APRepInfo is what a verified AP-REP tells the initiator.
type APRepInfo struct {
	Subkey *types.EncryptionKey // the acceptor's subkey; nil when absent
	Seq    uint64               // the acceptor's first sequence number
}

// VerifyAPRep checks the acceptor's token against the authenticator we
// sent: it decrypts the encrypted part with the ticket's session key (key
// usage 12) and requires the same ctime and cusec. A KRB-ERROR token
// becomes an error wrapping ErrKRBError.
func VerifyAPRep(token []byte, sessionKey types.EncryptionKey, sent types.Authenticator) (APRepInfo, error) {
	id, msg, err := unframe(token)
	if err != nil {
		return APRepInfo{}, err
	}
	switch id {
	case tokAPRep:
	case tokKRBError:
		var ke messages.KRBError
		if err := ke.Unmarshal(msg); err != nil {
			return APRepInfo{}, fmt.Errorf("%w (unreadable: %v)", ErrKRBError, err)
		}
		return APRepInfo{}, fmt.Errorf("%w: %s", ErrKRBError, ke.Error())
	default:
		return APRepInfo{}, fmt.Errorf("%w: token id %x, want an AP-REP (0200)", ErrBadToken, id)
	}
	var rep messages.APRep
	if err := rep.Unmarshal(msg); err != nil {
		return APRepInfo{}, fmt.Errorf("%w: AP-REP: %v", ErrBadToken, err)
	}
	pb, err := crypto.DecryptEncPart(rep.EncPart, sessionKey, keyusage.AP_REP_ENCPART)
	if err != nil {
		return APRepInfo{}, fmt.Errorf("%w: AP-REP does not decrypt with the session key (not the server we asked for?): %v", ErrBadToken, err)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(pb); err != nil {
		return APRepInfo{}, fmt.Errorf("%w: EncAPRepPart: %v", ErrBadToken, err)
	}
	if !part.CTime.Equal(sent.CTime.Truncate(time.Second)) || part.Cusec != sent.Cusec {
		return APRepInfo{}, fmt.Errorf("%w: AP-REP time %v/%dus does not echo the authenticator's %v/%dus",
			ErrBadToken, part.CTime, part.Cusec, sent.CTime, sent.Cusec)
	}
	info := APRepInfo{Seq: uint64(part.SequenceNumber) & 0xffffffff}
	if part.Subkey.KeyType != 0 && len(part.Subkey.KeyValue) > 0 {
		k := part.Subkey
		info.Subkey = &k
	}
	return info, nil
}

// Initiator is the client's half-open context: its AP-REQ is sent, the
// acceptor's answer is awaited.
type Initiator struct {
	sessionKey types.EncryptionKey
	auth       types.Authenticator
	flags      uint32
}

// NewInitiator builds the initial context token for a service ticket: an
// AP-REQ whose authenticator carries the GSS-API checksum with ctxFlags, a
// fresh subkey of the session key's type and a random sequence number;
// mutual-required is set in the AP options when ctxFlags asks for mutual
// authentication.
func NewInitiator(cname types.PrincipalName, realm string, tkt messages.Ticket, sessionKey types.EncryptionKey, ctxFlags uint32) (*Initiator, []byte, error) {
	et, err := checkEtype(sessionKey)
	if err != nil {
		return nil, nil, err
	}
	auth, err := types.NewAuthenticator(realm, cname)
	if err != nil {
		return nil, nil, fmt.Errorf("gssapi: authenticator: %w", err)
	}
	if err := auth.GenerateSeqNumberAndSubKey(sessionKey.KeyType, keyByteSize(et)); err != nil {
		return nil, nil, fmt.Errorf("gssapi: subkey: %w", err)
	}
	auth.Cksum = authChecksum(ctxFlags)
	req, err := messages.NewAPReq(tkt, sessionKey, auth)
	if err != nil {
		return nil, nil, fmt.Errorf("gssapi: AP-REQ: %w", err)
	}
	if ctxFlags&ContextFlagMutual != 0 {
		types.SetFlag(&req.APOptions, flags.APOptionMutualRequired)
	}
	b, err := req.Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("gssapi: marshal AP-REQ: %w", err)
	}
	return &Initiator{sessionKey: sessionKey, auth: auth, flags: ctxFlags}, frame(tokAPReq, b), nil
}

// Authenticator is the authenticator sent in the AP-REQ.
func (i *Initiator) Authenticator() types.Authenticator { return i.auth }

// Complete verifies the acceptor's AP-REP and returns the established
// context: per-message tokens use the acceptor's subkey when it sent one
// (with the AcceptorSubkey flag), else our subkey.
func (i *Initiator) Complete(apRep []byte) (*Context, error) {
	info, err := VerifyAPRep(apRep, i.sessionKey, i.auth)
	if err != nil {
		return nil, err
	}
	if info.Subkey != nil {
		return NewContext(true, *info.Subkey, true, uint64(i.auth.SeqNumber), info.Seq)
	}
	return NewContext(true, i.auth.SubKey, false, uint64(i.auth.SeqNumber), info.Seq)
}

// CompleteWithoutAPRep establishes the context when the acceptor sent no
// AP-REP (mutual authentication not performed): both directions start at
// our sequence number, as MIT's acceptor does.
func (i *Initiator) CompleteWithoutAPRep() (*Context, error) {
	if i.flags&ContextFlagMutual != 0 {
		return nil, fmt.Errorf("%w: mutual authentication requested but the server sent no AP-REP", ErrBadToken)
	}
	seq := uint64(i.auth.SeqNumber)
	return NewContext(true, i.auth.SubKey, false, seq, seq)
}
