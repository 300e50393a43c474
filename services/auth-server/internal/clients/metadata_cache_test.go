package clients

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"testing"

	josev3 "github.com/go-jose/go-jose/v3"
)

// TestMetadataMembersRoundTrip: a document's members as the auth-server
// caches them (Metadata encoded as JSON without HTML escaping, as
// store.MarshalJSON writes it) decode again with DecodeDocument to the
// same client — an inline jwks included, its key usable as before — and
// a member Tollgate does not read is not among them.
func TestMetadataMembersRoundTrip(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := json.Marshal(josev3.JSONWebKey{Key: &key.PublicKey, KeyID: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	id := "https://app.example.com/client.json"
	doc := fmt.Sprintf(`{"client_id":%q,"client_name":"App & Co","redirect_uris":["https://app.example.com/cb?a=1&b=2"],
		"token_endpoint_auth_method":"private_key_jwt","scope":"openid","jwks":{"keys":[%s]},"extra":"not read"}`, id, pub)
	md, err := DecodeDocument([]byte(doc), id)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(md); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("extra")) || bytes.Contains(buf.Bytes(), []byte(`\u0026`)) {
		t.Errorf("cached members: %s", buf.Bytes())
	}
	again, err := DecodeDocument(bytes.TrimSpace(buf.Bytes()), id)
	if err != nil {
		t.Fatalf("the cached members do not decode: %v (%s)", err, buf.Bytes())
	}
	if again.ClientName != md.ClientName || again.RedirectURIs[0] != md.RedirectURIs[0] || again.AuthMethod != md.AuthMethod || again.Scope != md.Scope {
		t.Errorf("decoded again: %+v, want %+v", again, md)
	}
	if p := AssertionKeysProblem(again.JWKS); p != "" || len(again.JWKS.Keys) != 1 || again.JWKS.Keys[0].KeyID != "k1" {
		t.Errorf("the jwks decoded again: %v %q", again.JWKS, p)
	}
}
