package gssapi

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/etype"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Wrap token flags (RFC 4121 section 4.2.2).
const (
	FlagSentByAcceptor byte = 0x01
	FlagSealed         byte = 0x02
	FlagAcceptorSubkey byte = 0x04
)

// Key usages of per-message tokens (RFC 4121 section 2): wrap tokens use
// the SEAL usages whether sealed or not; the SIGN ones are for MIC tokens.
const (
	UsageAcceptorSeal  uint32 = keyusage.GSSAPI_ACCEPTOR_SEAL  // 22
	UsageAcceptorSign  uint32 = keyusage.GSSAPI_ACCEPTOR_SIGN  // 23
	UsageInitiatorSeal uint32 = keyusage.GSSAPI_INITIATOR_SEAL // 24
	UsageInitiatorSign uint32 = keyusage.GSSAPI_INITIATOR_SIGN // 25
)

const wrapHeaderLen = 16

var (
	// ErrUnsupportedEtype is a session key whose encryption type does not
	// use RFC 4121 tokens (des3, rc4: RFC 1964) or is unknown to gokrb5.
	ErrUnsupportedEtype = errors.New("gssapi: encryption type not supported for RFC 4121 tokens")
	// ErrBadToken is a per-message token that is malformed or fails its
	// integrity check.
	ErrBadToken = errors.New("gssapi: defective token")
	// ErrSequence is a token whose sequence number is not the next one
	// expected (a replay, a gap or a reordering).
	ErrSequence = errors.New("gssapi: token out of sequence")
)

// checkEtype returns the etype of key if it uses RFC 4121 tokens.
func checkEtype(key types.EncryptionKey) (etype.EType, error) {
	switch key.KeyType {
	case etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96,
		etypeID.AES128_CTS_HMAC_SHA256_128, etypeID.AES256_CTS_HMAC_SHA384_192:
	default:
		return nil, fmt.Errorf("%w: etype %d (use aes256-cts-hmac-sha1-96 or newer)", ErrUnsupportedEtype, key.KeyType)
	}
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedEtype, err)
	}
	if len(key.KeyValue) != keyByteSize(et) {
		return nil, fmt.Errorf("gssapi: key of %d bytes for etype %d, want %d", len(key.KeyValue), key.KeyType, keyByteSize(et))
	}
	return et, nil
}

// Context is an established security context: the key and sequence
// numbers of per-message tokens in both directions. Wrap and Unwrap are
// each safe for concurrent use and may run at the same time as each other.
type Context struct {
	initiator      bool
	key            types.EncryptionKey
	et             etype.EType
	acceptorSubkey bool

	sendMu  sync.Mutex
	sendSeq uint64
	recvMu  sync.Mutex
	recvSeq uint64
}

// NewContext makes a context from its parts: which side we are, the key of
// per-message tokens (the acceptor's subkey when acceptorSubkey, else the
// initiator's subkey or the ticket's session key), the first sequence
// number we send and the first one we expect.
func NewContext(initiator bool, key types.EncryptionKey, acceptorSubkey bool, sendSeq, recvSeq uint64) (*Context, error) {
	et, err := checkEtype(key)
	if err != nil {
		return nil, err
	}
	return &Context{initiator: initiator, key: key, et: et, acceptorSubkey: acceptorSubkey, sendSeq: sendSeq, recvSeq: recvSeq}, nil
}

// Initiator reports whether this is the initiator's (client's) side.
func (c *Context) Initiator() bool { return c.initiator }

// AcceptorSubkey reports whether tokens use the acceptor's subkey.
func (c *Context) AcceptorSubkey() bool { return c.acceptorSubkey }

// Key is the key of per-message tokens.
func (c *Context) Key() types.EncryptionKey { return c.key }

// usage is the key usage of wrap tokens from one side: SEAL for sealed
// and integrity-only tokens alike, as MIT's k5sealv3.c and the JDK's
// WrapToken_v2 do (SIGN is for MIC tokens).
func (c *Context) usage(sender bool) uint32 {
	if sender == c.initiator {
		return UsageInitiatorSeal
	}
	return UsageAcceptorSeal
}

// Wrap protects payload in one RFC 4121 wrap token with the next send
// sequence number: sealed (encrypted and integrity protected) when seal,
// else integrity protected only.
func (c *Context) Wrap(payload []byte, seal bool) ([]byte, error) {
	flags := byte(0)
	if !c.initiator {
		flags |= FlagSentByAcceptor
	}
	if c.acceptorSubkey {
		flags |= FlagAcceptorSubkey
	}
	usage := c.usage(true)
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	var tok []byte
	var err error
	if seal {
		tok, err = sealToken(c.et, c.key, usage, flags|FlagSealed, c.sendSeq, payload)
	} else {
		tok, err = signToken(c.et, c.key, usage, flags, c.sendSeq, payload)
	}
	if err != nil {
		return nil, err
	}
	c.sendSeq++
	return tok, nil
}

// Unwrap checks one wrap token from the peer and returns its payload and
// whether it was sealed. The token must carry the next expected sequence
// number, the peer's direction flag and this context's subkey flag.
func (c *Context) Unwrap(token []byte) (payload []byte, sealed bool, err error) {
	h, body, err := parseWrapHeader(token)
	if err != nil {
		return nil, false, err
	}
	if fromAcceptor := h.flags&FlagSentByAcceptor != 0; fromAcceptor != c.initiator {
		return nil, false, fmt.Errorf("%w: SentByAcceptor flag is %v, want %v", ErrBadToken, fromAcceptor, c.initiator)
	}
	if sub := h.flags&FlagAcceptorSubkey != 0; sub != c.acceptorSubkey {
		return nil, false, fmt.Errorf("%w: AcceptorSubkey flag is %v, want %v", ErrBadToken, sub, c.acceptorSubkey)
	}
	usage := c.usage(false)
	sealed = h.flags&FlagSealed != 0
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if h.seq != c.recvSeq {
		return nil, false, fmt.Errorf("%w: sequence number %d, expected %d", ErrSequence, h.seq, c.recvSeq)
	}
	if sealed {
		payload, err = openSealed(c.et, c.key, usage, h, token[:wrapHeaderLen], body)
	} else {
		payload, err = openSigned(c.et, c.key, usage, h, body)
	}
	if err != nil {
		return nil, false, err
	}
	c.recvSeq++
	return payload, sealed, nil
}

type wrapHeader struct {
	flags byte
	ec    uint16
	rrc   uint16
	seq   uint64
}

func (h wrapHeader) marshal(ec, rrc uint16) []byte {
	b := make([]byte, wrapHeaderLen)
	b[0], b[1], b[2], b[3] = 0x05, 0x04, h.flags, 0xff
	binary.BigEndian.PutUint16(b[4:6], ec)
	binary.BigEndian.PutUint16(b[6:8], rrc)
	binary.BigEndian.PutUint64(b[8:16], h.seq)
	return b
}

// parseWrapHeader reads the header and undoes the RRC rotation of the rest.
func parseWrapHeader(token []byte) (wrapHeader, []byte, error) {
	if len(token) < wrapHeaderLen {
		return wrapHeader{}, nil, fmt.Errorf("%w: %d bytes, shorter than a wrap token header", ErrBadToken, len(token))
	}
	if token[0] != 0x05 || token[1] != 0x04 {
		return wrapHeader{}, nil, fmt.Errorf("%w: token id %#02x%02x, want 0504 (wrap)", ErrBadToken, token[0], token[1])
	}
	if token[3] != 0xff {
		return wrapHeader{}, nil, fmt.Errorf("%w: filler byte %#02x", ErrBadToken, token[3])
	}
	h := wrapHeader{
		flags: token[2],
		ec:    binary.BigEndian.Uint16(token[4:6]),
		rrc:   binary.BigEndian.Uint16(token[6:8]),
		seq:   binary.BigEndian.Uint64(token[8:16]),
	}
	if h.flags&^(FlagSentByAcceptor|FlagSealed|FlagAcceptorSubkey) != 0 {
		return wrapHeader{}, nil, fmt.Errorf("%w: unknown flags %#02x", ErrBadToken, h.flags)
	}
	body := token[wrapHeaderLen:]
	if n := len(body); n > 0 && h.rrc > 0 {
		// The sender rotated the body right by RRC bytes; rotate it back.
		r := int(h.rrc) % n
		rot := make([]byte, 0, n)
		rot = append(rot, body[r:]...)
		body = append(rot, body[:r]...)
	}
	return h, body, nil
}

// signToken is header | payload | checksum, the checksum over payload and
// the header with EC and RRC zero; the sent header's EC is the checksum
// length (RFC 4121 section 4.2.4).
func signToken(et etype.EType, key types.EncryptionKey, usage uint32, flags byte, seq uint64, payload []byte) ([]byte, error) {
	h := wrapHeader{flags: flags, seq: seq}
	data := make([]byte, 0, len(payload)+wrapHeaderLen)
	data = append(data, payload...)
	data = append(data, h.marshal(0, 0)...)
	sum, err := et.GetChecksumHash(key.KeyValue, data, usage)
	if err != nil {
		return nil, fmt.Errorf("gssapi: checksum: %w", err)
	}
	tok := make([]byte, 0, wrapHeaderLen+len(payload)+len(sum))
	tok = append(tok, h.marshal(uint16(len(sum)), 0)...)
	tok = append(tok, payload...)
	return append(tok, sum...), nil
}

func openSigned(et etype.EType, key types.EncryptionKey, usage uint32, h wrapHeader, body []byte) ([]byte, error) {
	n := int(h.ec)
	if n != et.GetHMACBitLength()/8 || len(body) < n {
		return nil, fmt.Errorf("%w: checksum length %d in a %d-byte body", ErrBadToken, n, len(body))
	}
	payload, sum := body[:len(body)-n], body[len(body)-n:]
	data := make([]byte, 0, len(payload)+wrapHeaderLen)
	data = append(data, payload...)
	data = append(data, wrapHeader{flags: h.flags, seq: h.seq}.marshal(0, 0)...)
	want, err := et.GetChecksumHash(key.KeyValue, data, usage)
	if err != nil {
		return nil, fmt.Errorf("gssapi: checksum: %w", err)
	}
	if !hmac.Equal(sum, want) {
		return nil, fmt.Errorf("%w: checksum mismatch (wrong key or altered data)", ErrBadToken)
	}
	return payload, nil
}

// sealToken is header | E(payload | filler | header): the encrypted copy
// of the header has RRC zero (RFC 4121 section 4.2.4). AES needs no
// filler, so EC is 0, as MIT and the JDK send it.
func sealToken(et etype.EType, key types.EncryptionKey, usage uint32, flags byte, seq uint64, payload []byte) ([]byte, error) {
	h := wrapHeader{flags: flags, seq: seq}
	hdr := h.marshal(0, 0)
	pt := make([]byte, 0, len(payload)+wrapHeaderLen)
	pt = append(pt, payload...)
	pt = append(pt, hdr...)
	_, ct, err := et.EncryptMessage(key.KeyValue, pt, usage)
	if err != nil {
		return nil, fmt.Errorf("gssapi: encrypt: %w", err)
	}
	tok := make([]byte, 0, wrapHeaderLen+len(ct))
	tok = append(tok, hdr...)
	return append(tok, ct...), nil
}

func openSealed(et etype.EType, key types.EncryptionKey, usage uint32, h wrapHeader, outer, body []byte) ([]byte, error) {
	if len(body) < et.GetConfounderByteSize()+et.GetHMACBitLength()/8 {
		return nil, fmt.Errorf("%w: sealed body of %d bytes", ErrBadToken, len(body))
	}
	pt, err := et.DecryptMessage(key.KeyValue, body, usage)
	if err != nil {
		return nil, fmt.Errorf("%w: decrypt: %v (wrong key or altered data)", ErrBadToken, err)
	}
	tail := int(h.ec) + wrapHeaderLen
	if len(pt) < tail {
		return nil, fmt.Errorf("%w: sealed plaintext of %d bytes, EC %d", ErrBadToken, len(pt), h.ec)
	}
	inner := pt[len(pt)-wrapHeaderLen:]
	// The encrypted header equals the outer one except for RRC.
	want := append([]byte(nil), outer...)
	want[6], want[7] = 0, 0
	if !hmac.Equal(inner, want) {
		return nil, fmt.Errorf("%w: encrypted header does not match the token header", ErrBadToken)
	}
	return pt[:len(pt)-tail], nil
}

// keyByteSize is the etype's key length. gokrb5 v8.4.4 reports 24 for
// aes256-cts-hmac-sha384-192, whose keys are 32 bytes (RFC 8009).
func keyByteSize(et etype.EType) int {
	if et.GetETypeID() == etypeID.AES256_CTS_HMAC_SHA384_192 {
		return 32
	}
	return et.GetKeyByteSize()
}
