// Package tlsutil builds the TLS configurations hiveqd serves and dials
// with. Certificates are re-read from disk when their files change, so a
// rotated Kubernetes Secret (or cert-manager renewal) takes effect on the
// next handshake without a restart.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
)

// ServerConfig serves certFile/keyFile. With clientCAFile set, clients must
// present a certificate that chains to it (mutual TLS); otherwise client
// certificates are not requested. The key pair is reloaded when either file
// changes; the client CA is read once.
func ServerConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tlsutil: server certificate and key files are both required")
	}
	kp, err := newKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.get(), nil
		},
	}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig verifies the server against caFile (the system roots when
// empty) and the name serverName (the dialled host when empty). certFile and
// keyFile, both or neither, add a client certificate, reloaded when its files
// change.
func ClientConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		return nil, errors.New("tlsutil: client certificate and key must be given together")
	default:
		kp, err := newKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.get(), nil
		}
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tlsutil: CA %s: no PEM certificates found", file)
	}
	return pool, nil
}

// keyPair holds the last good certificate of a cert/key file pair and
// reloads it when a stat shows either file changed. A stat per handshake is
// cheap next to the handshake itself.
type keyPair struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	certInfo os.FileInfo
	keyInfo  os.FileInfo
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	ci, ki, err := kp.stat()
	if err != nil {
		return nil, err
	}
	if err := kp.load(ci, ki); err != nil {
		return nil, err
	}
	return kp, nil
}

func (kp *keyPair) stat() (os.FileInfo, os.FileInfo, error) {
	ci, err := os.Stat(kp.certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: certificate: %w", err)
	}
	ki, err := os.Stat(kp.keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: key: %w", err)
	}
	return ci, ki, nil
}

func (kp *keyPair) load(ci, ki os.FileInfo) error {
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		// The message names files only; tls never includes key material.
		return fmt.Errorf("tlsutil: key pair %s, %s: %w", kp.certFile, kp.keyFile, err)
	}
	kp.cert, kp.certInfo, kp.keyInfo = &cert, ci, ki
	return nil
}

// get returns the current certificate, reloading it first when the files
// changed. A failed reload (say the certificate is written before its key
// during a rotation) keeps serving the previous pair and retries on the
// next handshake, because the recorded file info is left unchanged.
func (kp *keyPair) get() *tls.Certificate {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	ci, ki, err := kp.stat()
	if err == nil && (changed(kp.certInfo, ci) || changed(kp.keyInfo, ki)) {
		_ = kp.load(ci, ki)
	}
	return kp.cert
}

// changed compares identity (rename-based rotations such as Kubernetes'
// atomic Secret updates make a new file), size and modification time.
func changed(old, cur os.FileInfo) bool {
	return !os.SameFile(old, cur) || old.Size() != cur.Size() || !old.ModTime().Equal(cur.ModTime())
}
