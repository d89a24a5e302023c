package hs2sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
	"github.com/hiveqd/hiveqd/gssapi"
)

// hiveqd's pure-Go GSS-API (package gssapi, written apart from this
// simulator's acceptor) against the simulator: every QOP, with and without
// an acceptor subkey, then Thrift calls over the negotiated layer.

// gssFramed is the client side of Thrift's SASL transport after the
// negotiation: one frame per flush, each a wrap token unless the layer is
// auth.
type gssFramed struct {
	conn net.Conn
	r    *bufio.Reader
	ctx  *gssapi.Context
	wrap bool
	seal bool
	out  bytes.Buffer
	in   bytes.Buffer
}

func (f *gssFramed) Open() error                 { return nil }
func (f *gssFramed) IsOpen() bool                { return true }
func (f *gssFramed) Close() error                { return f.conn.Close() }
func (f *gssFramed) RemainingBytes() uint64      { return ^uint64(0) }
func (f *gssFramed) Write(p []byte) (int, error) { return f.out.Write(p) }

func (f *gssFramed) Flush(context.Context) error {
	b := f.out.Bytes()
	if f.wrap {
		var err error
		if b, err = f.ctx.Wrap(b, f.seal); err != nil {
			return err
		}
	}
	hdr := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	f.out.Reset()
	_, err := f.conn.Write(append(hdr, b...))
	return err
}

func (f *gssFramed) Read(p []byte) (int, error) {
	if f.in.Len() == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
			return 0, err
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(f.r, b); err != nil {
			return 0, err
		}
		if f.wrap {
			msg, sealed, err := f.ctx.Unwrap(b)
			if err != nil {
				return 0, err
			}
			if sealed != f.seal {
				return 0, io.ErrUnexpectedEOF
			}
			b = msg
		}
		f.in.Write(b)
	}
	return f.in.Read(p)
}

func TestKerberosGssapiPackage(t *testing.T) {
	f := startKrbFixture(t)
	for _, qop := range []string{"auth", "auth-int", "auth-conf"} {
		for _, subkey := range []bool{true, false} {
			name := qop
			if !subkey {
				name += "/no-acceptor-subkey"
			}
			t.Run(name, func(t *testing.T) {
				cfg := f.config()
				cfg.SASLQOP, cfg.NoAcceptorSubkey = qop, !subkey
				s := startServer(t, cfg)
				tr := gssapiDial(t, f, s)
				c := hiveserver.NewTCLIServiceClientFactory(tr, thrift.NewTBinaryProtocolFactoryConf(nil))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				sess, err := c.OpenSession(ctx, &hiveserver.TOpenSessionReq{ClientProtocol: v10})
				if err != nil {
					t.Fatal(err)
				}
				ok(t, sess.Status)
				for i := 0; i < 3; i++ {
					ex, err := c.ExecuteStatement(ctx, &hiveserver.TExecuteStatementReq{SessionHandle: sess.SessionHandle, Statement: "SELECT current_user()"})
					if err != nil {
						t.Fatal(err)
					}
					ok(t, ex.Status)
					fr, err := c.FetchResults(ctx, &hiveserver.TFetchResultsReq{OperationHandle: ex.OperationHandle, MaxRows: 10})
					if err != nil {
						t.Fatal(err)
					}
					if got := fr.Results.Columns[0].StringVal.Values; len(got) != 1 || got[0] != "alice" {
						t.Errorf("current_user() = %v", got)
					}
					if _, err := c.CloseOperation(ctx, &hiveserver.TCloseOperationReq{OperationHandle: ex.OperationHandle}); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := c.CloseSession(ctx, &hiveserver.TCloseSessionReq{SessionHandle: sess.SessionHandle}); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// gssapiDial negotiates SASL GSSAPI as alice with package gssapi.
func gssapiDial(t *testing.T, f *krbFixture, s *Server) *gssFramed {
	t.Helper()
	tkt, key, err := f.alice.GetServiceTicket("hive/localhost")
	if err != nil {
		t.Fatal(err)
	}
	init, tok, err := gssapi.NewInitiator(f.alice.Credentials.CName(), f.alice.Credentials.Realm(), tkt, key, gssapi.DefaultFlags)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	if err := writeSASL(conn, saslStart, "GSSAPI"); err != nil {
		t.Fatal(err)
	}
	if err := writeSASL(conn, saslOK, string(tok)); err != nil {
		t.Fatal(err)
	}
	cl := gssapi.NewSASLClient(init, gssapi.LayerNone|gssapi.LayerIntegrity|gssapi.LayerConfidentiality)
	for {
		st, challenge, err := readSASL(r)
		if err != nil {
			t.Fatal(err)
		}
		if st == saslComplete {
			break
		}
		if st != saslOK {
			t.Fatalf("sasl status %d: %s", st, challenge)
		}
		resp, _, err := cl.Step(challenge)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeSASL(conn, saslOK, string(resp)); err != nil {
			t.Fatal(err)
		}
	}
	layer := cl.Layer()
	return &gssFramed{conn: conn, r: r, ctx: cl.Context(), wrap: layer != gssapi.LayerNone,
		seal: layer == gssapi.LayerConfidentiality}
}
