// Package kerberos is hiveqd's own Kerberos identity: it logs in from a
// keytab (or takes the TGT from a ticket cache, KRB5CCNAME), gets service
// tickets for HS2's principals, renews or logs in again before tickets
// expire, and turns KDC failures into errors that say what to check.
//
// It drives gokrb5's KDC exchanges itself instead of gokrb5's Login: that
// keeps the time source injectable (a daemon runs for months; tests move a
// fake clock past a ticket's lifetime) and starts no background goroutine.
// Tickets are refreshed when used, at 80% of their lifetime as Hadoop's
// UserGroupInformation does, so an idle hiveqd holds no stale state: a
// TGT past its end is replaced by a new login from the keytab.
package kerberos

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// DefaultKrb5Conf is used when neither --krb5-conf nor KRB5_CONFIG is set.
const DefaultKrb5Conf = "/etc/krb5.conf"

// refreshFraction of a ticket's lifetime passes before it is replaced.
const refreshFraction = 0.8

// kdcTimeResolution is KerberosTime's resolution: whole seconds. gokrb5
// checks a KDC reply's authtime (AS) or starttime (TGS) against the
// nanosecond clock with krb5.conf's clockskew, so a reply stamped late in
// one second and read early in the next looks up to a second older than it
// is: with clockskew = 1s, a KDC on this very clock was refused ("clock
// skew with KDC too large") whenever a reply took longer than what was left
// of its second. MIT compares whole seconds; giving gokrb5 one more second
// of skew does the same.
const kdcTimeResolution = time.Second

// Config is hiveqd's identity: the top-level `kerberos:` block.
type Config struct {
	// Principal is hiveqd's own principal, name/host@REALM. Required with a
	// keytab; with a ticket cache it defaults to the cache's principal.
	Principal string
	// Keytab holds Principal's keys. Empty: use the ticket cache.
	Keytab string
	// Krb5Conf is krb5.conf; empty: $KRB5_CONFIG, else /etc/krb5.conf.
	Krb5Conf string
	// CCache is the ticket cache used without a keytab; empty: $KRB5CCNAME,
	// else /tmp/krb5cc_<uid>.
	CCache string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Getenv reads the environment; nil is os.Getenv.
	Getenv func(string) string
}

// Ticket is a service ticket and what an AP-REQ needs with it.
type Ticket struct {
	Ticket     messages.Ticket
	SessionKey types.EncryptionKey
	CName      types.PrincipalName
	Realm      string
	EndTime    time.Time
}

type held struct {
	tkt                        messages.Ticket
	key                        types.EncryptionKey
	start, end, renewTill, due time.Time
}

func newHeld(tkt messages.Ticket, key types.EncryptionKey, auth, start, end, renewTill time.Time) *held {
	if start.IsZero() {
		start = auth
	}
	due := start.Add(time.Duration(float64(end.Sub(start)) * refreshFraction))
	return &held{tkt: tkt, key: key, start: start, end: end, renewTill: renewTill, due: due}
}

// Identity is a logged-in (or ready to log in) principal. Safe for
// concurrent use; KDC exchanges are serialized.
type Identity struct {
	cfg    Config
	now    func() time.Time
	krb5   *config.Config // krb5.conf, its clockskew widened for gokrb5 (kdcTimeResolution)
	kt     *keytab.Keytab
	ccache string
	cname  types.PrincipalName
	realm  string
	cl     *client.Client

	mu     sync.Mutex
	tgt    *held
	svc    map[string]*held
	logins int // AS exchanges or cache loads so far (tests)
	renews int // TGT renewals so far (tests)
}

// New loads krb5.conf and the keytab (or finds the ticket cache) and
// checks the principal; it does not contact the KDC (Login does).
func New(cfg Config) (*Identity, error) {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	id := &Identity{cfg: cfg, now: cfg.Now, svc: map[string]*held{}}
	if id.now == nil {
		id.now = time.Now
	}
	path := Krb5ConfPath(cfg.Krb5Conf, cfg.Getenv)
	kc, err := config.Load(path)
	if err != nil {
		// gokrb5 returns a usable config with an error for directives it does
		// not know; only an unreadable file is fatal.
		var uerr config.UnsupportedDirective
		if !errors.As(err, &uerr) || kc == nil {
			return nil, fmt.Errorf("kerberos: krb5.conf %s: %w (set --krb5-conf or KRB5_CONFIG)", path, err)
		}
	}
	// gokrb5 gets its own copy, with the skew widened by kdcTimeResolution.
	gc := *kc
	gc.LibDefaults.Clockskew += kdcTimeResolution
	id.krb5 = &gc
	if cfg.Keytab != "" {
		return id, id.initKeytab()
	}
	return id, id.initCCache()
}

// Krb5ConfPath resolves krb5.conf: the flag, else KRB5_CONFIG, else
// /etc/krb5.conf.
func Krb5ConfPath(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if p := getenv("KRB5_CONFIG"); p != "" {
		// MIT allows a colon-separated list; the first file is the main one.
		return strings.Split(p, ":")[0]
	}
	return DefaultKrb5Conf
}

func (id *Identity) initKeytab() error {
	if id.cfg.Principal == "" {
		return fmt.Errorf("kerberos: a keytab needs a principal (--kerberos-principal, e.g. hiveqd/host.example.com@EXAMPLE.COM)")
	}
	kt, err := keytab.Load(id.cfg.Keytab)
	if err != nil {
		return fmt.Errorf("kerberos: keytab %s: %w", id.cfg.Keytab, err)
	}
	id.kt = kt
	id.cname, id.realm = splitPrincipal(id.cfg.Principal)
	if id.realm == "" {
		id.realm = id.krb5.LibDefaults.DefaultRealm
	}
	if id.realm == "" {
		return fmt.Errorf("kerberos: principal %q has no realm and krb5.conf sets no default_realm", id.cfg.Principal)
	}
	if !keytabHas(kt, id.cname, id.realm) {
		return fmt.Errorf("kerberos: keytab %s has no key for %s: %w (list it with klist -kt)",
			id.cfg.Keytab, id.Principal(), ErrBadKeytab)
	}
	id.cl = client.NewWithKeytab(id.cname.PrincipalNameString(), id.realm, kt, id.krb5, client.DisablePAFXFAST(true))
	return nil
}

func keytabHas(kt *keytab.Keytab, cname types.PrincipalName, realm string) bool {
	for _, e := range kt.Entries {
		if e.Principal.Realm == realm && strings.Join(e.Principal.Components, "/") == cname.PrincipalNameString() {
			return true
		}
	}
	return false
}

func (id *Identity) initCCache() error {
	path := id.cfg.CCache
	if path == "" {
		path = id.cfg.Getenv("KRB5CCNAME")
	}
	if path == "" {
		path = fmt.Sprintf("/tmp/krb5cc_%d", os.Getuid())
	}
	if rest, ok := strings.CutPrefix(path, "FILE:"); ok {
		path = rest
	} else if i := strings.Index(path, ":"); i > 0 && !strings.HasPrefix(path, "/") {
		return fmt.Errorf("kerberos: ticket cache %q: only FILE: caches are supported; configure a keytab (--kerberos-keytab) instead", path)
	}
	id.ccache = path
	cc, err := credentials.LoadCCache(path)
	if err != nil {
		return fmt.Errorf("kerberos: no keytab configured and the ticket cache %s cannot be read: %w (run kinit, or set --kerberos-keytab)", path, err)
	}
	id.cname, id.realm = cc.DefaultPrincipal.PrincipalName, cc.DefaultPrincipal.Realm
	if id.cfg.Principal != "" {
		cn, realm := splitPrincipal(id.cfg.Principal)
		if cn.PrincipalNameString() != id.cname.PrincipalNameString() || (realm != "" && realm != id.realm) {
			return fmt.Errorf("kerberos: ticket cache %s holds %s, not the configured principal %s", path, id.Principal(), id.cfg.Principal)
		}
	}
	id.cl, err = client.NewFromCCache(cc, id.krb5, client.DisablePAFXFAST(true))
	if err != nil {
		return fmt.Errorf("kerberos: ticket cache %s: %w (run kinit)", path, err)
	}
	return nil
}

// splitPrincipal parses name/host@REALM.
func splitPrincipal(p string) (types.PrincipalName, string) {
	name, realm := p, ""
	if i := strings.LastIndex(p, "@"); i >= 0 {
		name, realm = p[:i], p[i+1:]
	}
	return types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, name), realm
}

// Principal is hiveqd's principal, name@REALM.
func (id *Identity) Principal() string { return id.cname.PrincipalNameString() + "@" + id.realm }

// Login gets a TGT now (hiveqd checks its identity at start-up).
func (id *Identity) Login() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.login()
}

func (id *Identity) login() error {
	if id.kt == nil {
		return id.loadCCache()
	}
	req, err := messages.NewASReqForTGT(id.realm, id.krb5, id.cname)
	if err != nil {
		return fmt.Errorf("kerberos: login as %s: %w", id.Principal(), err)
	}
	rep, err := id.cl.ASExchange(id.realm, req, 0)
	if err != nil {
		return id.explain("login as "+id.Principal(), "", err)
	}
	p := rep.DecryptedEncPart
	id.tgt = newHeld(rep.Ticket, p.Key, p.AuthTime, p.StartTime, p.EndTime, p.RenewTill)
	id.svc = map[string]*held{} // tickets from the old TGT stay valid, but start afresh
	id.logins++
	return nil
}

// loadCCache takes the TGT from the ticket cache file (re-read each time,
// so a kinit or k5start refreshing it is picked up).
func (id *Identity) loadCCache() error {
	cc, err := credentials.LoadCCache(id.ccache)
	if err != nil {
		return fmt.Errorf("kerberos: ticket cache %s: %w (run kinit, or set --kerberos-keytab)", id.ccache, err)
	}
	spn := types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", id.realm}}
	c, ok := cc.GetEntry(spn)
	if !ok {
		return fmt.Errorf("kerberos: ticket cache %s has no TGT for %s (run kinit)", id.ccache, id.realm)
	}
	var tkt messages.Ticket
	if err := tkt.Unmarshal(c.Ticket); err != nil {
		return fmt.Errorf("kerberos: ticket cache %s: bad TGT: %w", id.ccache, err)
	}
	if !id.now().Before(c.EndTime) {
		return fmt.Errorf("kerberos: %w: the TGT in ticket cache %s expired at %s; renew it (kinit -R, k5start) or set --kerberos-keytab so hiveqd logs in itself",
			ErrExpired, id.ccache, c.EndTime.UTC().Format(time.RFC3339))
	}
	id.tgt = newHeld(tkt, c.Key, c.AuthTime, c.StartTime, c.EndTime, c.RenewTill)
	id.logins++
	return nil
}

// ensureTGT renews or replaces the TGT once 80% of its life has passed.
func (id *Identity) ensureTGT() error {
	now := id.now()
	if id.tgt != nil && now.Before(id.tgt.due) {
		return nil
	}
	if id.tgt != nil && now.Before(id.tgt.end) && id.tgt.renewTill.After(id.tgt.end) && now.Before(id.tgt.renewTill) {
		if err := id.renewTGT(); err == nil {
			return nil
		}
		// A refused renewal falls through to a new login.
	}
	return id.login()
}

func (id *Identity) renewTGT() error {
	spn := types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", id.realm}}
	_, rep, err := id.cl.TGSREQGenerateAndExchange(spn, id.realm, id.tgt.tkt, id.tgt.key, true)
	if err != nil {
		return err
	}
	p := rep.DecryptedEncPart
	id.tgt = newHeld(rep.Ticket, p.Key, p.AuthTime, p.StartTime, p.EndTime, p.RenewTill)
	id.renews++
	return nil
}

// ServiceTicket returns a ticket for spn (service/host, or with @REALM),
// from the cache while it has more than 20% of its life left.
func (id *Identity) ServiceTicket(spn string) (Ticket, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	name, _ := splitPrincipal(spn)
	key := name.PrincipalNameString()
	if h, ok := id.svc[key]; ok && id.now().Before(h.due) {
		return id.ticket(h), nil
	}
	if err := id.ensureTGT(); err != nil {
		return Ticket{}, err
	}
	_, rep, err := id.cl.TGSREQGenerateAndExchange(name, id.realm, id.tgt.tkt, id.tgt.key, false)
	if err != nil {
		return Ticket{}, id.explain("service ticket for "+spn, spn, err)
	}
	p := rep.DecryptedEncPart
	h := newHeld(rep.Ticket, p.Key, p.AuthTime, p.StartTime, p.EndTime, p.RenewTill)
	id.svc[key] = h
	return id.ticket(h), nil
}

func (id *Identity) ticket(h *held) Ticket {
	return Ticket{Ticket: h.tkt, SessionKey: h.key, CName: id.cname, Realm: id.realm, EndTime: h.end}
}

// Client is the gokrb5 client (for SPNEGO); its session is not used.
func (id *Identity) Client() *client.Client { return id.cl }

// Stats reports how many logins and TGT renewals happened (tests, logs).
func (id *Identity) Stats() (logins, renewals int) {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.logins, id.renews
}
