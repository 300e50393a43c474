package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1 and a
// client certificate, as PEM files.
type pki struct {
	dir                           string
	ca                            *x509.CertPool
	server                        tls.Certificate
	caFile, clientCert, clientKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: x509.NewCertPool()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.ca.AddCert(caCert)
	issue := func(serial int64, usage x509.ExtKeyUsage, ip bool) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, b []byte) string {
		f := filepath.Join(p.dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte { b, _ := x509.MarshalECPrivateKey(k); return b }
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	sDER, sKey := issue(2, x509.ExtKeyUsageServerAuth, true)
	p.server = tls.Certificate{Certificate: [][]byte{sDER}, PrivateKey: sKey}
	cDER, cKey := issue(3, x509.ExtKeyUsageClientAuth, false)
	p.clientCert, p.clientKey = write("client.pem", "CERTIFICATE", cDER), write("client-key.pem", "EC PRIVATE KEY", keyDER(cKey))
	return p
}

// A backend that requires a client certificate is discovered and called
// over mTLS with the CAPABILITY_BACKEND_<NAME>_TLS_* settings; without the
// client certificate, or in plaintext, it is unavailable and contributes
// nothing.
func TestDiscoveryOverMutualTLS(t *testing.T) {
	p := newPKI(t)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.ca,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	b := registrytest.Start(t, "secure", []registrytest.Service{notes("notes")}, grpc.Creds(creds))
	port := b.Addr[strings.LastIndexByte(b.Addr, ':')+1:]

	start := func(env map[string]string) (*registry.Discovery, *syncBuffer) {
		t.Helper()
		s := config.NewSource(config.MapEnv(env))
		cfg := config.LoadBackends(s, "", false)
		if err := s.Problems().Err(); err != nil {
			t.Fatal(err)
		}
		log := &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		d, closeConns, err := registry.Start(ctx, registry.Fleet{Backends: cfg, Log: slog.New(slog.NewTextHandler(log, nil)), Metrics: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closeConns)
		return d, log
	}

	d, _ := start(map[string]string{
		"CAPABILITY_BACKENDS":                     "secure=127.0.0.1:" + port,
		"CAPABILITY_BACKEND_SECURE_TLS_CA_FILE":   p.caFile,
		"CAPABILITY_BACKEND_SECURE_TLS_CERT_FILE": p.clientCert,
		"CAPABILITY_BACKEND_SECURE_TLS_KEY_FILE":  p.clientKey,
	})
	reg := d.Registry()
	if got := toolNames(reg); got != "notes.add notes.list" {
		t.Fatalf("tools over mTLS = %q", got)
	}
	list, _ := reg.Tool("notes.list")
	conn, _ := d.Conns().For(list.Capability)
	in, _ := list.Capability.DecodeJSON([]byte(`{"text":"over tls"}`))
	out, err := list.Capability.Invoke(tokens.WithToken(context.Background(), "tok"), conn, in)
	if err != nil {
		t.Fatal(err)
	}
	if js, _ := registry.MarshalOutput(out); string(js) != `{"text":"over tls","backend":"secure"}` {
		t.Errorf("output = %s", js)
	}

	for name, env := range map[string]map[string]string{
		"no client certificate": {"CAPABILITY_BACKENDS": "secure=127.0.0.1:" + port, "CAPABILITY_BACKEND_SECURE_TLS_CA_FILE": p.caFile},
		"plaintext":             {"CAPABILITY_BACKENDS": "secure=127.0.0.1:" + port},
	} {
		d, log := start(env)
		if got := toolNames(d.Registry()); got != "" {
			t.Errorf("%s: tools = %q", name, got)
		}
		if !strings.Contains(log.String(), `msg="capability backend unavailable" backend=secure`) {
			t.Errorf("%s: log:\n%s", name, log)
		}
	}
}

// A backend named like a connection the service already dials (its
// capability-core, at another target) starts: its client metrics are not
// registered twice.
func TestStartWithABackendNamedLikeAnExistingPeer(t *testing.T) {
	b := registrytest.Start(t, "capability-core", []registrytest.Service{notes("notes")})
	metrics := prometheus.NewRegistry()
	first, err := grpcx.Dial("127.0.0.1:1", grpcx.ClientOptions{Registry: metrics, Name: "capability-core"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, closeConns, err := registry.Start(ctx, registry.Fleet{
		Backends: config.Backends{List: []config.Backend{{Name: "capability-core", Target: b.Addr}}},
		Metrics:  metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closeConns()
	if got := toolNames(d.Registry()); got != "notes.add notes.list" {
		t.Errorf("tools = %q", got)
	}
}
