package gssapi

import (
	"bytes"
	"errors"
	"testing"
	"time"

	gokrbgss "github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/types"
)

const realm = "EXAMPLE.COM"

var etypes = []struct {
	name string
	id   int32
}{
	{"aes128-sha1", etypeID.AES128_CTS_HMAC_SHA1_96},
	{"aes256-sha1", etypeID.AES256_CTS_HMAC_SHA1_96},
	{"aes128-sha256", etypeID.AES128_CTS_HMAC_SHA256_128},
	{"aes256-sha384", etypeID.AES256_CTS_HMAC_SHA384_192},
}

func mustKey(t *testing.T, et int32) types.EncryptionKey {
	t.Helper()
	k, err := randomKey(types.EncryptionKey{KeyType: et, KeyValue: make([]byte, keySize(et))})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keySize(et int32) int {
	if et == etypeID.AES128_CTS_HMAC_SHA1_96 || et == etypeID.AES128_CTS_HMAC_SHA256_128 {
		return 16
	}
	return 32
}

// pair is an initiator and an acceptor context sharing key and sequence
// numbers, as after an AP-REQ/AP-REP exchange.
func pair(t *testing.T, et int32, acceptorSubkey bool) (ini, acc *Context) {
	t.Helper()
	k := mustKey(t, et)
	ini, err := NewContext(true, k, acceptorSubkey, 1000, 7)
	if err != nil {
		t.Fatal(err)
	}
	acc, err = NewContext(false, k, acceptorSubkey, 7, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return ini, acc
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	payloads := [][]byte{{}, []byte("x"), bytes.Repeat([]byte("thrift"), 5000)}
	for _, et := range etypes {
		for _, sub := range []bool{false, true} {
			for _, seal := range []bool{false, true} {
				ini, acc := pair(t, et.id, sub)
				for i, p := range payloads {
					tok, err := ini.Wrap(p, seal)
					if err != nil {
						t.Fatal(err)
					}
					if seal && len(p) > 16 && bytes.Contains(tok, p[:16]) {
						t.Fatalf("%s: sealed token carries plaintext", et.name)
					}
					if tok[2]&FlagSentByAcceptor != 0 || (tok[2]&FlagAcceptorSubkey != 0) != sub || (tok[2]&FlagSealed != 0) != seal {
						t.Fatalf("%s: flags %#x", et.name, tok[2])
					}
					got, sealed, err := acc.Unwrap(tok)
					if err != nil {
						t.Fatalf("%s sub=%v seal=%v #%d: %v", et.name, sub, seal, i, err)
					}
					if !bytes.Equal(got, p) || sealed != seal {
						t.Fatalf("%s: payload mismatch", et.name)
					}
					// And back from the acceptor.
					tok, err = acc.Wrap(p, seal)
					if err != nil {
						t.Fatal(err)
					}
					if tok[2]&FlagSentByAcceptor == 0 {
						t.Fatal("acceptor token without SentByAcceptor")
					}
					if got, _, err = ini.Unwrap(tok); err != nil || !bytes.Equal(got, p) {
						t.Fatalf("%s: reverse: %v", et.name, err)
					}
				}
			}
		}
	}
}

func TestSequenceNumbers(t *testing.T) {
	ini, acc := pair(t, etypeID.AES256_CTS_HMAC_SHA1_96, true)
	t1, _ := ini.Wrap([]byte("one"), true)
	t2, _ := ini.Wrap([]byte("two"), true)
	if seq(t1) != 1000 || seq(t2) != 1001 {
		t.Fatalf("sequence numbers %d, %d; want 1000, 1001", seq(t1), seq(t2))
	}
	// Out of order: the second first.
	if _, _, err := acc.Unwrap(t2); !errors.Is(err, ErrSequence) {
		t.Fatalf("gap: got %v, want ErrSequence", err)
	}
	if _, _, err := acc.Unwrap(t1); err != nil {
		t.Fatal(err)
	}
	// A replay.
	if _, _, err := acc.Unwrap(t1); !errors.Is(err, ErrSequence) {
		t.Fatalf("replay: got %v, want ErrSequence", err)
	}
	if _, _, err := acc.Unwrap(t2); err != nil {
		t.Fatal(err)
	}
	r, _ := acc.Wrap([]byte("reply"), false)
	if seq(r) != 7 {
		t.Fatalf("acceptor's first sequence number %d, want 7", seq(r))
	}
}

func seq(tok []byte) uint64 {
	var s uint64
	for _, b := range tok[8:16] {
		s = s<<8 | uint64(b)
	}
	return s
}

func TestUnwrapRejects(t *testing.T) {
	for _, seal := range []bool{false, true} {
		ini, acc := pair(t, etypeID.AES256_CTS_HMAC_SHA1_96, true)
		tok, _ := ini.Wrap([]byte("payload data"), seal)
		cases := map[string]func([]byte) []byte{
			"flipped byte": func(b []byte) []byte { b[len(b)-20] ^= 1; return b },
			"truncated":    func(b []byte) []byte { return b[:len(b)-1] },
			"subkey flag":  func(b []byte) []byte { b[2] &^= FlagAcceptorSubkey; return b },
			"direction":    func(b []byte) []byte { b[2] |= FlagSentByAcceptor; return b },
			"token id":     func(b []byte) []byte { b[0] = 0x04; return b },
		}
		for name, mut := range cases {
			if _, _, err := acc.Unwrap(mut(bytes.Clone(tok))); err == nil {
				t.Errorf("seal=%v %s: accepted", seal, name)
			}
		}
		// The untouched token still unwraps: failures consume no sequence number.
		if _, _, err := acc.Unwrap(tok); err != nil {
			t.Fatalf("seal=%v: %v", seal, err)
		}
		// A token under another key.
		other, _ := pair(t, etypeID.AES256_CTS_HMAC_SHA1_96, true)
		other.sendSeq = 1001
		bad, _ := other.Wrap([]byte("x"), seal)
		if _, _, err := acc.Unwrap(bad); !errors.Is(err, ErrBadToken) {
			t.Fatalf("seal=%v wrong key: %v", seal, err)
		}
	}
}

// rotate is what a sender with RRC does (Windows SSPI sends RRC 28).
func rotate(tok []byte, rrc int) []byte {
	body := tok[16:]
	r := rrc % len(body)
	out := append([]byte(nil), tok[:16]...)
	out[6], out[7] = byte(rrc>>8), byte(rrc)
	out = append(out, body[len(body)-r:]...)
	return append(out, body[:len(body)-r]...)
}

func TestUnwrapRotated(t *testing.T) {
	for _, seal := range []bool{false, true} {
		ini, acc := pair(t, etypeID.AES128_CTS_HMAC_SHA1_96, false)
		tok, _ := ini.Wrap([]byte("rotated payload"), seal)
		got, _, err := acc.Unwrap(rotate(tok, 28))
		if err != nil || string(got) != "rotated payload" {
			t.Fatalf("seal=%v: %q, %v", seal, got, err)
		}
	}
}

// gokrb5's own integrity-only wrap token (sequence number 0, initiator,
// no subkey flag) must unwrap with ours: the checksum layout is shared.
func TestInteropGokrb5WrapToken(t *testing.T) {
	k := mustKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	wt, err := gokrbgss.NewInitiatorWrapToken([]byte("hello"), k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := NewContext(false, k, false, 0, 0)
	got, sealed, err := acc.Unwrap(b)
	if err != nil || string(got) != "hello" || sealed {
		t.Fatalf("%q %v %v", got, sealed, err)
	}
	ini, _ := NewContext(true, k, false, 0, 0)
	ours, _ := ini.Wrap([]byte("hello"), false)
	var theirs gokrbgss.WrapToken
	if err := theirs.Unmarshal(ours, false); err != nil {
		t.Fatal(err)
	}
	if ok, err := theirs.Verify(k, UsageInitiatorSeal); !ok || err != nil {
		t.Fatalf("gokrb5 rejects our token: %v", err)
	}
}

func TestUnsupportedEtype(t *testing.T) {
	for _, et := range []int32{etypeID.RC4_HMAC, etypeID.DES3_CBC_SHA1_KD} {
		if _, err := NewContext(true, types.EncryptionKey{KeyType: et, KeyValue: make([]byte, 24)}, false, 0, 0); !errors.Is(err, ErrUnsupportedEtype) {
			t.Fatalf("etype %d: %v", et, err)
		}
	}
}

// service is a keytab and a ticket for hive/host@REALM issued to cname,
// made without a KDC.
type svc struct {
	kt         *keytab.Keytab
	tkt        messages.Ticket
	sessionKey types.EncryptionKey
	cname      types.PrincipalName
	settings   *service.Settings
}

func newService(t *testing.T, et int32) svc {
	t.Helper()
	kt := keytab.New()
	if err := kt.AddEntry("hive/host.example.com", realm, "service-secret", time.Now(), 1, et); err != nil {
		t.Fatal(err)
	}
	cname := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "hiveqd/gw.example.com")
	sname := types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "hive/host.example.com")
	now := time.Now().UTC()
	tkt, key, err := messages.NewTicket(cname, realm, sname, realm, types.NewKrbFlags(), kt, et, 1, now, now, now.Add(time.Hour), now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return svc{kt: kt, tkt: tkt, sessionKey: key, cname: cname,
		settings: service.NewSettings(kt, service.DecodePAC(false), service.KeytabPrincipal("hive/host.example.com"))}
}

func TestAPExchange(t *testing.T) {
	for _, et := range etypes {
		if et.id == etypeID.AES256_CTS_HMAC_SHA384_192 {
			continue // gokrb5's NewTicket makes 24-byte session keys for it
		}
		for _, noSub := range []bool{false, true} {
			s := newService(t, et.id)
			ini, tok, err := NewInitiator(s.cname, realm, s.tkt, s.sessionKey, DefaultFlags)
			if err != nil {
				t.Fatal(err)
			}
			acc, err := Accept(tok, s.settings, AcceptOptions{NoSubkey: noSub})
			if err != nil {
				t.Fatalf("%s: accept: %v", et.name, err)
			}
			if acc.Client != "hiveqd/gw.example.com@"+realm || acc.Flags != DefaultFlags || acc.APRep == nil {
				t.Fatalf("%s: accepted %q flags %d aprep %v", et.name, acc.Client, acc.Flags, acc.APRep != nil)
			}
			ctx, err := ini.Complete(acc.APRep)
			if err != nil {
				t.Fatalf("%s: verify AP-REP: %v", et.name, err)
			}
			if ctx.AcceptorSubkey() == noSub {
				t.Fatalf("%s: acceptor subkey %v with NoSubkey %v", et.name, ctx.AcceptorSubkey(), noSub)
			}
			if !bytes.Equal(ctx.Key().KeyValue, acc.Context.Key().KeyValue) {
				t.Fatalf("%s: keys differ", et.name)
			}
			if !noSub && bytes.Equal(ctx.Key().KeyValue, ini.Authenticator().SubKey.KeyValue) {
				t.Fatalf("%s: acceptor subkey equals the initiator's", et.name)
			}
			for _, seal := range []bool{false, true} {
				w, _ := ctx.Wrap([]byte("q"), seal)
				if p, _, err := acc.Context.Unwrap(w); err != nil || string(p) != "q" {
					t.Fatalf("%s: %v", et.name, err)
				}
				w, _ = acc.Context.Wrap([]byte("r"), seal)
				if p, _, err := ctx.Unwrap(w); err != nil || string(p) != "r" {
					t.Fatalf("%s: %v", et.name, err)
				}
			}
		}
	}
}

func TestVerifyAPRepRejects(t *testing.T) {
	s := newService(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	ini, tok, _ := NewInitiator(s.cname, realm, s.tkt, s.sessionKey, DefaultFlags)
	if _, err := Accept(tok, s.settings, AcceptOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another session key: an AP-REP from a server that is not the one
	// the ticket names.
	wrongKey := mustKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	rep, _ := BuildAPRep(wrongKey, ini.Authenticator(), nil, 5)
	if _, err := ini.Complete(rep); !errors.Is(err, ErrBadToken) {
		t.Fatalf("wrong key: %v", err)
	}
	// The right key, another authenticator's time.
	other := ini.Authenticator()
	other.Cusec = (other.Cusec + 1) % 1000000
	rep, _ = BuildAPRep(s.sessionKey, other, nil, 5)
	if _, err := ini.Complete(rep); !errors.Is(err, ErrBadToken) {
		t.Fatalf("wrong cusec: %v", err)
	}
	// Not an AP-REP at all.
	if _, err := ini.Complete(tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("AP-REQ as AP-REP: %v", err)
	}
	// Without a subkey, sequence number 0 (omitted on the wire).
	rep, _ = BuildAPRep(s.sessionKey, ini.Authenticator(), nil, 0)
	info, err := VerifyAPRep(rep, s.sessionKey, ini.Authenticator())
	if err != nil || info.Subkey != nil || info.Seq != 0 {
		t.Fatalf("%+v %v", info, err)
	}
}

func TestAcceptRejectsWrongKeytab(t *testing.T) {
	s := newService(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	_, tok, _ := NewInitiator(s.cname, realm, s.tkt, s.sessionKey, DefaultFlags)
	kt := keytab.New()
	_ = kt.AddEntry("hive/host.example.com", realm, "another-secret", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96)
	if _, err := Accept(tok, service.NewSettings(kt, service.DecodePAC(false)), AcceptOptions{}); err == nil {
		t.Fatal("accepted an AP-REQ with a ticket for another key")
	}
}

func TestSecurityLayerMessage(t *testing.T) {
	l := SecurityLayer{Layers: LayerIntegrity, MaxBuf: 65536, Authzid: "alice"}
	b := l.Marshal()
	if !bytes.Equal(b[:4], []byte{2, 1, 0, 0}) || string(b[4:]) != "alice" {
		t.Fatalf("%x", b)
	}
	got, err := ParseSecurityLayer(b)
	if err != nil || got != l {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := ParseSecurityLayer([]byte{1, 0}); err == nil {
		t.Fatal("short message accepted")
	}
}

func TestParseQOP(t *testing.T) {
	for in, want := range map[string]byte{"": 1, "auth": 1, "auth-int": 2, "AUTH-CONF": 4, "auth-conf, auth-int,auth": 7} {
		got, err := ParseQOP(in)
		if err != nil || got != want {
			t.Errorf("%q: %d %v", in, got, err)
		}
	}
	if _, err := ParseQOP("privacy"); err == nil {
		t.Error("bad QOP accepted")
	}
}

func TestSASLExchange(t *testing.T) {
	for _, tc := range []struct {
		offered, allowed, want byte
		noSub                  bool
	}{
		{LayerNone, LayerNone, LayerNone, false},
		{LayerIntegrity, LayerIntegrity, LayerIntegrity, false},
		{LayerConfidentiality, LayerConfidentiality, LayerConfidentiality, false},
		{LayerConfidentiality, LayerConfidentiality, LayerConfidentiality, true},
		{7, LayerIntegrity, LayerIntegrity, false},
		{7, 7, LayerConfidentiality, false},
		{LayerNone, LayerConfidentiality, 0, false},
	} {
		s := newService(t, etypeID.AES256_CTS_HMAC_SHA1_96)
		ini, tok, _ := NewInitiator(s.cname, realm, s.tkt, s.sessionKey, DefaultFlags)
		cl := NewSASLClient(ini, tc.allowed)
		sv := NewSASLServer(s.settings, tc.offered, AcceptOptions{NoSubkey: tc.noSub})
		msg := tok
		var clientDone, serverDone bool
		var err error
		for i := 0; i < 5 && !serverDone; i++ {
			var ch []byte
			ch, serverDone, err = sv.Step(msg)
			if err != nil {
				t.Fatalf("%+v: server step %d: %v", tc, i, err)
			}
			if serverDone {
				break
			}
			msg, clientDone, err = cl.Step(ch)
			if err != nil {
				break
			}
		}
		if tc.want == 0 {
			if !errors.Is(err, ErrNoCommonLayer) {
				t.Fatalf("%+v: %v", tc, err)
			}
			continue
		}
		if err != nil || !clientDone || !serverDone {
			t.Fatalf("%+v: done %v/%v err %v", tc, clientDone, serverDone, err)
		}
		if cl.Layer() != tc.want || sv.Layer() != tc.want {
			t.Fatalf("%+v: layers %d/%d", tc, cl.Layer(), sv.Layer())
		}
		if sv.Accepted().Client != "hiveqd/gw.example.com@"+realm {
			t.Fatal(sv.Accepted().Client)
		}
		// The transport after negotiation: frames wrapped both ways.
		seal := tc.want == LayerConfidentiality
		w, _ := cl.Context().Wrap([]byte("ExecuteStatement"), seal)
		if p, _, err := sv.Accepted().Context.Unwrap(w); err != nil || string(p) != "ExecuteStatement" {
			t.Fatalf("%+v: %v", tc, err)
		}
	}
}
