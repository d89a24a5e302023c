package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// KeyPair names a PEM certificate file and its PEM key file.
type KeyPair struct {
	CertFile, KeyFile string
}

// TestPKI is a throw-away certificate authority for tests: a trusted CA with
// a server certificate and a client certificate, and an unrelated CA with a
// client certificate that the trusted CA must refuse. Keys are ECDSA P-256
// (fast to generate); certificates are valid from an hour ago for a day.
type TestPKI struct {
	Dir string
	// CAFile is the trusted CA certificate (server and client side).
	CAFile string
	// Server is valid for 127.0.0.1, ::1, localhost and the extra hosts.
	Server KeyPair
	// Client has CommonName "client".
	Client KeyPair
	// UntrustedCAFile signed UntrustedClient (CommonName "intruder").
	UntrustedCAFile string
	UntrustedClient KeyPair

	mu        sync.Mutex
	n         int
	hosts     []string
	ca        *x509.Certificate
	caKey     *ecdsa.PrivateKey
	untrusted *x509.Certificate
	untrKey   *ecdsa.PrivateKey
}

// GenerateTestPKI writes a fresh TestPKI into dir (which must exist). hosts
// are added to the server certificate's names (IP addresses or DNS names).
func GenerateTestPKI(dir string, hosts ...string) (*TestPKI, error) {
	p := &TestPKI{Dir: dir, hosts: append([]string{"127.0.0.1", "::1", "localhost"}, hosts...)}
	var err error
	if p.ca, p.caKey, p.CAFile, err = p.newCA("ca", "hiveqd test CA"); err != nil {
		return nil, err
	}
	if p.untrusted, p.untrKey, p.UntrustedCAFile, err = p.newCA("untrusted-ca", "hiveqd untrusted test CA"); err != nil {
		return nil, err
	}
	if p.Server, err = p.IssueServer(); err != nil {
		return nil, err
	}
	if p.Client, err = p.IssueClient("client"); err != nil {
		return nil, err
	}
	tmpl := leafTemplate("intruder", x509.ExtKeyUsageClientAuth)
	if p.UntrustedClient, err = p.issue("untrusted-client", tmpl, p.untrusted, p.untrKey); err != nil {
		return nil, err
	}
	return p, nil
}

// IssueClient signs a client certificate with the trusted CA. sans are
// added as URI SANs when they contain "://", else as DNS SANs; commonName
// may be empty for a SAN-only identity.
func (p *TestPKI) IssueClient(commonName string, sans ...string) (KeyPair, error) {
	tmpl := leafTemplate(commonName, x509.ExtKeyUsageClientAuth)
	for _, s := range sans {
		if strings.Contains(s, "://") {
			u, err := url.Parse(s)
			if err != nil {
				return KeyPair{}, fmt.Errorf("tlsutil: SAN %q: %w", s, err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	return p.issue("client", tmpl, p.ca, p.caKey)
}

// IssueServer signs a new server certificate for the PKI's hosts plus
// extra ones, in new files.
func (p *TestPKI) IssueServer(extraHosts ...string) (KeyPair, error) {
	tmpl := leafTemplate("hiveqd", x509.ExtKeyUsageServerAuth)
	for _, h := range append(append([]string(nil), p.hosts...), extraHosts...) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return p.issue("server", tmpl, p.ca, p.caKey)
}

// RotateServer replaces the files of p.Server with a newly issued
// certificate by rename, key first, the way a Secret update lands: a reader
// may briefly see the new key with the old certificate.
func (p *TestPKI) RotateServer() error {
	kp, err := p.IssueServer()
	if err != nil {
		return err
	}
	if err := os.Rename(kp.KeyFile, p.Server.KeyFile); err != nil {
		return err
	}
	return os.Rename(kp.CertFile, p.Server.CertFile)
}

func (p *TestPKI) newCA(file, name string) (*x509.Certificate, *ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, "", err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, "", err
	}
	path := filepath.Join(p.Dir, file+".pem")
	if err := writePEM(path, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, "", err
	}
	return cert, key, path, nil
}

func leafTemplate(cn string, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

func (p *TestPKI) issue(prefix string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return KeyPair{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, err
	}
	p.mu.Lock()
	p.n++
	base := filepath.Join(p.Dir, fmt.Sprintf("%s-%d", prefix, p.n))
	p.mu.Unlock()
	kp := KeyPair{CertFile: base + ".pem", KeyFile: base + "-key.pem"}
	if err := writePEM(kp.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return KeyPair{}, err
	}
	if err := writePEM(kp.KeyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return KeyPair{}, err
	}
	return kp, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if data == nil {
		return errors.New("tlsutil: PEM encoding failed")
	}
	return os.WriteFile(path, data, mode)
}

// TestConfigs returns a server configuration with a fresh certificate for
// 127.0.0.1, ::1 and localhost, and a client configuration that trusts only
// its CA: for tests of TLS clients (HS2, ZooKeeper) against test servers.
func TestConfigs(dir string) (server, client *tls.Config, err error) {
	pki, err := GenerateTestPKI(dir)
	if err != nil {
		return nil, nil, err
	}
	cert, err := tls.LoadX509KeyPair(pki.Server.CertFile, pki.Server.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	if client, err = ClientConfig(pki.CAFile, "", "", ""); err != nil {
		return nil, nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, client, nil
}
