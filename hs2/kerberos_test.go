package hs2

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/hiveqd/hiveqd/gssapi"
	"github.com/hiveqd/hiveqd/kerberos"
)

func TestServicePrincipal(t *testing.T) {
	for _, tc := range []struct{ pattern, host, want string }{
		{"hive/_HOST@EXAMPLE.COM", "HS2-A.Example.com", "hive/hs2-a.example.com@EXAMPLE.COM"},
		{"hive/_HOST", "h", "hive/h"},
		{"hive/fixed.example.com@EXAMPLE.COM", "other", "hive/fixed.example.com@EXAMPLE.COM"},
		{"hive@EXAMPLE.COM", "h", "hive@EXAMPLE.COM"},
		{"_HOST/_HOST@R", "h", "_HOST/h@R"},
	} {
		if got := ServicePrincipal(tc.pattern, tc.host); got != tc.want {
			t.Errorf("%s on %s: %s, want %s", tc.pattern, tc.host, got, tc.want)
		}
	}
}

// fakeKDC issues tickets for any principal from one service keytab, and
// records which principals were asked for.
type fakeKDC struct {
	t     *testing.T
	kt    *keytab.Keytab
	asked []string
}

const testRealm = "EXAMPLE.COM"

func newFakeKDC(t *testing.T, services ...string) *fakeKDC {
	kt := keytab.New()
	for _, s := range services {
		if err := kt.AddEntry(s, testRealm, "secret-"+s, time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeKDC{t: t, kt: kt}
}

func (f *fakeKDC) ServiceTicket(spn string) (kerberos.Ticket, error) {
	f.asked = append(f.asked, spn)
	name, _, _ := strings.Cut(spn, "@")
	cname := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "hiveqd/gw")
	sname := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, name)
	if _, _, err := f.kt.GetEncryptionKey(sname, testRealm, 0, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		return kerberos.Ticket{}, errors.New("KDC_ERR_S_PRINCIPAL_UNKNOWN " + spn)
	}
	now := time.Now().UTC()
	tkt, key, err := messages.NewTicket(cname, testRealm, sname, testRealm, types.NewKrbFlags(), f.kt,
		etypeID.AES256_CTS_HMAC_SHA1_96, 1, now, now, now.Add(time.Hour), now.Add(time.Hour))
	if err != nil {
		return kerberos.Ticket{}, err
	}
	return kerberos.Ticket{Ticket: tkt, SessionKey: key, CName: cname, Realm: testRealm, EndTime: now.Add(time.Hour)}, nil
}

// serveGSSAPI is Thrift's TSaslServerTransport with the JDK's GSSAPI
// server, then echoes one wrapped frame.
func serveGSSAPI(conn net.Conn, kt *keytab.Keytab, offered byte) error {
	defer conn.Close()
	status, mech, err := readSASLFrame(conn)
	if err != nil || status != saslStart || string(mech) != "GSSAPI" {
		return errors.New("no START GSSAPI")
	}
	sv := gssapi.NewSASLServer(service.NewSettings(kt, service.DecodePAC(false)), offered, gssapi.AcceptOptions{})
	for {
		status, msg, err := readSASLFrame(conn)
		if err != nil {
			return err
		}
		if status != saslOK && status != saslComplete {
			return errors.New("bad status")
		}
		ch, done, err := sv.Step(msg)
		if err != nil {
			_ = writeSASLFrame(conn, saslBad, []byte(err.Error()))
			return err
		}
		if done {
			if err := writeSASLFrame(conn, saslComplete, nil); err != nil {
				return err
			}
			break
		}
		if err := writeSASLFrame(conn, saslOK, ch); err != nil {
			return err
		}
	}
	// One frame in, the same payload back, protected per the layer.
	ctx := sv.Accepted().Context
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return err
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	frame := make([]byte, n)
	if _, err := io.ReadFull(conn, frame); err != nil {
		return err
	}
	payload := frame
	if sv.Layer() != gssapi.LayerNone {
		if payload, _, err = ctx.Unwrap(frame); err != nil {
			return err
		}
		if frame, err = ctx.Wrap(payload, sv.Layer() == gssapi.LayerConfidentiality); err != nil {
			return err
		}
	}
	out := append([]byte{byte(len(frame) >> 24), byte(len(frame) >> 16), byte(len(frame) >> 8), byte(len(frame))}, frame...)
	_, err = conn.Write(out)
	return err
}

func TestGSSAPIEveryQOP(t *testing.T) {
	for _, tc := range []struct {
		offered   string
		configure string
		wantErr   string
	}{
		{"auth", "", ""},
		{"auth-int", "", ""},
		{"auth-conf", "", ""},
		{"auth-conf", "auth-conf", ""},
		{"auth-int", "auth-conf", "no common SASL security layer"},
	} {
		t.Run(tc.offered+"/"+tc.configure, func(t *testing.T) {
			kdc := newFakeKDC(t, "hive/hs2-a.example.com")
			offered, _ := gssapi.ParseQOP(tc.offered)
			client, server := net.Pipe()
			defer client.Close()
			served := make(chan error, 1)
			go func() { served <- serveGSSAPI(server, kdc.kt, offered) }()

			ep := Endpoint{Host: "HS2-A.example.com", Port: 10000, Auth: AuthKerberos, Principal: "hive/_HOST@" + testRealm, SASLQOP: tc.offered}
			mech, err := defaultAuth{opts: Options{Kerberos: &Kerberos{Identity: kdc, QOP: tc.configure}}}.SASL(ep)
			if err != nil {
				t.Fatal(err)
			}
			tr := newSASLTransport(client)
			err = saslHandshake(client, tr.r, ep.Addr(), mech)
			if tc.wantErr != "" {
				var ae *AuthError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an AuthError with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := kdc.asked; len(got) != 1 || got[0] != "hive/hs2-a.example.com@"+testRealm {
				t.Fatalf("asked for %v", got)
			}
			tr.sec = mech.Layer()
			if (tr.sec == nil) != (tc.offered == "auth") {
				t.Fatalf("layer %v for %s", tr.sec, tc.offered)
			}
			msg := bytes.Repeat([]byte("ExecuteStatement"), 1000)
			tr.Write(msg)
			if err := tr.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(tr, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("echo mismatch")
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGSSAPIUnknownServerPrincipal(t *testing.T) {
	kdc := newFakeKDC(t, "hive/hs2-a.example.com")
	ep := Endpoint{Host: "hs2-b.example.com", Port: 1, Auth: AuthKerberos, Principal: "hive/_HOST@" + testRealm}
	mech, err := defaultAuth{opts: Options{Kerberos: &Kerberos{Identity: kdc}}}.SASL(ep)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = mech.Start()
	var ae *AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "hive/hs2-b.example.com") {
		t.Fatalf("%v", err)
	}
	// No principal anywhere.
	ep.Principal = ""
	mech, _ = defaultAuth{opts: Options{Kerberos: &Kerberos{Identity: kdc}}}.SASL(ep)
	if _, _, err := mech.Start(); err == nil || !strings.Contains(err.Error(), "no server principal") {
		t.Fatalf("%v", err)
	}
}

func TestSPNEGOHeader(t *testing.T) {
	kdc := newFakeKDC(t, "HTTP/web.example.com", "hive/web.example.com")
	for _, tc := range []struct{ httpPrincipal, want string }{
		{"", "hive/web.example.com@" + testRealm},
		{"HTTP/_HOST@" + testRealm, "HTTP/web.example.com@" + testRealm},
	} {
		kdc.asked = nil
		ep := Endpoint{Host: "web.example.com", Port: 10001, Transport: TransportHTTP, Auth: AuthKerberos, Principal: "hive/_HOST@" + testRealm}
		authz, err := defaultAuth{opts: Options{Kerberos: &Kerberos{Identity: kdc, HTTPPrincipal: tc.httpPrincipal}}}.HTTP(ep)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://web.example.com/cliservice", nil)
		if err := authz.Authorize(req); err != nil {
			t.Fatal(err)
		}
		if len(kdc.asked) != 1 || kdc.asked[0] != tc.want {
			t.Fatalf("asked %v, want %s", kdc.asked, tc.want)
		}
		h := req.Header.Get("Authorization")
		b64, ok := strings.CutPrefix(h, "Negotiate ")
		if !ok {
			t.Fatalf("header %q", h)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		var tok spnego.SPNEGOToken
		if err := tok.Unmarshal(raw); err != nil || !tok.Init {
			t.Fatalf("not a NegTokenInit: %v", err)
		}
		acc, err := gssapi.Accept(tok.NegTokenInit.MechTokenBytes, service.NewSettings(kdc.kt, service.DecodePAC(false)), gssapi.AcceptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if acc.Client != "hiveqd/gw@"+testRealm {
			t.Fatal(acc.Client)
		}
	}
}
