package tests

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"path/filepath"
	"testing"
)

// TestTemplateGeneratedSigningKeyIsRSA2048: the key the chart generates
// (authServer.signingKeys.generate) is the RSA-2048 key values.yaml and the
// docs promise. Sprig's genPrivateKey "rsa" makes RSA-4096, whose RS256
// signatures cost about 6.6 times as much CPU, and the token endpoint's
// signing queue is sized for RSA-2048 (docs/reference/oauth.md#signing-budget).
func TestTemplateGeneratedSigningKeyIsRSA2048(t *testing.T) {
	out, err := render(t, filepath.Join(chartDir(t), "ci", "minimal-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var data string
	for _, d := range splitDocs(t, out) {
		if d["kind"] == "Secret" && str(d, "metadata", "name") == "tollgate-signing-keys" {
			data = str(d, "data", "generated.pem")
		}
	}
	if data == "" {
		t.Fatal("no Secret tollgate-signing-keys with generated.pem rendered")
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatalf("generated.pem is not a PKCS#1 RSA private key:\n%s", b)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if bits := key.N.BitLen(); bits != 2048 {
		t.Fatalf("the generated signing key is RSA-%d, want RSA-2048", bits)
	}
}
