package backend_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate/tollgate/services/example-backend/internal/backend"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	dir                                                  string
	pool                                                 *x509.CertPool
	client                                               tls.Certificate
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool.AddCert(ca)
	p.caFile = p.write(t, "ca.crt", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string, tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		certFile := p.write(t, name+".crt", "CERTIFICATE", der)
		keyFile := p.write(t, name+".key", "EC PRIVATE KEY", kder)
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile, pair
	}
	p.serverCert, p.serverKey, _ = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey, p.client = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// check asks the health service over conn options opts.
func check(t *testing.T, addr string, opt grpc.DialOption) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// TestMutualTLS: with GRPC_TLS_* set, only a client presenting a
// certificate of the client CA (a connector configured with
// CAPABILITY_BACKEND_<NAME>_TLS_CERT_FILE/KEY_FILE) reaches the backend.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	iss := tokentest.Start(t, issuer)
	svc := testharness.RunService(t, backend.Run, map[string]string{
		"GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": iss.Addr,
		"MCP_RESOURCE_URL": mcpAud, "ACTIONS_AUDIENCE": actsAud,
		"GRPC_TLS_CERT_FILE": p.serverCert, "GRPC_TLS_KEY_FILE": p.serverKey, "GRPC_TLS_CLIENT_CA_FILE": p.caFile,
	})
	addr := svc.Addr("grpc")
	withCert := credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS12})
	if err := check(t, addr, grpc.WithTransportCredentials(withCert)); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	noCert := credentials.NewTLS(&tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12})
	if err := check(t, addr, grpc.WithTransportCredentials(noCert)); err == nil {
		t.Error("a TLS client without a certificate got through")
	}
	if err := check(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		t.Error("a plaintext client got through")
	}
}

func TestTLSConfigurationRefused(t *testing.T) {
	p := newPKI(t)
	base := map[string]string{"GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": "127.0.0.1:1",
		"MCP_RESOURCE_URL": mcpAud, "ACTIONS_AUDIENCE": actsAud}
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"certificate without key", map[string]string{"GRPC_TLS_CERT_FILE": p.serverCert}, "set both or neither"},
		{"client CA without TLS", map[string]string{"GRPC_TLS_CLIENT_CA_FILE": p.caFile}, "mutual TLS is TLS first"},
		{"unreadable key", map[string]string{"GRPC_TLS_CERT_FILE": p.serverCert, "GRPC_TLS_KEY_FILE": filepath.Join(p.dir, "missing.key")}, "GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE"},
		{"CA file without a certificate", map[string]string{"GRPC_TLS_CERT_FILE": p.serverCert, "GRPC_TLS_KEY_FILE": p.serverKey, "GRPC_TLS_CLIENT_CA_FILE": p.serverKey}, "holds no PEM certificate"},
	} {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range c.env {
			env[k] = v
		}
		err := backend.Run(context.Background(), func(k string) string { return env[k] }, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
