package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"path"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hiveqd/hiveqd/internal/zkconn"
)

// Default namespaces, as HS2 and Hive's JDBC driver default them.
const (
	DefaultNamespace   = "hiveserver2"        // hive.server2.zookeeper.namespace
	DefaultHANamespace = "hs2ActivePassiveHA" // hive.server2.active.passive.ha.registry.namespace
)

// ZKConfig configures ZooKeeper discovery.
type ZKConfig struct {
	// Servers are host:port ZooKeeper addresses. An entry may also be a
	// comma-separated connect string, optionally ending in a /chroot.
	Servers []string
	// Namespace is hive.server2.zookeeper.namespace (default hiveserver2), or
	// for zookeeper-ha hive.server2.active.passive.ha.registry.namespace
	// (default hs2ActivePassiveHA): with a -unsecure or -sasl suffix only that
	// tree is read, without one both are.
	Namespace string
	Chroot    string // prefix of every path, e.g. /hive
	// Digest is "user:password" for ZooKeeper digest authentication, needed
	// when the registrations carry digest ACLs.
	Digest string
	// TLS, when set, dials ZooKeeper's secure client port.
	TLS *tls.Config
	// SessionTimeout is our ZooKeeper session's timeout; the server bounds
	// it to [2,20] ticks. Default 10s.
	SessionTimeout time.Duration
	Logger         *slog.Logger
	// Overrides force transport, auth, HTTP path or TLS over what servers
	// publish.
	Overrides EndpointOverrides
}

const defaultSessionTimeout = 10 * time.Second

// NewZooKeeper discovers HS2 instances registered with dynamic service
// discovery: the children of /<namespace>.
func NewZooKeeper(cfg ZKConfig) Discovery { return &zkDiscovery{cfg: cfg} }

// NewZooKeeperHA discovers the HS2 Interactive active/passive registry; only
// the leader's record is Active.
func NewZooKeeperHA(cfg ZKConfig) Discovery { return &zkDiscovery{cfg: cfg, ha: true} }

type zkDiscovery struct {
	cfg ZKConfig
	ha  bool
	statusBox
	sessions atomic.Int64 // ZooKeeper sessions established (for tests)
	armCalls atomic.Int64 // watches armed: ChildrenW, ExistsW, GetW (for tests)
}

// dirCache mirrors one watched znode's children and their data.
type dirCache struct {
	path     string
	listed   bool // children read and child watch armed
	armed    bool // a child (or exists) watch on path is armed
	exists   bool
	children map[string]*childData
}

type childData struct {
	data   []byte
	err    error // reading the data failed (e.g. no read permission)
	loaded bool
	armed  bool // its data watch is armed
}

// watchState collects what ZooKeeper told us since the last sync; the event
// callback fills it (it must not block) and the sync loop drains it.
type watchState struct {
	mu    sync.Mutex
	full  bool            // session (re-)established or watches lost: re-read everything
	lost  bool            // watches dropped (session expired, NotWatching): arm them all again
	dirty map[string]bool // paths whose watch fired
	wake  chan struct{}
}

func (w *watchState) onEvent(ev zk.Event) {
	w.mu.Lock()
	switch ev.Type {
	case zk.EventSession:
		if ev.State == zk.StateHasSession || ev.State == zk.StateExpired {
			w.full = true
		}
		if ev.State == zk.StateExpired {
			w.lost = true
		}
	case zk.EventNotWatching:
		w.full, w.lost = true, true
	default:
		if w.dirty == nil {
			w.dirty = map[string]bool{}
		}
		w.dirty[ev.Path] = true
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watchState) take() (full, lost bool, dirty map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	full, lost, dirty = w.full, w.lost, w.dirty
	w.full, w.lost, w.dirty = false, false, nil
	return full, lost, dirty
}

// putBack restores flags a failed sync consumed, so the retry redoes them.
func (w *watchState) putBack(full, lost bool, dirty map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.full = w.full || full
	w.lost = w.lost || lost
	if len(dirty) > 0 && w.dirty == nil {
		w.dirty = map[string]bool{}
	}
	for p := range dirty {
		w.dirty[p] = true
	}
}

func (d *zkDiscovery) logger() *slog.Logger {
	l := d.cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	mode := "zookeeper"
	if d.ha {
		mode = "zookeeper-ha"
	}
	return l.With("component", "registry", "discovery", mode)
}

// servers splits connect strings and takes a trailing /chroot off them.
func (d *zkDiscovery) servers() ([]string, string, error) {
	chroot := d.cfg.Chroot
	var out []string
	for _, s := range d.cfg.Servers {
		if i := strings.IndexByte(s, '/'); i >= 0 {
			if chroot == "" {
				chroot = s[i:]
			}
			s = s[:i]
		}
		for _, h := range strings.Split(s, ",") {
			if h = strings.TrimSpace(h); h != "" {
				out = append(out, h)
			}
		}
	}
	if len(out) == 0 {
		return nil, "", errors.New("registry: no ZooKeeper servers configured")
	}
	out = zk.FormatServers(out)
	for _, s := range out {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, "", fmt.Errorf("registry: ZooKeeper server %q: %w", s, err)
		}
	}
	chroot = path.Clean("/" + chroot)
	return out, chroot, nil
}

// roots are the registry trees to watch.
func (d *zkDiscovery) roots(chroot string) []string {
	ns := strings.Trim(d.cfg.Namespace, "/")
	if !d.ha {
		if ns == "" {
			ns = DefaultNamespace
		}
		return []string{path.Join(chroot, ns)}
	}
	if ns == "" {
		ns = DefaultHANamespace
	}
	if strings.HasSuffix(ns, "-unsecure") || strings.HasSuffix(ns, "-sasl") {
		return []string{path.Join(chroot, ns)}
	}
	return []string{path.Join(chroot, ns+"-unsecure"), path.Join(chroot, ns+"-sasl")}
}

// Run connects to ZooKeeper and calls update with the registered servers
// every time they change (and after every full resync) until ctx ends.
func (d *zkDiscovery) Run(ctx context.Context, update func([]Candidate)) error {
	servers, chroot, err := d.servers()
	if err != nil {
		return err
	}
	timeout := d.cfg.SessionTimeout
	if timeout <= 0 {
		timeout = defaultSessionTimeout
	}
	l := &zkLoop{d: d, log: d.logger(), servers: servers, update: update,
		authed: d.cfg.Digest == "", backoff: zkMinBackoff}
	l.dirs, l.source = d.caches(chroot)
	d.set(func(s *Status) {
		*s = Status{Source: strings.Join(l.source, ", "), Err: "not connected to ZooKeeper yet"}
	})

	ws := &watchState{wake: make(chan struct{}, 1)}
	conn, events, dl, err := d.connect(servers, timeout, ws, l.log)
	if err != nil {
		return err
	}
	l.conn = conn
	// Close cleanly (the server drops our session at once), then close the
	// sockets: that unblocks a handshake stuck on a blackholed server.
	closeAll := func() { conn.Close(); dl.shutdown() }
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { closeAll(); close(closed) })
	defer func() {
		if stop() {
			closeAll()
		} else {
			<-closed
		}
		for range events { // closed once go-zookeeper's goroutines are done
		}
	}()

	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ws.wake:
		case <-retry:
			retry = nil
		}
		if again := l.syncOnce(ws); again > 0 {
			retry = time.After(again)
		}
	}
}

// Backoff between failed attempts to authenticate or read.
const (
	zkMinBackoff = 100 * time.Millisecond
	zkMaxBackoff = 2 * time.Second
)

// caches are the znodes to mirror under chroot, and the source the status
// names.
func (d *zkDiscovery) caches(chroot string) (dirs []*dirCache, source []string) {
	for _, r := range d.roots(chroot) {
		if d.ha {
			dirs = append(dirs, &dirCache{path: r + "/instances"}, &dirCache{path: r + "/_LEADER"})
			source = append(source, r+"/instances")
		} else {
			dirs = append(dirs, &dirCache{path: r})
			source = append(source, r)
		}
	}
	return dirs, source
}

// connect starts a ZooKeeper session whose events go to ws.
func (d *zkDiscovery) connect(servers []string, timeout time.Duration, ws *watchState, log *slog.Logger) (*zk.Conn, <-chan zk.Event, *dialer, error) {
	dl := &dialer{tls: d.cfg.TLS, deadlineCap: timeout, conns: map[net.Conn]struct{}{}}
	conn, events, err := zk.Connect(servers, timeout,
		zk.WithHostProvider(&hostProvider{}),
		zk.WithDialer(dl.dial),
		zk.WithEventCallback(ws.onEvent),
		zk.WithLogger(zkLogger{log}),
		zk.WithLogInfo(false))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("registry: zookeeper: %w", err)
	}
	return conn, events, dl, nil
}

// zkLoop is the state of one Run's sync loop.
type zkLoop struct {
	d       *zkDiscovery
	log     *slog.Logger
	conn    *zk.Conn
	servers []string
	dirs    []*dirCache
	source  []string
	update  func([]Candidate)

	authed   bool
	last     []Candidate
	sent     bool
	backoff  time.Duration
	lastSess int64
	// saslRequired: the ensemble closes sessions that did not
	// authenticate with SASL; the status keeps saying so.
	saslRequired bool
}

// syncOnce brings the caches up to date with what ZooKeeper told us and
// sends the list when it changed. It returns when to retry a failure (zero:
// the next event wakes the loop).
func (l *zkLoop) syncOnce(ws *watchState) (retry time.Duration) {
	d, conn := l.d, l.conn
	if conn.State() != zk.StateHasSession {
		if !l.saslRequired {
			d.set(func(s *Status) { s.Err = "disconnected from ZooKeeper " + strings.Join(l.servers, ",") })
		}
		return 0 // the next StateHasSession event wakes us
	}
	if !l.authed {
		if err := conn.AddAuth("digest", []byte(d.cfg.Digest)); err != nil {
			l.log.Warn("zookeeper digest auth failed; retrying", "err", err)
			return l.nextBackoff()
		}
		l.authed = true
	}
	full, lost, dirty := ws.take()
	if sid := conn.SessionID(); sid != l.lastSess {
		if l.lastSess != 0 {
			l.log.Info("zookeeper session re-established; resyncing", "session", fmt.Sprintf("%#x", sid))
		}
		l.lastSess, full, lost = sid, true, true
		d.sessions.Add(1)
	}
	if err := d.sync(conn, l.dirs, full, lost, dirty); err != nil {
		ws.putBack(full, lost, dirty)
		l.syncFailed(err)
		return l.nextBackoff()
	}
	l.backoff, l.saslRequired = zkMinBackoff, false
	l.send(full)
	return 0
}

// nextBackoff is the delay before the next attempt, doubling up to a cap.
func (l *zkLoop) nextBackoff() time.Duration {
	b := l.backoff
	l.backoff = min(l.backoff*2, zkMaxBackoff)
	return b
}

// syncFailed puts a failed read in the status (and the log, once, when the
// ensemble demands SASL).
func (l *zkLoop) syncFailed(err error) {
	if zkRequiresSASL(err) {
		if !l.saslRequired {
			l.log.Error(errZKSASL.Error(), "servers", strings.Join(l.servers, ","))
		}
		l.saslRequired = true
		err = errZKSASL
	}
	l.d.set(func(s *Status) { s.Err = "reading ZooKeeper: " + err.Error() })
	l.log.Debug("zookeeper sync failed; will retry", "err", err)
}

// send hands the candidates to update when they changed, or after a full
// resync.
func (l *zkLoop) send(full bool) {
	cands, skipped, problems := l.d.candidates(l.dirs)
	l.d.set(func(s *Status) { s.Skipped, s.Problems, s.Err = skipped, problems, "" })
	changed := !l.sent || !reflect.DeepEqual(cands, l.last)
	if changed {
		l.log.Info("hiveserver2 registrations", "source", strings.Join(l.source, ", "), "count", len(cands), "skipped", skipped)
		for _, p := range problems {
			l.log.Warn("skipped registration", "problem", p)
		}
	}
	if changed || full {
		l.last, l.sent = cands, true
		l.update(cloneCandidates(cands))
	}
}

// errZKSASL is an ensemble that demands SASL of every client.
var errZKSASL = errors.New("ZooKeeper demands SASL (Kerberos) authentication from every client " +
	"(enforce.auth.enabled/enforce.auth.schemes=sasl or sessionRequireClientSASLAuth), which hiveqd's ZooKeeper client " +
	"(go-zookeeper) cannot do; HiveServer2's registrations, Kerberized ones included, are world-readable, " +
	"so allow unauthenticated clients on the ensemble hiveqd reads (or give hiveqd an observer that does)")

// zkRequiresSASL recognises ZooKeeper's SESSIONCLOSEDREQUIRESASLAUTH
// (-124), which go-zookeeper does not name.
func zkRequiresSASL(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unknown error: -124")
}

// isConnErr reports errors that mean "lost the connection, the session
// event will tell us when to retry" rather than something about a node.
func isConnErr(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrClosing) ||
		errors.Is(err, zk.ErrSessionMoved)
}

// sync re-reads what changed (everything when full) and re-arms the watches
// that fired (every watch when lost). A connection error aborts it; the
// caller retries it whole.
//
// A reconnect within the same session keeps the watches: the client library
// re-registers them with the server (SetWatches), and every watch call
// would add one more watcher to its list for the same path. So a full
// re-read after such a reconnect reads without watching where a watch is
// still armed; only a fired watch, or all of them after a session expiry,
// is armed again.
func (d *zkDiscovery) sync(conn *zk.Conn, dirs []*dirCache, full, lost bool, dirty map[string]bool) error {
	if lost {
		for _, dc := range dirs {
			dc.armed = false
			for _, c := range dc.children {
				c.armed = false
			}
		}
	}
	for _, dc := range dirs {
		if dirty[dc.path] {
			dc.armed = false
		}
		for name, c := range dc.children {
			if dirty[dc.path+"/"+name] {
				c.armed = false
			}
		}
		if err := d.syncDir(conn, dc, full, dirty); err != nil {
			return err
		}
	}
	return nil
}

func (d *zkDiscovery) syncDir(conn *zk.Conn, dc *dirCache, full bool, dirty map[string]bool) error {
	if full || dirty[dc.path] || !dc.listed {
		for {
			var names []string
			var err error
			if dc.armed && !dc.exists {
				// Its exists watch is still armed: look without watching.
				ok, _, err := conn.Exists(dc.path)
				if err != nil {
					return err
				}
				if !ok {
					dc.listed, dc.children = true, nil
					return nil
				}
				dc.armed = false // created: the exists watch fires; watch the children
			}
			if dc.armed && dc.exists {
				names, _, err = conn.Children(dc.path)
			} else {
				d.armCalls.Add(1)
				names, _, _, err = conn.ChildrenW(dc.path)
				if err == nil {
					dc.armed = true
				}
			}
			if errors.Is(err, zk.ErrNoNode) {
				// Not created yet (no HS2 ever registered): watch for it.
				d.armCalls.Add(1)
				ok, _, _, err := conn.ExistsW(dc.path)
				if err != nil {
					return err
				}
				if ok {
					dc.armed = false
					continue // created in between: list it (watching)
				}
				dc.armed = true
				dc.listed, dc.exists, dc.children = true, false, nil
				return nil
			}
			if err != nil {
				return fmt.Errorf("children of %s: %w", dc.path, err)
			}
			old := dc.children
			dc.listed, dc.exists, dc.children = true, true, make(map[string]*childData, len(names))
			for _, n := range names {
				switch c, ok := old[n]; {
				case ok && !full:
					dc.children[n] = c
				case ok:
					dc.children[n] = &childData{armed: c.armed} // re-read, its watch kept
				default:
					dc.children[n] = &childData{}
				}
			}
			break
		}
	}
	for name, c := range dc.children {
		p := dc.path + "/" + name
		if c.loaded && !full && !dirty[p] {
			continue
		}
		var data []byte
		var err error
		if c.armed {
			data, _, err = conn.Get(p)
		} else {
			d.armCalls.Add(1)
			data, _, _, err = conn.GetW(p)
			c.armed = err == nil
		}
		switch {
		case errors.Is(err, zk.ErrNoNode):
			// Deleted since the listing; the child watch fires and relists.
			delete(dc.children, name)
		case err != nil && isConnErr(err):
			return fmt.Errorf("data of %s: %w", p, err)
		case err != nil:
			*c = childData{err: err, loaded: true}
		default:
			*c = childData{data: data, loaded: true, armed: c.armed}
		}
	}
	return nil
}

// candidates turns the caches into the sorted candidate list, counting and
// describing what had to be skipped.
func (d *zkDiscovery) candidates(dirs []*dirCache) ([]Candidate, int, []string) {
	var out []Candidate
	var problems []string
	skip := func(p, format string, args ...any) {
		problems = append(problems, p+": "+fmt.Sprintf(format, args...))
	}
	if !d.ha {
		for _, dc := range dirs {
			for name, c := range dc.children {
				p := dc.path + "/" + name
				nn, err := ParseNodeName(name)
				if err != nil {
					skip(p, "malformed name: %v", err)
					continue
				}
				if c.err != nil {
					skip(p, "unreadable: %v", c.err)
					continue
				}
				kv, err := ParseNodeData(c.data)
				if err != nil {
					skip(p, "malformed data: %v", err)
					continue
				}
				ep, err := endpointFromData(kv, nn.Host, nn.Port, false, d.cfg.Overrides)
				if err != nil {
					skip(p, "malformed data: %v", err)
					continue
				}
				out = append(out, Candidate{Endpoint: ep, Node: p, Seq: nn.Seq, Version: nn.Version,
					Active: true, Principal: kv[KeyPrincipal], Data: kv})
			}
		}
	} else {
		for i := 0; i+1 < len(dirs); i += 2 {
			inst, latch := dirs[i], dirs[i+1]
			leader, known := latchLeader(latch)
			for name, c := range inst.children {
				p := inst.path + "/" + name
				if !strings.HasPrefix(name, "instance-") {
					continue // not a registration (Hive ignores these too)
				}
				seq, err := parseInstanceSeq(name)
				if err != nil {
					skip(p, "malformed name: %v", err)
					continue
				}
				if c.err != nil {
					skip(p, "unreadable: %v", c.err)
					continue
				}
				rec, err := parseServiceRecord(c.data)
				if err != nil {
					skip(p, "malformed record: %v", err)
					continue
				}
				ep, err := endpointFromData(rec.Attrs, rec.Host, rec.Port, true, d.cfg.Overrides)
				if err != nil {
					skip(p, "malformed record: %v", err)
					continue
				}
				// The record says activeEndpoint; the latch must agree, so a
				// demoted leader that has not rewritten its record yet is
				// not taken for the active one.
				active := rec.Active && (!known || (leader != "" && rec.UniqueID == leader))
				out = append(out, Candidate{Endpoint: ep, Node: p, Seq: seq, Active: active,
					Principal: rec.Attrs[KeyPrincipal], Data: rec.Attrs})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seq != out[j].Seq {
			return out[i].Seq < out[j].Seq
		}
		return out[i].Node < out[j].Node
	})
	sort.Strings(problems)
	return out, len(problems), problems
}

// latchLeader returns the id in the lowest-sequence latch znode, as Curator's
// LeaderLatch elects it. known is false when there is no latch to consult
// (no _LEADER znode, or its data unreadable): records alone decide then.
func latchLeader(dc *dirCache) (leader string, known bool) {
	if !dc.exists {
		return "", false
	}
	best, bestSeq := "", int64(-1)
	for name := range dc.children {
		s, ok := latchSeq(name)
		if !ok {
			continue
		}
		if bestSeq < 0 || s < bestSeq {
			best, bestSeq = name, s
		}
	}
	if best == "" {
		return "", true // a latch with no participants: nobody leads
	}
	c := dc.children[best]
	if c.err != nil || len(c.data) == 0 {
		return "", false
	}
	return string(c.data), true
}

// hostProvider keeps server names as given (go-zookeeper's default resolves
// them once, which breaks TLS name checks and misses DNS changes).
type hostProvider struct {
	mu         sync.Mutex
	servers    []string
	curr, last int
}

func (h *hostProvider) Init(servers []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers = append([]string(nil), servers...)
	rand.Shuffle(len(h.servers), func(i, j int) { h.servers[i], h.servers[j] = h.servers[j], h.servers[i] })
	h.curr, h.last = -1, -1
	return nil
}

func (h *hostProvider) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

func (h *hostProvider) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.curr = (h.curr + 1) % len(h.servers)
	retryStart := h.curr == h.last
	if h.last == -1 {
		h.last = 0
	}
	return h.servers[h.curr], retryStart
}

func (h *hostProvider) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = h.curr
}

// dialer dials ZooKeeper (over TLS when configured) and tracks the
// connections so shutdown can close them.
type dialer struct {
	tls *tls.Config
	// deadlineCap bounds every I/O deadline go-zookeeper sets: it waits ten
	// receive timeouts for a handshake answer, far longer than a session.
	deadlineCap time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (d *dialer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, zk.ErrClosing
	}
	nd := &net.Dialer{Timeout: timeout}
	var c net.Conn
	var err error
	if d.tls != nil {
		c, err = tls.DialWithDialer(nd, network, addr, d.tls)
	} else {
		c, err = nd.Dial(network, addr)
	}
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Capped: zkconn.Capped{Conn: c, Limit: d.deadlineCap}, d: d}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return nil, zk.ErrClosing
	}
	d.conns[tc] = struct{}{}
	d.mu.Unlock()
	return tc, nil
}

func (d *dialer) shutdown() {
	d.mu.Lock()
	d.closed = true
	conns := d.conns
	d.conns = map[net.Conn]struct{}{}
	d.mu.Unlock()
	for c := range conns {
		c.(*trackedConn).Conn.Close()
	}
}

type trackedConn struct {
	zkconn.Capped
	d *dialer
}

func (c *trackedConn) Close() error {
	c.d.mu.Lock()
	delete(c.d.conns, c)
	c.d.mu.Unlock()
	return c.Conn.Close()
}

// zkLogger sends go-zookeeper's chatter (a line per reconnect attempt) to
// debug; state changes that matter are logged by the discovery itself.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug("go-zookeeper: " + fmt.Sprintf(format, args...))
}
