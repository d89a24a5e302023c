package gssapi

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/types"
)

// AcceptOptions tune the acceptor; the zero value behaves like the JDK's.
type AcceptOptions struct {
	// NoSubkey makes the AP-REP carry no acceptor subkey (MIT's acceptor
	// with some peers): tokens then use the initiator's subkey, or the
	// session key, without the AcceptorSubkey flag.
	NoSubkey bool
}

// Accepted is an established acceptor context.
type Accepted struct {
	Context *Context
	// Creds are the initiator's verified credentials (gokrb5's).
	Creds *credentials.Credentials
	// Client is the initiator's principal, name@REALM.
	Client string
	// Flags are the context flags the initiator requested.
	Flags uint32
	// APRep is the token to send back when the initiator asked for mutual
	// authentication; nil otherwise.
	APRep []byte
	// Ticket and Authenticator are the decrypted AP-REQ parts.
	Ticket        messages.Ticket
	Authenticator types.Authenticator
}

// Accept verifies an initial context token (a framed AP-REQ) with the
// service's keytab, as set in settings (use service.DecodePAC(false) with
// MIT), and establishes the acceptor's context, building the AP-REP with a
// fresh subkey and sequence number when mutual authentication is asked.
func Accept(token []byte, settings *service.Settings, opts AcceptOptions) (*Accepted, error) {
	id, msg, err := unframe(token)
	if err != nil {
		return nil, err
	}
	if id != tokAPReq {
		return nil, fmt.Errorf("%w: token id %x, want an AP-REQ (0100)", ErrBadToken, id)
	}
	var req messages.APReq
	if err := req.Unmarshal(msg); err != nil {
		return nil, fmt.Errorf("%w: AP-REQ: %v", ErrBadToken, err)
	}
	ok, creds, err := service.VerifyAPREQ(&req, settings)
	if err != nil {
		return nil, fmt.Errorf("gssapi: AP-REQ not accepted: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("gssapi: AP-REQ not accepted")
	}
	auth := req.Authenticator
	ctxFlags, err := checksumFlags(auth.Cksum)
	if err != nil {
		return nil, err
	}
	sessionKey := req.Ticket.DecryptedEncPart.Key
	a := &Accepted{Creds: creds, Client: creds.CName().PrincipalNameString() + "@" + creds.Realm(),
		Flags: ctxFlags, Ticket: req.Ticket, Authenticator: auth}
	// The initiator's subkey, else the session key, unless we send ours.
	key := sessionKey
	if auth.SubKey.KeyType != 0 && len(auth.SubKey.KeyValue) > 0 {
		key = auth.SubKey
	}
	initSeq := uint64(auth.SeqNumber) & 0xffffffff
	mutual := ctxFlags&ContextFlagMutual != 0 || types.IsFlagSet(&req.APOptions, 2)
	if !mutual {
		a.Context, err = NewContext(false, key, false, initSeq, initSeq)
		return a, err
	}
	seq, err := randomSeq()
	if err != nil {
		return nil, err
	}
	var subkey *types.EncryptionKey
	if !opts.NoSubkey {
		k, err := randomKey(key)
		if err != nil {
			return nil, err
		}
		subkey, key = &k, k
	}
	if a.APRep, err = BuildAPRep(sessionKey, auth, subkey, seq); err != nil {
		return nil, err
	}
	a.Context, err = NewContext(false, key, subkey != nil, seq, initSeq)
	return a, err
}

func randomSeq() (uint64, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return uint64(binary.BigEndian.Uint32(b[:]) & 0x3fffffff), nil
}

// randomKey is a new random key of like's encryption type.
func randomKey(like types.EncryptionKey) (types.EncryptionKey, error) {
	et, err := checkEtype(like)
	if err != nil {
		return types.EncryptionKey{}, err
	}
	b := make([]byte, keyByteSize(et))
	if _, err := rand.Read(b); err != nil {
		return types.EncryptionKey{}, err
	}
	return types.EncryptionKey{KeyType: like.KeyType, KeyValue: b}, nil
}
