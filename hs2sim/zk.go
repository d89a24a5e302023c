package hs2sim

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hiveqd/hiveqd/internal/zkconn"
)

// registration is what the server publishes in ZooKeeper.
type registration struct {
	servers   []string
	ns        string
	ha        bool
	digest    string
	timeout   time.Duration
	host      string
	port      int
	transport string
	httpPath  string
	auth      string // NONE | NOSASL | LDAP | KERBEROS
	principal string // KERBEROS: hive.server2.authentication.kerberos.principal
	qop       string // hive.server2.thrift.sasl.qop
	tls       bool
	version   string
	active    bool
	uniqueID  string
	log       *slog.Logger
}

func (s *Server) registration() registration {
	host := s.cfg.AdvertiseHost
	if host == "" {
		host = s.host
		// On all addresses, HS2 publishes its canonical host name.
		if bh, _, _ := net.SplitHostPort(s.bind); bh == "" || net.ParseIP(bh).IsUnspecified() {
			if hn, err := os.Hostname(); err == nil {
				host = hn
			}
		}
	}
	return registration{
		servers: s.cfg.ZK, ns: s.cfg.ZKNamespace, ha: s.haMode(), digest: s.cfg.ZKDigest,
		timeout: s.cfg.ZKSessionTimeout, host: host, port: s.port, transport: s.cfg.Transport,
		httpPath: s.cfg.HTTPPath, auth: strings.ToUpper(s.cfg.Auth), tls: s.cfg.TLS != nil,
		principal: s.cfg.PublishedPrincipal, qop: cmp.Or(s.cfg.SASLQOP, "auth"),
		version: s.cfg.Version, active: s.active.Load(), uniqueID: uuidString(newUUIDSlice()), log: s.log,
	}
}

// uri is hive.server2.instance.uri: host:port.
func (r registration) uri() string { return net.JoinHostPort(r.host, strconv.Itoa(r.port)) }

// confs are the settings HS2 publishes (HiveServer2.addConfsToPublish).
func (r registration) confs() [][2]string {
	// The order is the iteration order of the Java HashMap HS2 joins, so the
	// znode data reads exactly like a real HS2's.
	c := [][2]string{
		{"hive.server2.instance.uri", r.uri()},
		{"hive.server2.authentication", r.auth},
		{"hive.server2.transport.mode", r.transport},
	}
	if r.transport == "http" {
		c = append(c, [2]string{"hive.server2.thrift.http.path", r.httpPath},
			[2]string{"hive.server2.thrift.http.port", strconv.Itoa(r.port)},
			[2]string{"hive.server2.thrift.bind.host", r.host})
	} else {
		c = append(c, [2]string{"hive.server2.thrift.sasl.qop", r.qop},
			[2]string{"hive.server2.thrift.bind.host", r.host},
			[2]string{"hive.server2.thrift.port", strconv.Itoa(r.port)})
	}
	c = append(c, [2]string{"hive.server2.use.SSL", strconv.FormatBool(r.tls)})
	if r.auth == "KERBEROS" {
		// Its HashMap bucket comes after use.SSL's.
		c = append(c, [2]string{"hive.server2.authentication.kerberos.principal", r.principal})
	}
	return c
}

// plainData is a plain-mode znode's data: the confs as k=v;k=v.
func (r registration) plainData() []byte {
	var parts []string
	for _, kv := range r.confs() {
		parts = append(parts, kv[0]+"="+kv[1])
	}
	return []byte(strings.Join(parts, ";"))
}

// plainPrefix is the plain-mode znode path before ZooKeeper's sequence.
func (r registration) plainPrefix() string {
	return "/" + r.ns + "/serverUri=" + r.uri() + ";version=" + r.version + ";sequence="
}

// haRoot is HS2ActivePassiveHARegistry's namespace: <ns>-sasl with
// Kerberos, else <ns>-unsecure.
func (r registration) haRoot() string {
	if r.auth == "KERBEROS" {
		return "/" + r.ns + "-sasl"
	}
	return "/" + r.ns + "-unsecure"
}

// haRecord is the Hadoop registry ServiceRecord JSON of an HA instance: an
// internal endpoint named activeEndpoint or passiveEndpoint, and the
// published confs as top-level attributes.
func (r registration) haRecord(active bool) []byte {
	api := "passiveEndpoint"
	if active {
		api = "activeEndpoint"
	}
	attrs := map[string]string{
		"hive.server2.webui.port": "0",
		"registry.unique.id":      r.uniqueID,
	}
	for _, kv := range r.confs() {
		attrs[kv[0]] = kv[1]
	}
	type endpoint struct {
		API          string              `json:"api"`
		AddressType  string              `json:"addressType"`
		ProtocolType string              `json:"protocolType"`
		Addresses    []map[string]string `json:"addresses"`
	}
	ep := []endpoint{{API: api, AddressType: "host/port", ProtocolType: "hadoop/IPC",
		Addresses: []map[string]string{{"host": r.host, "port": strconv.Itoa(r.port)}}}}
	var b bytes.Buffer
	b.WriteString(`{"type":"JSONServiceRecord","external":[],"internal":`)
	j, _ := json.Marshal(ep)
	b.Write(j)
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kj, _ := json.Marshal(k)
		vj, _ := json.Marshal(attrs[k])
		b.WriteByte(',')
		b.Write(kj)
		b.WriteByte(':')
		b.Write(vj)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// registrar keeps the server's znodes in ZooKeeper, re-creating them after
// a session expiry as HS2's PersistentNode does.
type registrar struct {
	reg  registration
	conn *zk.Conn
	acl  []zk.ACL
	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	want   bool // registered (not deregistered)
	active bool
	node   string // the instance znode, "" when none
	latch  string // ha: the _LEADER latch znode, "" when none
	closed bool
}

type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("zookeeper: " + fmt.Sprintf(format, args...))
}

func startRegistrar(ctx context.Context, reg registration) (*registrar, error) {
	r := &registrar{reg: reg, kick: make(chan struct{}, 1), done: make(chan struct{}), want: true, active: reg.active}
	conn, _, err := zk.Connect(reg.servers, reg.timeout, zk.WithLogger(zkLogger{reg.log}), zk.WithLogInfo(false),
		zk.WithDialer(cappedDialer(reg.timeout)),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				select {
				case r.kick <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("hs2sim: zookeeper: %w", err)
	}
	r.conn = conn
	r.acl = zk.WorldACL(zk.PermAll)
	if reg.digest != "" {
		// Creator gets everything, the world may read: what HS2 sets on a
		// secured ensemble.
		r.acl = append(zk.AuthACL(zk.PermAll), zk.WorldACL(zk.PermRead)...)
	}
	// The first registration must finish within ctx; go-zookeeper calls
	// have no context, so closing the connection is what aborts them.
	first := make(chan error, 1)
	go func() {
		if reg.digest != "" {
			if err := conn.AddAuth("digest", []byte(reg.digest)); err != nil {
				first <- err
				return
			}
		}
		first <- r.reconcile()
	}()
	select {
	case err = <-first:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("hs2sim: zookeeper registration: %w", err)
	}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// loop re-checks the registration after every (re)established session.
func (r *registrar) loop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.done:
			return
		case <-r.kick:
		}
		for {
			err := r.reconcile()
			if err == nil {
				break
			}
			r.reg.log.Warn("hs2sim: zookeeper re-registration", "err", err)
			select {
			case <-r.done:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

func (r *registrar) ensure(path string, container bool) error {
	p := ""
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		p += "/" + part
		var err error
		if container {
			_, err = r.conn.CreateContainer(p, nil, zk.FlagContainer, r.acl)
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				// Ensembles before 3.5 have no containers.
				_, err = r.conn.Create(p, nil, zk.FlagPersistent, r.acl)
			}
		} else {
			_, err = r.conn.Create(p, nil, zk.FlagPersistent, r.acl)
		}
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

func (r *registrar) exists(path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	ok, _, err := r.conn.Exists(path)
	return ok, err
}

func (r *registrar) remove(path string) error {
	if path == "" {
		return nil
	}
	if err := r.conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

// reconcile makes ZooKeeper match what the server wants: its instance
// znode (and in ha mode its leader latch while active) present or gone.
func (r *registrar) reconcile() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if !r.want {
		if err := r.remove(r.latch); err != nil {
			return err
		}
		r.latch = ""
		if err := r.remove(r.node); err != nil {
			return err
		}
		r.node = ""
		return nil
	}
	ok, err := r.exists(r.node)
	if err != nil {
		return err
	}
	if !ok {
		r.node = ""
		if r.reg.ha {
			if err := r.ensure(r.reg.haRoot()+"/instances", true); err != nil {
				return err
			}
			r.node, err = r.conn.Create(r.reg.haRoot()+"/instances/instance-", r.reg.haRecord(r.active), zk.FlagEphemeralSequential, r.acl)
		} else {
			if err := r.ensure("/"+r.reg.ns, false); err != nil {
				return err
			}
			r.node, err = r.conn.Create(r.reg.plainPrefix(), r.reg.plainData(), zk.FlagEphemeralSequential, r.acl)
		}
		if err != nil {
			return fmt.Errorf("create instance znode: %w", err)
		}
		r.reg.log.Info("hs2sim: registered in zookeeper", "znode", r.node)
	}
	if !r.reg.ha {
		return nil
	}
	if !r.active {
		err := r.remove(r.latch)
		if err == nil {
			r.latch = ""
		}
		return err
	}
	if ok, err = r.exists(r.latch); err != nil || ok {
		return err
	}
	if err := r.ensure(r.reg.haRoot()+"/_LEADER", true); err != nil {
		return err
	}
	// Curator LeaderLatch: a protected ephemeral sequential "latch-" node
	// whose data is the participant id; the lowest sequence leads.
	r.latch, err = r.conn.Create(r.reg.haRoot()+"/_LEADER/_c_"+uuidString(newUUIDSlice())+"-latch-",
		[]byte(r.reg.uniqueID), zk.FlagEphemeralSequential, r.acl)
	if err != nil {
		r.latch = ""
		return fmt.Errorf("create leader latch: %w", err)
	}
	return nil
}

func (r *registrar) register() error {
	r.mu.Lock()
	r.want = true
	r.mu.Unlock()
	return r.retry(r.reconcile)
}

func (r *registrar) deregister() error {
	r.mu.Lock()
	r.want = false
	r.mu.Unlock()
	return r.retry(r.reconcile)
}

// setActive rewrites the instance record's endpoint and takes or releases
// the leader latch.
func (r *registrar) setActive(active bool) error {
	r.mu.Lock()
	r.active = active
	r.mu.Unlock()
	return r.retry(func() error {
		r.mu.Lock()
		node := r.node
		r.mu.Unlock()
		if node != "" {
			if _, err := r.conn.Set(node, r.reg.haRecord(active), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return err
			}
		}
		return r.reconcile()
	})
}

// zkRetryFor bounds how long a registration change waits for ZooKeeper to
// come back.
const zkRetryFor = 30 * time.Second

// retry runs op again while it fails for want of a connection, as HS2's
// Curator client retries an operation that met a connection loss:
// go-zookeeper fails a request made while it is between connections (with
// ErrNoServer at each failed round of its server list, or
// ErrConnectionClosed), even when the server is back a moment later.
func (r *registrar) retry(op func() error) error {
	deadline := time.Now().Add(zkRetryFor)
	wait := 100 * time.Millisecond
	for {
		err := op()
		if err == nil || !zkConnLost(err) || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-r.done:
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// zkConnLost reports errors after which an operation may not have been
// done and is worth trying again on the next connection or session.
func zkConnLost(err error) bool {
	return errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrConnectionClosed) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved)
}

// cappedDialer dials ZooKeeper with every I/O deadline go-zookeeper sets
// bounded by the session timeout (zkconn), as HS2's Java client and
// hiveqd's registry give up on a silent server.
func cappedDialer(limit time.Duration) zk.Dialer {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		return &zkconn.Capped{Conn: c, Limit: limit}, nil
	}
}

// close deletes the znodes (bounded: ZooKeeper may be down) and ends the
// ZooKeeper session.
func (r *registrar) close() error {
	r.mu.Lock()
	r.want = false
	r.mu.Unlock()
	res := make(chan error, 1)
	go func() { res <- r.reconcile() }()
	var err error
	timedOut := false
	select {
	case err = <-res:
	case <-time.After(3 * time.Second):
		err, timedOut = errors.New("hs2sim: zookeeper deregistration timed out"), true
	}
	close(r.done)
	// Closing the connection fails any call still waiting for ZooKeeper.
	r.conn.Close()
	if timedOut {
		<-res
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
	if err != nil {
		return fmt.Errorf("hs2sim: zookeeper deregistration: %w", err)
	}
	return nil
}
