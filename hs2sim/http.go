package hs2sim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// authCookie is the cookie HS2's ThriftHttpServlet sets after a successful
// login (hive.server2.thrift.http.cookie.auth.enabled, on by default).
const authCookie = "hive.server2.auth"

// cookieMaxAge is hive.server2.thrift.http.cookie.max.age's default.
const cookieMaxAge = 86400

// trackingListener counts HTTP connections in Stats and lets Crash reset
// them.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := l.s.track(c)
		if tc == nil {
			continue
		}
		if l.s.cfg.TLS != nil {
			return tls.Server(tc, l.s.cfg.TLS), nil
		}
		return tc, nil
	}
}

// httpHandler serves Thrift over HTTP like HS2's ThriftHttpServlet: POST on
// the path, Basic auth or the auth cookie, one Thrift message per body.
func (s *Server) httpHandler() http.Handler {
	path := "/" + strings.Trim(s.cfg.HTTPPath, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path && !strings.HasPrefix(r.URL.Path, path+"/") {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "HTTP method "+r.Method+" is not supported by this URL", http.StatusMethodNotAllowed)
			return
		}
		user, ok := s.httpAuth(w, r)
		if !ok {
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxMessage+1))
		if err != nil {
			return
		}
		if len(body) > maxMessage {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		in := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(body)}
		bp := encodeBufs.Get().(*[]byte)
		out := &replyBuffer{b: (*bp)[:0]}
		defer func() {
			if *bp = out.b; cap(out.b) <= maxMessage {
				encodeBufs.Put(bp)
			}
		}()
		// ThriftHttpServlet takes the proxy user from the doAs parameter.
		ci := connInfo{user: user, proxy: r.URL.Query().Get("doAs")}
		ctx := context.WithValue(r.Context(), connKey{}, ci)
		_, perr := s.proc.Process(ctx, thrift.NewTBinaryProtocolConf(in, s.tconf), thrift.NewTBinaryProtocolConf(out, s.tconf))
		if len(out.b) == 0 {
			if errors.Is(perr, thrift.ErrAbandonRequest) {
				abandon(w)
				return
			}
			http.Error(w, "Thrift request could not be processed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-thrift")
		w.Header().Set("Content-Length", strconv.Itoa(len(out.b)))
		_, _ = w.Write(out.b)
	})
}

// replyBuffer collects an HTTP reply; FetchResults encodes straight into
// it (bulkWriter).
type replyBuffer struct{ b []byte }

func (r *replyBuffer) Open() error                      { return nil }
func (r *replyBuffer) IsOpen() bool                     { return true }
func (r *replyBuffer) Close() error                     { return nil }
func (r *replyBuffer) Read([]byte) (int, error)         { return 0, io.EOF }
func (r *replyBuffer) Flush(context.Context) error      { return nil }
func (r *replyBuffer) RemainingBytes() uint64           { return 0 }
func (r *replyBuffer) bulkAppend(f func([]byte) []byte) { r.b = f(r.b) }

func (r *replyBuffer) Write(p []byte) (int, error) {
	r.b = append(r.b, p...)
	return len(p), nil
}

// abandon drops the HTTP connection without a response.
func abandon(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := c.(*trackedConn); ok {
		tc.reset()
		return
	}
	c.Close()
}

// httpAuth authenticates a request: a valid auth cookie, else Basic
// credentials (checked in ldap mode) or, with Kerberos, a SPNEGO or raw
// krb5 token in "Authorization: Negotiate"; after which the cookie is set.
// It writes the 401 itself.
func (s *Server) httpAuth(w http.ResponseWriter, r *http.Request) (string, bool) {
	if c, err := r.Cookie(authCookie); err == nil {
		if user, ok := s.verifyCookie(c.Value); ok {
			return user, true
		}
	}
	var user string
	switch s.cfg.Auth {
	case "nosasl":
		return "anonymous", true
	case "kerberos":
		u, err := s.negotiate(r)
		if err != nil {
			s.log.Warn("hs2sim: kerberos: HTTP authentication failed", "err", err)
			unauthorized(w, "Negotiate", err.Error())
			return "", false
		}
		user = u
	default:
		u, pass, ok := r.BasicAuth()
		if !ok {
			unauthorized(w, basicChallenge, "Authorization header received from the client is empty.")
			return "", false
		}
		if check := s.passwordCheck(); check != nil && !check(u, pass) {
			unauthorized(w, basicChallenge, "Error validating LDAP user")
			return "", false
		}
		if u == "" {
			unauthorized(w, basicChallenge, "Authorization header received from the client does not contain a user name.")
			return "", false
		}
		user = u
	}
	v := s.signCookie(user)
	hdr := authCookie + "=" + v + "; Max-Age=" + strconv.Itoa(int(s.cfg.CookieMaxAge/time.Second)) + "; HttpOnly"
	if s.cfg.TLS != nil {
		hdr += "; Secure"
	}
	w.Header().Add("Set-Cookie", hdr)
	return user, true
}

// negotiate is ThriftHttpServlet.doKerberosAuth: accept the token for
// HTTP/<host>, else for the service principal, and return the client's
// short name (getPrincipalWithoutRealmAndHost).
func (s *Server) negotiate(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", errors.New("Authorization header received from the client is empty.")
	}
	b64 := strings.TrimSpace(strings.TrimPrefix(h, "Negotiate"))
	if b64 == "" || b64 == h {
		return "", errors.New("Authorization header received from the client does not contain any data.")
	}
	tok, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("Kerberos authentication failed: bad base64 token: %v", err)
	}
	ctx, err := s.krb.accept(tok, httpPrincipals(s.cfg.KerberosPrincipal)...)
	if err != nil {
		return "", fmt.Errorf("Kerberos authentication failed: %v", err)
	}
	s.kerberosLogins.Add(1)
	return shortName(ctx.client), nil
}

const basicChallenge = "Basic realm=\"hiveserver2\""

func unauthorized(w http.ResponseWriter, challenge, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, "Authentication Error: "+msg+"\n")
}

// signCookie builds HS2's cookie token "cu=<user>&rn=<random>&s=<sig>".
func (s *Server) signCookie(user string) string {
	rn := hex.EncodeToString(newUUIDSlice()[:8])
	tok := "cu=" + user + "&rn=" + rn
	return tok + "&s=" + s.cookieSig(tok)
}

func (s *Server) cookieSig(tok string) string {
	m := hmac.New(sha256.New, s.cookie)
	m.Write([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) verifyCookie(v string) (string, bool) {
	i := strings.LastIndex(v, "&s=")
	if i < 0 {
		return "", false
	}
	tok, sig := v[:i], v[i+3:]
	if !hmac.Equal([]byte(sig), []byte(s.cookieSig(tok))) {
		return "", false
	}
	for _, part := range strings.Split(tok, "&") {
		if u, ok := strings.CutPrefix(part, "cu="); ok && u != "" {
			return u, true
		}
	}
	return "", false
}
