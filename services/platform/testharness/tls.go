package testharness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RedisTLS is a private CA and a server certificate it signed for
// 127.0.0.1 (P-256, valid for a day from an hour ago), written as PEM files:
// what the harness's TLS Redis deployments serve. Clients log in without a
// certificate of their own (tls-auth-clients no); the ACL user is their
// authentication, as with Tollgate's client (REDIS_TLS_CA_FILE only).
type RedisTLS struct {
	// CAFile is the CA certificate (REDIS_TLS_CA_FILE for clients).
	CAFile string
	// CertFile and KeyFile are the servers' certificate and key.
	CertFile, KeyFile string
	pool              *x509.CertPool
}

// NewRedisTLS makes a CA and a server certificate in dir.
func NewRedisTLS(dir string) (*RedisTLS, error) {
	ca, caKey, err := newCA("tollgate test redis CA")
	if err != nil {
		return nil, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		// Nodes are TLS clients of each other too (replication, cluster bus, sentinels).
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return nil, err
	}
	c := &RedisTLS{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server.key"),
		pool: x509.NewCertPool(),
	}
	c.pool.AddCert(ca)
	for path, block := range map[string]*pem.Block{
		c.CAFile:   {Type: "CERTIFICATE", Bytes: ca.Raw},
		c.CertFile: {Type: "CERTIFICATE", Bytes: srvDER},
		c.KeyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// WriteOtherCA writes, into dir, a CA that signed none of c's certificates
// (for refusal tests) and returns its path.
func (c *RedisTLS) WriteOtherCA(dir string) (string, error) {
	ca, _, err := newCA("another CA")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "other-ca.pem")
	return p, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600)
}

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// ClientConfig trusts c's CA (the harness's own connections).
func (c *RedisTLS) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// serverArgs are the redis-server flags for c's certificates.
func (c *RedisTLS) serverArgs() []string {
	var args []string
	for _, l := range strings.Split(strings.TrimSpace(c.conf()), "\n") {
		k, v, _ := strings.Cut(l, " ")
		args = append(args, "--"+k, v)
	}
	return args
}

// conf is c's certificates as redis.conf lines.
func (c *RedisTLS) conf() string {
	return fmt.Sprintf("tls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\n", c.CertFile, c.KeyFile, c.CAFile)
}
