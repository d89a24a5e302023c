// Package hs2sim is a HiveServer2 simulator: a TCLIService server speaking
// HS2's wire protocols (binary with SASL PLAIN or NOSASL, HTTP, optional
// TLS) on a real SQL engine (SQLite) with Hive's typing, naming and error
// messages, synthetic tables generated in columnar form for benchmarks,
// ZooKeeper registration exactly like HS2 (plain and active/passive HA
// layouts), and fault injection (crash, hang, slow calls, failing
// queries, deregistration, dropped connections).
//
// It deliberately shares no code with hiveqd's client (package hs2), so
// tests of one against the other check both against the protocol.
package hs2sim

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// Config configures a simulated HiveServer2.
type Config struct {
	Listen    string            // default "127.0.0.1:0"
	Transport string            // "binary" (default) | "http"
	HTTPPath  string            // default "cliservice"
	Auth      string            // "none" (default) | "nosasl" | "ldap" | "kerberos"
	Users     map[string]string // ldap: user -> password
	TLS       *tls.Config       // optional, on either transport
	Version   string            // default "3.1.3"

	// Kerberos (Auth "kerberos"): binary SASL GSSAPI, or over HTTP SPNEGO
	// or a raw krb5 token for HTTP/<host> or the service principal.
	KerberosPrincipal string        // hive/host@REALM: the service principal
	KerberosKeytab    string        // keytab holding its keys (and HTTP/host's for SPNEGO)
	SASLQOP           string        // binary: "auth" (default) | "auth-int" | "auth-conf"
	ClockSkew         time.Duration // default krb5.conf's clockskew (KRB5_CONFIG), else 5m
	NoAcceptorSubkey  bool          // AP-REP without an acceptor subkey (the JDK's default); else one, as MIT sends
	// ProxyUsers are the short names allowed to impersonate others through
	// hive.server2.proxy.user (hadoop.proxyuser.<name>.hosts/groups=*);
	// "*" allows everyone. Checked with Kerberos only, as HS2 does.
	ProxyUsers         []string
	PublishedPrincipal string        // principal published in ZooKeeper; default KerberosPrincipal with _HOST for the host
	CookieMaxAge       time.Duration // HTTP auth cookie Max-Age, default 24h

	ZK               []string      // optional ZooKeeper registration
	ZKNamespace      string        // default "hiveserver2"
	ZKMode           string        // "plain" (default) | "ha"
	ZKDigest         string        // "user:password": digest auth; nodes get creator ALL, world READ
	ZKSessionTimeout time.Duration // default 20s
	AdvertiseHost    string        // host in the znode; default the listen host
	Active           bool          // ha mode: start active (else passive)

	LongPoll time.Duration // GetOperationStatus long poll, default 5s
	Logger   *slog.Logger
}

// Stats are the server's counters.
type Stats struct {
	OpenSessions    int   `json:"open_sessions"`
	OpenOperations  int   `json:"open_operations"`
	OpenConnections int   `json:"open_connections"`
	SessionsOpened  int64 `json:"sessions_opened"`
	// KerberosLogins counts accepted Kerberos AP-REQs (SASL GSSAPI or
	// HTTP Negotiate); over HTTP a client that reuses the auth cookie logs
	// in once per cookie lifetime.
	KerberosLogins   int64 `json:"kerberos_logins"`
	OperationsOpened int64 `json:"operations_opened"`
	// OperationsCancelled counts operations CancelOperation moved to
	// CANCELED_STATE.
	OperationsCancelled int64 `json:"operations_cancelled"`
	// HeldOpens counts OpenSession calls held now by HoldOpenSessions.
	HeldOpens int `json:"held_opens"`
}

// maxMessage is hive.server2.thrift.max.message.size's default (100 MB):
// the largest frame or HTTP body accepted.
const maxMessage = 100 << 20

// Server is a running simulator.
type Server struct {
	cfg    Config
	log    *slog.Logger
	eng    *engine
	proc   *hiveserver.TCLIServiceProcessor
	tconf  *thrift.TConfiguration
	ctx    context.Context // ends when the server closes
	cancel context.CancelFunc
	stop   <-chan struct{}
	faults faults
	active atomic.Bool  // ha mode: accepting sessions
	cookie []byte       // HMAC key for the HTTP auth cookie
	krb    *krbAcceptor // Auth "kerberos"
	reg    *registrar   // nil without ZooKeeper

	mu       sync.Mutex
	host     string // dialable host: the listen host, loopback for a wildcard
	port     int
	bind     string       // the listen address with the port chosen, for Heal
	ln       net.Listener // nil while crashed
	httpSrv  *http.Server
	conns    map[*trackedConn]struct{}
	connIDs  map[uint64]*trackedConn
	nextConn uint64
	sessions map[[16]byte]*session
	ops      map[[16]byte]*operation
	crashed  bool
	closed   bool

	sessionsOpened      atomic.Int64
	operationsOpened    atomic.Int64
	operationsCancelled atomic.Int64
	kerberosLogins      atomic.Int64

	wg        sync.WaitGroup // listeners and connections
	bg        sync.WaitGroup // background operations
	closeOnce sync.Once
	closeErr  error
}

// Start starts a simulator; ctx bounds startup (ZooKeeper registration).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Transport == "" {
		cfg.Transport = "binary"
	}
	if cfg.HTTPPath == "" {
		cfg.HTTPPath = "cliservice"
	}
	if cfg.Auth == "" {
		cfg.Auth = "none"
	}
	if cfg.Version == "" {
		cfg.Version = "3.1.3"
	}
	if cfg.ZKNamespace == "" {
		cfg.ZKNamespace = "hiveserver2"
	}
	if cfg.ZKMode == "" {
		cfg.ZKMode = "plain"
	}
	if cfg.ZKSessionTimeout == 0 {
		cfg.ZKSessionTimeout = 20 * time.Second
	}
	if cfg.LongPoll == 0 {
		cfg.LongPoll = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Transport != "binary" && cfg.Transport != "http":
		return nil, fmt.Errorf("hs2sim: unknown transport %q", cfg.Transport)
	case cfg.Auth != "none" && cfg.Auth != "nosasl" && cfg.Auth != "ldap" && cfg.Auth != "kerberos":
		return nil, fmt.Errorf("hs2sim: unknown auth %q", cfg.Auth)
	case cfg.ZKMode != "plain" && cfg.ZKMode != "ha":
		return nil, fmt.Errorf("hs2sim: unknown zk mode %q", cfg.ZKMode)
	}

	if cfg.CookieMaxAge == 0 {
		cfg.CookieMaxAge = cookieMaxAge * time.Second
	}
	var krb *krbAcceptor
	if cfg.Auth == "kerberos" {
		var err error
		if krb, err = newKrbAcceptor(&cfg); err != nil {
			return nil, err
		}
	}
	db, pin, cat, err := openSQLite(ctx, sampleTables)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg,
		log: cfg.Logger,
		eng: &engine{db: db, pin: pin, cat: cat, version: cfg.Version},
		// Strict reads: every HS2 client sends versioned messages, and an
		// unversioned first word from a stray client would otherwise be
		// taken as a (huge) method-name length and read forever.
		tconf:    &thrift.TConfiguration{MaxMessageSize: maxMessage, MaxFrameSize: maxMessage, TBinaryStrictRead: thrift.BoolPtr(true)},
		conns:    map[*trackedConn]struct{}{},
		connIDs:  map[uint64]*trackedConn{},
		sessions: map[[16]byte]*session{},
		ops:      map[[16]byte]*operation{},
		cookie:   newUUIDSlice(),
		krb:      krb,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.stop = s.ctx.Done()
	svc := &cliService{s: s}
	s.proc = hiveserver.NewTCLIServiceProcessor(svc)
	s.proc.AddToProcessorMap("FetchResults", fetchProcessor{c: svc})
	s.active.Store(cfg.ZKMode != "ha" || cfg.Active)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.eng.close()
		s.cancel()
		return nil, fmt.Errorf("hs2sim: listen: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	bindHost, _, _ := net.SplitHostPort(cfg.Listen)
	s.bind = net.JoinHostPort(bindHost, strconv.Itoa(addr.Port))
	// A wildcard listener is reached through loopback.
	host := bindHost
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	s.host, s.port = host, addr.Port
	s.mu.Lock()
	s.serve(ln)
	s.mu.Unlock()

	if len(cfg.ZK) > 0 {
		reg, err := startRegistrar(ctx, s.registration())
		if err != nil {
			s.Close()
			return nil, err
		}
		s.reg = reg
	}
	s.log.Info("hs2sim started", "addr", s.Addr(), "transport", cfg.Transport, "auth", cfg.Auth)
	return s, nil
}

// Addr is host:port clients connect to.
func (s *Server) Addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// Host is the listen host (127.0.0.1 when listening on all addresses).
func (s *Server) Host() string { return s.host }

// Port is the listen port (kept across Crash and Heal).
func (s *Server) Port() int { return s.port }

func (s *Server) haMode() bool { return s.cfg.ZKMode == "ha" }

func (s *Server) isCrashed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashed || s.closed
}

// serve starts serving ln; s.mu is held.
func (s *Server) serve(ln net.Listener) {
	s.ln = ln
	if s.cfg.Transport == "http" {
		srv := &http.Server{
			Handler:           s.httpHandler(),
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return s.ctx },
		}
		s.httpSrv = srv
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = srv.Serve(&trackingListener{Listener: ln, s: s})
		}()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// e.g. out of file descriptors: back off and go on, as
				// net/http does.
				s.log.Warn("hs2sim: accept", "err", err)
				if sleep(s.ctx, nil, 50*time.Millisecond) != nil {
					return
				}
				continue
			}
			tc := s.track(c)
			if tc == nil {
				continue
			}
			s.wg.Add(1)
			go s.serveBinary(tc)
		}
	}()
}

// trackedConn is a raw accepted connection, counted in Stats and reset by
// Crash.
type trackedConn struct {
	net.Conn
	id     uint64
	s      *Server
	ctx    context.Context // ends when the connection closes
	cancel context.CancelFunc
	once   sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.cancel()
		c.s.untrack(c)
	})
	return err
}

// reset closes with RST, as a killed process's kernel does.
func (c *trackedConn) reset() {
	setRST(c.Conn)
	_ = c.Close()
}

// setRST makes closing c send RST instead of FIN.
func setRST(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// track registers an accepted connection; it refuses (resets) it when the
// server is crashed or closed.
func (s *Server) track(c net.Conn) *trackedConn {
	ctx, cancel := context.WithCancel(s.ctx)
	s.mu.Lock()
	if s.crashed || s.closed {
		s.mu.Unlock()
		cancel()
		setRST(c)
		c.Close()
		return nil
	}
	s.nextConn++
	tc := &trackedConn{Conn: c, id: s.nextConn, s: s, ctx: ctx, cancel: cancel}
	s.conns[tc] = struct{}{}
	s.connIDs[tc.id] = tc
	s.mu.Unlock()
	return tc
}

func (s *Server) untrack(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	delete(s.connIDs, c.id)
	s.mu.Unlock()
	s.closeConnSessions(c.id)
}

// serveBinary runs one binary-transport connection: optional TLS, SASL
// PLAIN negotiation or raw NOSASL, then one Thrift call at a time until the
// client leaves or sends something unparseable. A panic ends only this
// connection.
func (s *Server) serveBinary(tc *trackedConn) {
	defer s.wg.Done()
	defer tc.Close()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("hs2sim: connection panic", "panic", r)
		}
	}()
	var conn net.Conn = tc
	if s.cfg.TLS != nil {
		tlsConn := tls.Server(tc, s.cfg.TLS)
		hctx, cancel := context.WithTimeout(tc.ctx, 30*time.Second)
		err := tlsConn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return
		}
		conn = tlsConn
	}
	sock := thrift.NewTSocketFromConnConf(conn, s.tconf)
	var trans thrift.TTransport
	ci := connInfo{id: tc.id}
	wait := func() error {
		if err := s.faults.gate(tc.ctx, s.stop); err != nil || s.isCrashed() {
			return errors.New("hs2sim: abandoned")
		}
		return nil
	}
	switch s.cfg.Auth {
	case "nosasl":
		trans = thrift.NewTBufferedTransport(sock, 64<<10)
	case "kerberos":
		r := bufio.NewReaderSize(conn, 64<<10)
		principal, layer, err := s.gssapiHandshake(r, conn, wait)
		if err != nil {
			return
		}
		ci.user = shortName(principal)
		trans = &framedTransport{sock: sock, conn: conn, r: r, maxFrame: maxMessage, layer: layer}
	default:
		r := bufio.NewReaderSize(conn, 64<<10)
		user, err := saslHandshake(r, conn, s.passwordCheck(), wait)
		if err != nil {
			return
		}
		ci.user = user
		trans = &framedTransport{sock: sock, conn: conn, r: r, maxFrame: maxMessage}
	}
	proto := thrift.NewTBinaryProtocolConf(trans, s.tconf)
	ctx := context.WithValue(tc.ctx, connKey{}, ci)
	for {
		// As thrift's TSimpleServer: go on after an answered call (even an
		// answered exception or unknown method), stop on a broken stream.
		ok, err := s.proc.Process(ctx, proto, proto)
		if errors.Is(err, thrift.ErrAbandonRequest) {
			tc.reset()
			return
		}
		var ae thrift.TApplicationException
		if !ok && !(errors.As(err, &ae) && ae.TypeId() == thrift.UNKNOWN_METHOD) {
			return
		}
	}
}

// passwordCheck validates logins in ldap mode; nil accepts anyone.
func (s *Server) passwordCheck() func(user, pass string) bool {
	if s.cfg.Auth != "ldap" {
		return nil
	}
	return func(user, pass string) bool {
		want, ok := s.cfg.Users[user]
		return ok && want == pass
	}
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		OpenSessions:        len(s.sessions),
		OpenOperations:      len(s.ops),
		OpenConnections:     len(s.conns),
		SessionsOpened:      s.sessionsOpened.Load(),
		OperationsOpened:    s.operationsOpened.Load(),
		OperationsCancelled: s.operationsCancelled.Load(),
		KerberosLogins:      s.kerberosLogins.Load(),
		HeldOpens:           s.faults.held(),
	}
}

// dropState closes the listener and every connection (reset when hard),
// and forgets every session. s.mu must not be held.
func (s *Server) dropState(hard bool) {
	s.mu.Lock()
	ln, hs := s.ln, s.httpSrv
	s.ln, s.httpSrv = nil, nil
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	if hs != nil {
		if hard {
			_ = hs.Close()
		} else {
			// Let in-flight handlers finish: they end promptly once the
			// server context is cancelled.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if hs.Shutdown(ctx) != nil {
				_ = hs.Close()
			}
			cancel()
		}
	}
	for _, c := range conns {
		if hard {
			c.reset()
		} else {
			c.Close()
		}
	}
	for _, sess := range sessions {
		s.closeSession(sess)
	}
}

// Close stops the server gracefully: deregisters from ZooKeeper, closes
// the listener, connections, sessions and operations. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.reg != nil {
			s.closeErr = s.reg.close()
		}
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.dropState(false)
		s.wg.Wait()
		s.bg.Wait()
		s.eng.close()
		s.log.Info("hs2sim closed", "addr", s.Addr())
	})
	return s.closeErr
}

// Crash simulates a killed JVM: the port refuses connections, live ones are
// reset, every session is gone, but the ZooKeeper session and znode stay
// until ZooKeeper expires them (here: until Heal or Close).
func (s *Server) Crash() {
	s.mu.Lock()
	if s.crashed || s.closed {
		s.mu.Unlock()
		return
	}
	s.crashed = true
	s.mu.Unlock()
	s.dropState(true)
	s.log.Info("hs2sim crashed", "addr", s.Addr())
}

// Hang makes the server accept connections and read requests but never
// answer until Heal.
func (s *Server) Hang() { s.faults.setHang() }

// HoldOpenSessions makes every OpenSession wait, unanswered, until Heal
// (or a crash), while calls on open sessions go on: a server whose session
// start is stuck.
func (s *Server) HoldOpenSessions() { s.faults.setHoldOpen() }

// Pause stalls every call for d and then resumes (a GC pause); Heal ends
// it early.
func (s *Server) Pause(d time.Duration) { s.faults.pause(d) }

// SetSlow delays every call by d.
func (s *Server) SetSlow(d time.Duration) {
	s.faults.mu.Lock()
	s.faults.slow = d
	s.faults.mu.Unlock()
}

// FailQueries makes SELECTs end in ERROR_STATE with a runtime (08S01)
// error.
func (s *Server) FailQueries(on bool) {
	s.faults.mu.Lock()
	s.faults.fail = on
	s.faults.mu.Unlock()
}

// DropAfterRows drops a client's connection once its session has fetched n
// rows: the fetch reaching n returns exactly up to n, the next request is
// answered by a reset. 0 turns it off.
func (s *Server) DropAfterRows(n int64) {
	s.faults.mu.Lock()
	s.faults.dropAfter = max(n, 0)
	s.faults.mu.Unlock()
}

// SetPacing limits synthetic tables to rowsPerSecond rows per second per
// operation (0 = unlimited); a session's hs2sim.rows_per_second overrides.
func (s *Server) SetPacing(rowsPerSecond int64) {
	s.faults.mu.Lock()
	s.faults.rate = max(rowsPerSecond, 0)
	s.faults.mu.Unlock()
}

// SetFetchDelay delays every fetch from a synthetic table by d; a session's
// hs2sim.fetch_delay_ms overrides.
func (s *Server) SetFetchDelay(d time.Duration) {
	s.faults.mu.Lock()
	s.faults.fetchDelay = max(d, 0)
	s.faults.mu.Unlock()
}

// Deregister removes the znode and keeps serving, as HS2's
// "hiveserver2 --deregister" does for a graceful drain.
func (s *Server) Deregister() error {
	if s.reg == nil {
		return errors.New("hs2sim: not registered in ZooKeeper")
	}
	return s.reg.deregister()
}

// Register re-adds the znode after Deregister.
func (s *Server) Register() error {
	if s.reg == nil {
		return errors.New("hs2sim: not registered in ZooKeeper")
	}
	return s.reg.register()
}

// SetActive switches an ha-mode server between active and passive: the
// instance record's endpoint and the _LEADER latch follow; a server going
// passive closes its sessions, as HS2 does on losing leadership.
func (s *Server) SetActive(active bool) error {
	if !s.haMode() {
		return errors.New("hs2sim: SetActive needs ha mode")
	}
	if s.active.Swap(active) && !active {
		s.mu.Lock()
		sessions := make([]*session, 0, len(s.sessions))
		for _, sess := range s.sessions {
			sessions = append(sessions, sess)
		}
		s.mu.Unlock()
		for _, sess := range sessions {
			s.closeSession(sess)
		}
	}
	if s.reg != nil {
		return s.reg.setActive(active)
	}
	return nil
}

// Heal clears crash, hang, slow, failing queries and dropping; after a
// Crash the server listens again on the same port.
func (s *Server) Heal() {
	s.faults.heal()
	s.mu.Lock()
	crashed := s.crashed && !s.closed
	s.mu.Unlock()
	if !crashed {
		return
	}
	ln, err := listenRetry(s.bind)
	if err != nil {
		s.log.Error("hs2sim: heal: re-listen", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.crashed || s.closed {
		ln.Close() // healed or closed meanwhile
		return
	}
	s.crashed = false
	s.serve(ln)
	s.log.Info("hs2sim healed", "addr", s.Addr())
}

// listenRetry listens on addr, retrying briefly while the old socket's
// port is still being released.
func listenRetry(addr string) (net.Listener, error) {
	var err error
	for i := 0; i < 50; i++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}
