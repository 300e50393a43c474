package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
)

// loadBackends loads env; core "optional" means no CORE_GRPC_ADDR and the
// list optional.
func loadBackends(env map[string]string, core string) (config.Backends, error) {
	s := config.NewSource(config.MapEnv(env))
	if core == "optional" {
		return config.LoadBackends(s, "", true), s.Problems().Err()
	}
	b := config.LoadBackends(s, core, false)
	return b, s.Problems().Err()
}

func TestBackendsDefaultToCapabilityCore(t *testing.T) {
	b, err := loadBackends(nil, "core:9090")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.List) != 1 || b.List[0].Name != "capability-core" || b.List[0].Target != "core:9090" || b.List[0].TLS != nil {
		t.Errorf("backends = %+v", b.List)
	}
	if b.RefreshInterval != 30*time.Second {
		t.Errorf("refresh = %s", b.RefreshInterval)
	}
	// CORE_GRPC_ADDR may list addresses (grpcx.Dial's static form).
	if b, err := loadBackends(nil, "127.0.0.1:1,127.0.0.1:2"); err != nil || b.List[0].Target != "127.0.0.1:1,127.0.0.1:2" {
		t.Errorf("a CORE_GRPC_ADDR list: %+v %v", b.List, err)
	}
	if _, err := loadBackends(nil, ""); err == nil || !strings.Contains(err.Error(), "CAPABILITY_BACKENDS: required") {
		t.Errorf("no CORE_GRPC_ADDR and no CAPABILITY_BACKENDS: err = %v", err)
	}
	if b, err := loadBackends(nil, "optional"); err != nil || len(b.List) != 0 {
		t.Errorf("optional: %v, %v", b.List, err)
	}
}

func TestBackendsListInOrderWithNames(t *testing.T) {
	b, err := loadBackends(map[string]string{
		"CAPABILITY_BACKENDS":         " capability-core=127.0.0.1:9091 , notes.tools.svc.cluster.local:9090,dns:///x.y:1,todo-2=[::1]:7",
		"CAPABILITY_REFRESH_INTERVAL": "2s",
	}, "ignored:1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range b.List {
		got = append(got, e.Name+"="+e.Target)
	}
	want := "capability-core=127.0.0.1:9091 notes=notes.tools.svc.cluster.local:9090 x=dns:///x.y:1 todo-2=[::1]:7"
	if strings.Join(got, " ") != want {
		t.Errorf("backends = %v, want %s", got, want)
	}
	if b.RefreshInterval != 2*time.Second {
		t.Errorf("refresh = %s", b.RefreshInterval)
	}
}

func TestBackendsEveryMistakeAtOnce(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("nothing"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadBackends(map[string]string{
		"CAPABILITY_BACKENDS": "127.0.0.1:1,Bad=h:1,auth-server=h:2,a=h:3,a=h:4,b=h:3,c=nohost,d=http://h:5," +
			"e=h:6,f=h:7,g=h:8,h=h:9",
		"CAPABILITY_REFRESH_INTERVAL":        "10ms",
		"CAPABILITY_BACKEND_E_TLS_CA_FILE":   notPEM,
		"CAPABILITY_BACKEND_F_TLS_CERT_FILE": filepath.Join(dir, "cert.pem"),
		"CAPABILITY_BACKEND_G_TLS":           "false",
		"CAPABILITY_BACKEND_G_TLS_CA_FILE":   notPEM,
		"CAPABILITY_BACKEND_H_TLS_CA_FILE":   filepath.Join(dir, "missing.pem"),
	}, "core:1")
	ce, ok := err.(*config.Error)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{
		"CAPABILITY_REFRESH_INTERVAL: 10ms is outside",
		`"127.0.0.1:1": cannot name the backend after its host; write NAME=127.0.0.1:1`,
		`"Bad=h:1": name "Bad" must be lower-case`,
		`"auth-server=h:2": the name "auth-server" is reserved`,
		`backend name "a" appears twice`,
		`backends "a" and "b" have the same target h:3`,
		`"c=nohost": not a host:port gRPC target`,
		`"d=http://h:5": only host:port and dns:///host:port targets are supported`,
		`CAPABILITY_BACKEND_E_TLS_CA_FILE: "` + notPEM + `" holds no PEM certificate`,
		"CAPABILITY_BACKEND_F_TLS_CERT_FILE and CAPABILITY_BACKEND_F_TLS_KEY_FILE: set both",
		`CAPABILITY_BACKEND_G_TLS is false but TLS files or a server name are set for backend "g"`,
		"CAPABILITY_BACKEND_H_TLS_CA_FILE: cannot read",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if len(ce.Problems) != 12 {
		t.Errorf("%d problems, want 12:\n%v", len(ce.Problems), err)
	}
}

func TestBackendMutualTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, keyFile := write("c.pem", "CERTIFICATE", der), write("k.pem", "EC PRIVATE KEY", kder)
	b, err := loadBackends(map[string]string{
		"CAPABILITY_BACKENDS":                       "notes-v2=notes.internal:443,plain=p:1,sys=s:2",
		"CAPABILITY_BACKEND_NOTES_V2_TLS_CA_FILE":   cert,
		"CAPABILITY_BACKEND_NOTES_V2_TLS_CERT_FILE": cert,
		"CAPABILITY_BACKEND_NOTES_V2_TLS_KEY_FILE":  keyFile,
		"CAPABILITY_BACKEND_SYS_TLS":                "true",
		"CAPABILITY_BACKEND_SYS_TLS_SERVER_NAME":    "sys.example",
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	n := b.List[0].TLS
	if n == nil || n.RootCAs == nil || len(n.Certificates) != 1 || n.ServerName != "notes.internal" {
		t.Errorf("notes-v2 TLS = %+v", n)
	}
	if b.List[1].TLS != nil {
		t.Errorf("plain has TLS")
	}
	if s := b.List[2].TLS; s == nil || s.RootCAs != nil || s.ServerName != "sys.example" {
		t.Errorf("sys TLS = %+v", s)
	}
}

// CAPABILITY_BACKEND_<NAME>_KEEPALIVE: the fleet's setting for the backend
// at CORE_GRPC_ADDR (implicit or listed), one that fits gRPC's default
// server policy for every other backend, or an explicit keepalive time.
func TestBackendKeepalive(t *testing.T) {
	b, err := loadBackends(nil, "core:1")
	if err != nil || b.List[0].Keepalive != nil {
		t.Fatalf("implicit capability-core: keepalive %+v, %v; want the fleet's (nil)", b.List[0].Keepalive, err)
	}
	b, err = loadBackends(map[string]string{
		"CAPABILITY_BACKENDS":                                       "capability-core=core:1,notes=n:1,pinned=p:1,chatty=c:1,near=m:1",
		"CAPABILITY_BACKEND_PINNED_KEEPALIVE":                       "fleet",
		"CAPABILITY_BACKEND_CHATTY_KEEPALIVE":                       "30s",
		"CAPABILITY_BACKEND_CHATTY_KEEPALIVE_PERMIT_WITHOUT_STREAM": "true",
		"CAPABILITY_BACKEND_NEAR_KEEPALIVE":                         "2m",
	}, "core:1")
	if err != nil {
		t.Fatal(err)
	}
	ka := map[string]string{}
	for _, be := range b.List {
		ka[be.Name] = "fleet"
		if k := be.Keepalive; k != nil {
			ka[be.Name] = k.Time.String() + "/" + k.Timeout.String() + "/" + map[bool]string{true: "idle", false: "calls"}[k.PermitWithoutStream]
		}
	}
	want := map[string]string{
		"capability-core": "fleet", // at CORE_GRPC_ADDR
		"notes":           "5m0s/20s/calls",
		"pinned":          "fleet",
		"chatty":          "30s/20s/idle",
		"near":            "2m0s/20s/calls",
	}
	for name, w := range want {
		if ka[name] != w {
			t.Errorf("%s: keepalive %s, want %s", name, ka[name], w)
		}
	}

	_, err = loadBackends(map[string]string{
		"CAPABILITY_BACKENDS":                                  "a=h:1,b=h:2,c=h:3,d=h:4,e=h:5,f=h:6",
		"CAPABILITY_BACKEND_A_KEEPALIVE":                       "5s",
		"CAPABILITY_BACKEND_B_KEEPALIVE":                       "-1m",
		"CAPABILITY_BACKEND_C_KEEPALIVE":                       "sometimes",
		"CAPABILITY_BACKEND_D_KEEPALIVE":                       "fleet",
		"CAPABILITY_BACKEND_D_KEEPALIVE_PERMIT_WITHOUT_STREAM": "false",
		"CAPABILITY_BACKEND_E_KEEPALIVE_PERMIT_WITHOUT_STREAM": "true",
		"CAPABILITY_BACKEND_F_KEEPALIVE":                       "1m",
		"CAPABILITY_BACKEND_F_KEEPALIVE_PERMIT_WITHOUT_STREAM": "maybe",
	}, "core:1")
	ce, ok := err.(*config.Error)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{
		`CAPABILITY_BACKEND_A_KEEPALIVE: keepalive time 5s for backend "a" is under 10s`,
		`CAPABILITY_BACKEND_B_KEEPALIVE: keepalive time -1m for backend "b" is under 10s`,
		`CAPABILITY_BACKEND_C_KEEPALIVE: "sometimes" for backend "c" is not fleet, grpc-default or a keepalive time`,
		`CAPABILITY_BACKEND_D_KEEPALIVE_PERMIT_WITHOUT_STREAM: set for backend "d", whose keepalive "fleet" fixes it`,
		`CAPABILITY_BACKEND_E_KEEPALIVE_PERMIT_WITHOUT_STREAM: set for backend "e", whose keepalive "grpc-default" fixes it`,
		`CAPABILITY_BACKEND_F_KEEPALIVE_PERMIT_WITHOUT_STREAM: "maybe" is not a boolean`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if len(ce.Problems) != 6 {
		t.Errorf("%d problems, want 6:\n%v", len(ce.Problems), err)
	}
}
