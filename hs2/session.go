package hs2

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"

	"github.com/hiveqd/hiveqd/internal/clock"
)

const (
	requestProtocol = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V10
	// V6 introduced columnar result sets, the only form this client reads.
	minProtocol = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V6

	defaultUser           = "anonymous"
	defaultConnectTimeout = 5 * time.Second
	defaultCallTimeout    = 30 * time.Second
	// Thrift's per-string/per-list limit, HS2's own max message size.
	maxMessageSize = 100 << 20
)

// Clock is the time source of Operation.Wait's back-off; tests inject a
// fake one through Options.Clock.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

func (o Options) withDefaults() Options {
	if o.User == "" {
		o.User = defaultUser
	}
	if o.Password == "" {
		o.Password = defaultUser
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = defaultCallTimeout
	}
	if o.DialContext == nil {
		o.DialContext = defaultDial // keepalive, TCP_USER_TIMEOUT (dialer.go)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	return o
}

func (e Endpoint) withDefaults() Endpoint {
	e.Transport = Transport(strings.ToLower(string(e.Transport)))
	if e.Transport == "" {
		e.Transport = TransportBinary
	}
	if e.Auth == "" {
		e.Auth = AuthNone
	}
	e.Auth = Auth(strings.ToUpper(string(e.Auth)))
	if e.HTTPPath == "" {
		e.HTTPPath = DefaultHTTPPath
	}
	return e
}

func (e Endpoint) validate() error {
	switch e.Transport {
	case TransportBinary, TransportHTTP:
	default:
		return fmt.Errorf("hs2 %s: transport %q: %w", e.Addr(), e.Transport, ErrUnsupported)
	}
	switch e.Auth {
	case AuthNone, AuthNoSASL, AuthLDAP, AuthCustom, AuthKerberos:
	default:
		return fmt.Errorf("hs2 %s: authentication %q: %w", e.Addr(), e.Auth, ErrUnsupported)
	}
	if e.Host == "" || e.Port <= 0 || e.Port > 65535 {
		return fmt.Errorf("hs2: invalid endpoint %q", e.Addr())
	}
	return nil
}

// Session is one HS2 session on its own connection. Its methods are safe
// for concurrent use but carry one call at a time.
type Session struct {
	ep       Endpoint
	opts     Options
	sc       SessionConfig
	server   string
	tr       transport
	client   *hiveserver.TCLIServiceClient
	handle   *hiveserver.TSessionHandle
	protocol hiveserver.TProtocolVersion

	// proto is the Thrift protocol on tr; seq numbers the requests sent
	// ahead and ahead are those whose answers are unread, oldest first
	// (pipeline.go); all under lock.
	proto thrift.TProtocol
	seq   int32
	ahead []fetchAhead
	// later are calls sent whose answers nobody waits for (CloseLater),
	// oldest first; every later call reads them first (pipeline.go).
	later []laterAnswer

	lock   chan struct{} // held for the length of a call
	broken atomic.Bool
	closed atomic.Bool // set under lock

	inflightMu sync.Mutex
	inflight   context.CancelFunc // cancels the call in progress
}

// Open dials ep and opens a session configured by sc. Failures to connect
// are *TransportError, refused credentials *AuthError, a refusal from HS2
// *ServerError.
func Open(ctx context.Context, ep Endpoint, opts Options, sc SessionConfig) (*Session, error) {
	ep = ep.withDefaults()
	if err := ep.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	tr, err := dial(ctx, ep, opts)
	if err != nil {
		return nil, err
	}
	sc.Conf = maps.Clone(sc.Conf)
	s := &Session{ep: ep, opts: opts, sc: sc, server: ep.Addr(), tr: tr, lock: make(chan struct{}, 1)}
	conf := thrift.TConfiguration{MaxMessageSize: maxMessageSize}
	proto := newProtocol(tr, &conf)
	s.client = hiveserver.NewTCLIServiceClientProtocol(tr, proto, proto)
	s.proto = proto

	req := &hiveserver.TOpenSessionReq{
		ClientProtocol: requestProtocol,
		Username:       &opts.User,
		Password:       &opts.Password,
		Configuration:  sessionConf(sc),
	}
	var resp *hiveserver.TOpenSessionResp
	err = s.call(ctx, "OpenSession", true, func(ctx context.Context) (*hiveserver.TStatus, error) {
		var err error
		resp, err = s.client.OpenSession(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	})
	if err != nil {
		tr.Close()
		return nil, err
	}
	s.protocol = resp.ServerProtocolVersion
	s.handle = resp.SessionHandle
	if s.handle == nil || s.handle.SessionId == nil {
		tr.Close()
		return nil, &ServerError{Server: s.server, Call: "OpenSession", Message: "no session handle in reply"}
	}
	if s.protocol < minProtocol {
		_ = s.Close(ctx)
		return nil, fmt.Errorf("hs2 %s: server speaks HIVE_CLI_SERVICE_PROTOCOL_V%d, need V6 or later for columnar results: %w",
			s.server, int(s.protocol)+1, ErrUnsupported)
	}
	return s, nil
}

// sessionConf is OpenSession's configuration map as Hive JDBC builds it:
// a Conf key is a hiveconf (set:hiveconf:KEY), unless it is named
// hivevar:NAME, a variable for ${NAME} substitution (set:hivevar:NAME),
// or hiveconf:KEY.
func sessionConf(sc SessionConfig) map[string]string {
	m := make(map[string]string, len(sc.Conf)+2)
	for k, v := range sc.Conf {
		if name, ok := strings.CutPrefix(k, "hivevar:"); ok {
			m["set:hivevar:"+name] = v
			continue
		}
		m["set:hiveconf:"+strings.TrimPrefix(k, "hiveconf:")] = v
	}
	if sc.Database != "" {
		m["use:database"] = sc.Database
	}
	if sc.ProxyUser != "" {
		m["hive.server2.proxy.user"] = sc.ProxyUser
	}
	return m
}

func dial(ctx context.Context, ep Endpoint, opts Options) (transport, error) {
	tlsConf := func() *tls.Config {
		c := &tls.Config{}
		if opts.TLSConfig != nil {
			c = opts.TLSConfig.Clone()
		}
		if c.ServerName == "" {
			c.ServerName = ep.Host
		}
		return c
	}
	auth := opts.Authenticator
	if auth == nil {
		auth = defaultAuth{opts: opts}
	}
	if ep.Transport == TransportHTTP {
		authz, err := auth.HTTP(ep)
		if err != nil {
			return nil, err
		}
		return newHTTPTransport(ep, opts, authz, tlsConf), nil
	}
	mech, err := auth.SASL(ep)
	if err != nil {
		return nil, err
	}
	terr := func(err error) error { return &TransportError{Server: ep.Addr(), Call: "Connect", Err: err} }
	dctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	conn, err := opts.DialContext(dctx, "tcp", ep.Addr())
	if err != nil {
		return nil, terr(err)
	}
	disarm := armConn(dctx, conn)
	defer disarm()
	if ep.TLS {
		tc := tls.Client(conn, tlsConf())
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, terr(fmt.Errorf("tls: %w", err))
		}
		conn = tc
	}
	if mech == nil {
		return newRawTransport(conn), nil
	}
	t := newSASLTransport(conn)
	if err := saslHandshake(conn, t.r, ep.Addr(), mech); err != nil {
		conn.Close()
		var aerr *AuthError
		if errors.As(err, &aerr) {
			return nil, aerr
		}
		if cerr := dctx.Err(); cerr != nil {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return nil, terr(fmt.Errorf("sasl: %w", err))
	}
	t.sec = mech.Layer()
	return t, nil
}

func newHTTPTransport(ep Endpoint, opts Options, authz HTTPAuthorizer, tlsConf func() *tls.Config) *httpTransport {
	scheme := "http"
	ht := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
			defer cancel()
			return opts.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout: opts.ConnectTimeout,
		MaxIdleConnsPerHost: 1, // a session carries one call at a time
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if ep.TLS {
		scheme = "https"
		ht.TLSClientConfig = tlsConf()
	}
	return &httpTransport{
		client:    &http.Client{Transport: ht},
		closeIdle: ht.CloseIdleConnections,
		url:       scheme + "://" + ep.Addr() + "/" + strings.TrimLeft(ep.HTTPPath, "/"),
		server:    ep.Addr(),
		auth:      authz,
		now:       opts.Clock.Now,
	}
}

// Endpoint is the server this session is on.
func (s *Session) Endpoint() Endpoint { return s.ep }

// Config is the session configuration it was opened with.
func (s *Session) Config() SessionConfig { return s.sc }

// ProtocolVersion is the negotiated protocol's version number: 10 for
// HIVE_CLI_SERVICE_PROTOCOL_V10.
func (s *Session) ProtocolVersion() int { return int(s.protocol) + 1 }

// Broken reports whether the session's transport failed; it cannot carry
// further calls and should be closed.
func (s *Session) Broken() bool { return s.broken.Load() }

// Ping asks HS2 for its name (GetInfo CLI_SERVER_NAME): a cheap call that
// proves the connection and the session are alive.
func (s *Session) Ping(ctx context.Context) error {
	return s.call(ctx, "GetInfo", true, func(ctx context.Context) (*hiveserver.TStatus, error) {
		resp, err := s.client.GetInfo(ctx, &hiveserver.TGetInfoReq{SessionHandle: s.handle, InfoType: hiveserver.TGetInfoType_CLI_SERVER_NAME})
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	})
}

// Execute submits stmt asynchronously with conf as its configuration
// overlay. HS2 compiles the statement before answering, so syntax and
// semantic errors come back here as *ServerError.
func (s *Session) Execute(ctx context.Context, stmt string, conf map[string]string) (*Operation, error) {
	req := &hiveserver.TExecuteStatementReq{SessionHandle: s.handle, Statement: stmt, ConfOverlay: conf, RunAsync: true}
	var resp *hiveserver.TExecuteStatementResp
	err := s.call(ctx, "ExecuteStatement", true, func(ctx context.Context) (*hiveserver.TStatus, error) {
		var err error
		resp, err = s.client.ExecuteStatement(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	})
	if err != nil {
		return nil, err
	}
	h := resp.OperationHandle
	if h == nil || h.OperationId == nil {
		return nil, &ServerError{Server: s.server, Call: "ExecuteStatement", Message: "no operation handle in reply"}
	}
	op := &Operation{s: s, h: h}
	op.hasRS.Store(h.HasResultSet)
	return op, nil
}

// Close closes the session on the server and its connection. It is
// idempotent. If a call is in flight and ctx ends before it finishes, that
// call is aborted.
func (s *Session) Close(ctx context.Context) error {
	if err := s.acquire(ctx); err != nil {
		s.abortInflight()
		s.lock <- struct{}{} // the aborted call gives the lock back promptly
	}
	defer s.release()
	if s.closed.Load() {
		return nil
	}
	var err error
	// A broken binary connection took the session with it; over HTTP the
	// session outlives a failed request, so try to close it.
	if !s.broken.Load() || s.tr.survivesFailure() {
		err = s.callLocked(ctx, "CloseSession", callOpts{evenIfBroken: true}, func(ctx context.Context) (*hiveserver.TStatus, error) {
			resp, err := s.client.CloseSession(ctx, &hiveserver.TCloseSessionReq{SessionHandle: s.handle})
			if err != nil {
				return nil, err
			}
			return resp.Status, nil
		})
	}
	s.closed.Store(true)
	s.tr.Close()
	return err
}

func (s *Session) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	default:
	}
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hs2 %s: waiting for the session: %w", s.server, ctx.Err())
	}
}

func (s *Session) release() { <-s.lock }

func (s *Session) abortInflight() {
	s.inflightMu.Lock()
	if s.inflight != nil {
		s.inflight()
	}
	s.inflightMu.Unlock()
}

type callOpts struct {
	// sessionLevel: an invalid handle means the session is gone.
	sessionLevel bool
	// evenIfBroken: CloseSession over HTTP after a failed request.
	evenIfBroken bool
	// keepAhead: this call reads the answer to the request sent ahead
	// for this operation; any other call drops that answer first.
	keepAhead *Operation
}

// call runs one Thrift call under the session lock. fn returns the reply's
// TStatus or the client's error.
func (s *Session) call(ctx context.Context, name string, sessionLevel bool, fn func(context.Context) (*hiveserver.TStatus, error)) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.callLocked(ctx, name, callOpts{sessionLevel: sessionLevel}, fn)
}

func (s *Session) callLocked(ctx context.Context, name string, o callOpts, fn func(context.Context) (*hiveserver.TStatus, error)) error {
	if s.closed.Load() {
		return fmt.Errorf("hs2 %s %s: %w", s.server, name, ErrSessionClosed)
	}
	if s.broken.Load() && !o.evenIfBroken {
		return &TransportError{Server: s.server, Call: name, Err: ErrBroken}
	}
	if err := ctx.Err(); err != nil {
		// Nothing was sent: the session stays usable.
		return fmt.Errorf("hs2 %s %s: %w", s.server, name, err)
	}
	var cctx context.Context
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		cctx, cancel = context.WithCancel(ctx)
	} else {
		cctx, cancel = context.WithTimeout(ctx, s.opts.CallTimeout)
	}
	defer cancel()
	s.inflightMu.Lock()
	s.inflight = cancel
	s.inflightMu.Unlock()
	defer func() {
		s.inflightMu.Lock()
		s.inflight = nil
		s.inflightMu.Unlock()
	}()

	if s.opts.Observe != nil {
		fn = observed(s.opts.Observe, s.server, name, fn)
	}
	if len(s.later) > 0 || len(s.ahead) > 0 && s.ahead[0].op != o.keepAhead {
		fn = s.drainFirst(fn, o.keepAhead)
	}
	disarm := s.tr.arm(cctx)
	st, err := fn(cctx)
	disarm()
	if err != nil {
		out, broken := callError(cctx, s.server, name, err)
		if broken {
			s.broken.Store(true)
		}
		return out
	}
	if err := statusError(s.server, name, st); err != nil {
		if o.sessionLevel && st != nil && st.StatusCode == hiveserver.TStatusCode_INVALID_HANDLE_STATUS {
			s.broken.Store(true) // HS2 no longer knows this session
		}
		return err
	}
	return nil
}
