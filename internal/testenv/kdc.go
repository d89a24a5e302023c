package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The MIT Kerberos programs the KDC helper runs (Debian's krb5-kdc,
// krb5-admin-server and krb5-user packages).
var (
	KDCBinary     = "/usr/sbin/krb5kdc"
	KDBUtilBinary = "/usr/sbin/kdb5_util"
	KadminBinary  = "/usr/sbin/kadmin.local"
	KinitBinary   = "/usr/bin/kinit"
)

// KDCOptions tune a test KDC.
type KDCOptions struct {
	// Realm defaults to "HIVEQD.TEST".
	Realm string
	// TicketLifetime is the realm's max_life: the longest ticket the KDC
	// issues (and every principal's default). Default 1h; tests of expiry
	// use a few seconds.
	TicketLifetime time.Duration
	// RenewableLifetime is max_renewable_life. Default 24h.
	RenewableLifetime time.Duration
	// ClockSkew is the clients' and acceptors' tolerance (krb5.conf
	// clockskew). MIT's default of 5 minutes also lets an acceptor take a
	// ticket that expired less than that ago, so expiry tests set it to a
	// second or so. Default 5m.
	ClockSkew time.Duration
	// Dir holds the database, config, logs and keytabs; default a new
	// temporary directory, removed by Close.
	Dir string
}

// KDC is a real MIT Kerberos KDC (krb5kdc) on a loopback port, with its
// database administered through kadmin.local. It runs unprivileged: every
// path (database, stash, ACL, log) is in its directory, and KRB5_CONFIG and
// KRB5_KDC_PROFILE point the MIT tools at its files.
type KDC struct {
	opts KDCOptions
	dir  string
	own  bool
	port int
	mu   sync.Mutex
	proc *process
	n    int // keytab files made
}

// KDCInstalled reports why the MIT KDC programs cannot run here, or nil.
func KDCInstalled() error {
	for _, b := range []string{KDCBinary, KDBUtilBinary, KadminBinary, KinitBinary} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("MIT Kerberos not installed (%s missing): run scripts/install-deps.sh (Debian krb5-kdc krb5-admin-server krb5-user)", b)
		}
	}
	return nil
}

// StartKDCServer creates a realm database and starts krb5kdc in the
// foreground; it returns once the KDC answers on its port.
func StartKDCServer(ctx context.Context, opts KDCOptions) (*KDC, error) {
	if err := KDCInstalled(); err != nil {
		return nil, err
	}
	if opts.Realm == "" {
		opts.Realm = "HIVEQD.TEST"
	}
	if opts.TicketLifetime == 0 {
		opts.TicketLifetime = time.Hour
	}
	if opts.RenewableLifetime == 0 {
		opts.RenewableLifetime = 24 * time.Hour
	}
	if opts.ClockSkew == 0 {
		opts.ClockSkew = 5 * time.Minute
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "hiveqd-kdc-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	k := &KDC{opts: opts, dir: dir, own: opts.Dir == ""}
	if err := k.start(ctx); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// StartKDC starts a KDC for t and stops it when t ends. It skips t, with
// the reason, when the MIT Kerberos programs are not installed.
func StartKDC(t testing.TB, opts KDCOptions) *KDC {
	t.Helper()
	if err := KDCInstalled(); err != nil {
		t.Skip(err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k, err := StartKDCServer(ctx, opts)
	if err != nil {
		t.Fatalf("start kdc: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

// start writes the configuration, creates the database and runs krb5kdc,
// retrying on another port if the chosen one was taken meanwhile (the KDC
// binds UDP and TCP).
func (k *KDC) start(ctx context.Context) error {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			return err
		}
		k.port = port
		if err := k.writeConfig(); err != nil {
			return err
		}
		if attempt == 0 {
			if err := k.run(ctx, KDBUtilBinary, "create", "-s", "-r", k.opts.Realm, "-P", "hiveqd-test-master"); err != nil {
				return fmt.Errorf("kdb5_util create: %w", err)
			}
		}
		if last = k.serve(ctx); last == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return last
}

func (k *KDC) writeConfig() error {
	secs := func(d time.Duration) string { return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s" }
	kdcConf := fmt.Sprintf(`[kdcdefaults]
 kdc_ports = 127.0.0.1:%[1]d
 kdc_tcp_ports = 127.0.0.1:%[1]d

[realms]
 %[2]s = {
  database_name = %[3]s
  key_stash_file = %[4]s
  acl_file = %[5]s
  max_life = %[6]s
  max_renewable_life = %[7]s
  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
 }

[logging]
 kdc = FILE:%[8]s
`, k.port, k.opts.Realm, filepath.Join(k.dir, "principal"), filepath.Join(k.dir, "stash"),
		filepath.Join(k.dir, "kadm5.acl"), secs(k.opts.TicketLifetime), secs(k.opts.RenewableLifetime),
		k.LogPath())
	if err := os.WriteFile(filepath.Join(k.dir, "kadm5.acl"), nil, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(k.KDCConfPath(), []byte(kdcConf), 0o600); err != nil {
		return err
	}
	return os.WriteFile(k.Krb5Conf(), []byte(k.Krb5ConfText()), 0o644)
}

// Krb5ConfText is the client configuration: this realm, its KDC over TCP,
// no DNS (neither for the KDC nor to canonicalize host names, so a service
// principal is built from the host name exactly as given).
func (k *KDC) Krb5ConfText() string {
	return fmt.Sprintf(`[libdefaults]
 default_realm = %[1]s
 dns_lookup_kdc = false
 dns_lookup_realm = false
 dns_canonicalize_hostname = false
 rdns = false
 udp_preference_limit = 1
 clockskew = %[3]d
 ticket_lifetime = %[4]ds
 renew_lifetime = %[5]ds
 forwardable = true
 default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
 default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
 permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96

[realms]
 %[1]s = {
  kdc = 127.0.0.1:%[2]d
  admin_server = 127.0.0.1:%[2]d
 }

[domain_realm]
 localhost = %[1]s
 .localhost = %[1]s
`, k.opts.Realm, k.port, int(k.opts.ClockSkew/time.Second), int(k.opts.TicketLifetime/time.Second),
		int(k.opts.RenewableLifetime/time.Second))
}

func (k *KDC) serve(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, err := startProcessEnv(KDCBinary, []string{"-n", "-r", k.opts.Realm}, k.LogPath()+".stderr", k.Env(true))
	if err != nil {
		return fmt.Errorf("start krb5kdc: %w", err)
	}
	k.proc = p
	err = WaitFor(ctx, func() error {
		if err := p.exited(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", k.Addr(), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		p.signal(syscall.SIGKILL, time.Second)
		return fmt.Errorf("krb5kdc on %s not serving: %w\n%s%s", k.Addr(), err,
			tailFile(k.LogPath(), 2000), tailFile(k.LogPath()+".stderr", 1000))
	}
	return nil
}

// Env is the environment for MIT tools and libraries (gohive's
// libgssapi_krb5, kinit, klist) to use this realm: KRB5_CONFIG, plus
// KRB5_KDC_PROFILE for the server-side tools when admin is set.
func (k *KDC) Env(admin bool) []string {
	env := []string{"KRB5_CONFIG=" + k.Krb5Conf()}
	if admin {
		env = append(env, "KRB5_KDC_PROFILE="+k.KDCConfPath())
	}
	return env
}

// run runs an MIT tool with this realm's environment.
func (k *KDC) run(ctx context.Context, name string, args ...string) error {
	_, err := k.output(ctx, name, args...)
	return err
}

func (k *KDC) output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), k.Env(true)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), kadminErrors(stderr.String())
}

// kadminErrors finds the errors kadmin.local reports on stderr: it exits 0
// even when a query fails.
func kadminErrors(stderr string) error {
	var errs []string
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "Authenticating as principal") ||
			strings.HasPrefix(line, "No policy specified") {
			continue
		}
		errs = append(errs, line)
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// Kadmin runs one kadmin.local query (e.g. "modprinc -maxlife 10s alice")
// and returns its standard output, or what it reported as failed.
func (k *KDC) Kadmin(ctx context.Context, query string) (string, error) {
	out, err := k.output(ctx, KadminBinary, "-r", k.opts.Realm, "-q", query)
	if err != nil {
		return out, fmt.Errorf("kadmin.local %q: %w", query, err)
	}
	return out, nil
}

// AddPrincipal creates principals (short names like "hive/localhost" get
// the realm) with random keys.
func (k *KDC) AddPrincipal(ctx context.Context, names ...string) error {
	for _, n := range names {
		if _, err := k.Kadmin(ctx, "addprinc -randkey "+k.Principal(n)); err != nil {
			return err
		}
	}
	return nil
}

// Keytab exports the current keys of principals into a new keytab file and
// returns its path. The keys stay as they are (-norandkey), so keytabs made
// earlier stay valid.
func (k *KDC) Keytab(ctx context.Context, names ...string) (string, error) {
	k.mu.Lock()
	k.n++
	path := filepath.Join(k.dir, "keytab-"+strconv.Itoa(k.n)+".keytab")
	k.mu.Unlock()
	for _, n := range names {
		if _, err := k.Kadmin(ctx, "ktadd -norandkey -k "+path+" "+k.Principal(n)); err != nil {
			return "", err
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			return "", fmt.Errorf("ktadd %s: no keys exported (does the principal exist?)", k.Principal(n))
		}
	}
	return path, nil
}

// NewPrincipal creates a principal with a random key and returns a keytab
// holding it.
func (k *KDC) NewPrincipal(ctx context.Context, name string) (string, error) {
	if err := k.AddPrincipal(ctx, name); err != nil {
		return "", err
	}
	return k.Keytab(ctx, name)
}

// RandomizeKey gives a principal a new random key (a new kvno): keytabs
// exported before hold a wrong key afterwards.
func (k *KDC) RandomizeKey(ctx context.Context, name string) error {
	_, err := k.Kadmin(ctx, "cpw -randkey "+k.Principal(name))
	return err
}

// Kinit gets a TGT for principal from keytab into a new file ticket cache
// and returns the cache's name ("FILE:/path"), for MIT-based clients
// (KRB5CCNAME). Extra arguments go to kinit (e.g. "-l", "10s", "-r", "1m").
func (k *KDC) Kinit(ctx context.Context, principal, keytab string, extra ...string) (string, error) {
	k.mu.Lock()
	k.n++
	cc := "FILE:" + filepath.Join(k.dir, "ccache-"+strconv.Itoa(k.n))
	k.mu.Unlock()
	args := append([]string{"-k", "-t", keytab, "-c", cc}, extra...)
	args = append(args, k.Principal(principal))
	if err := k.run(ctx, KinitBinary, args...); err != nil {
		return "", err
	}
	return cc, nil
}

// Principal qualifies a name with the realm unless it already has one.
func (k *KDC) Principal(name string) string {
	if strings.Contains(name, "@") {
		return name
	}
	return name + "@" + k.opts.Realm
}

// Realm is the realm's name.
func (k *KDC) Realm() string { return k.opts.Realm }

// Addr is the KDC's address, 127.0.0.1:port (TCP and UDP).
func (k *KDC) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(k.port)) }

// Krb5Conf is the path of the clients' krb5.conf (KRB5_CONFIG).
func (k *KDC) Krb5Conf() string { return filepath.Join(k.dir, "krb5.conf") }

// KDCConfPath is the path of the KDC's kdc.conf (KRB5_KDC_PROFILE).
func (k *KDC) KDCConfPath() string { return filepath.Join(k.dir, "kdc.conf") }

// LogPath is the KDC's log: one line per AS and TGS request.
func (k *KDC) LogPath() string { return filepath.Join(k.dir, "kdc.log") }

// Dir is the KDC's directory.
func (k *KDC) Dir() string { return k.dir }

// Stop stops krb5kdc (the database stays); Start runs it again on the same
// port.
func (k *KDC) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.proc.signal(syscall.SIGTERM, 5*time.Second)
}

// Start restarts a stopped KDC on its port.
func (k *KDC) Start(ctx context.Context) error {
	k.mu.Lock()
	running := k.proc != nil && k.proc.exited() == nil
	k.mu.Unlock()
	if running {
		return nil
	}
	return k.serve(ctx)
}

// Close stops the KDC and removes its directory if StartKDCServer made it.
func (k *KDC) Close() {
	k.mu.Lock()
	k.proc.signal(syscall.SIGKILL, 5*time.Second)
	k.mu.Unlock()
	if k.own {
		_ = os.RemoveAll(k.dir)
	}
}
