package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// oversizedRSAKey is a JWK, kid "big", of an RSA "public key" of bits
// bits with the exponent 2^31-1: an odd modulus nobody holds the private
// key of, which is all a verifier reads.
func oversizedRSAKey(bits int) map[string]string {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.SetBit(n, 0, 1)
	return map[string]string{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "big",
		"n": base64.RawURLEncoding.EncodeToString(n.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(1<<31 - 1).Bytes()),
	}
}

// forgedAssertion is an RS256 client assertion of id for aud naming kid,
// with sigBytes of random signature (its first byte 0: below any modulus
// of that length).
func forgedAssertion(id, aud, kid string, sigBytes int) string {
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": kid, "typ": "JWT"})
	now := time.Now().Unix()
	claims, _ := json.Marshal(map[string]any{"iss": id, "sub": id, "aud": aud, "jti": rand.Text(), "iat": now, "exp": now + 60})
	sig := make([]byte, sigBytes)
	_, _ = rand.Read(sig)
	sig[0] = 0
	return enc.EncodeToString(hdr) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(sig)
}

// TestAssertionKeySizeBounded: whoever publishes a client id metadata
// document chooses the RSA key its client assertions are checked with,
// and the token endpoint checks an assertion's signature before anything
// else of it. A 65,536-bit key with e = 2^31-1 cost ~0.3 s of CPU per
// forged assertion, unauthenticated (session 39, brk10). Keys above 4096
// bits or with another exponent than 65537 are not usable: a document
// whose only key is one is refused at the authorization request, and next
// to a usable key such a key is never used — an assertion naming it is
// invalid_client without its signature being checked.
func TestAssertionKeySizeBounded(t *testing.T) {
	const bits = 65536
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	goodJWK, err := json.Marshal(jose.JSONWebKey{Key: &good.PublicKey, KeyID: "ok", Use: "sig", Algorithm: "RS256"})
	if err != nil {
		t.Fatal(err)
	}
	bigJWK, err := json.Marshal(oversizedRSAKey(bits))
	if err != nil {
		t.Fatal(err)
	}
	redirect := "http://127.0.0.1:8978/callback"
	var docs sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs.Load(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc.(string)))
	}))
	defer srv.Close()
	document := func(path, jwks string) string {
		id := srv.URL + path
		docs.Store(path, `{"client_id":"`+id+`","redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"private_key_jwt","jwks":`+jwks+`}`)
		return id
	}
	f := startFleet(t, nil)

	t.Run("only an oversized key", func(t *testing.T) {
		id := document("/only-big.json", `{"keys":[`+string(bigJWK)+`]}`)
		c := devClient{ClientID: id, RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}
		p := newBrowser(t, redirect).get(newAuthRequest(c).URL(f.Base))
		want := `key 1 (kid 'big') has 65536 bits, more than 4096`
		if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "<code>invalid_client</code>") {
			t.Errorf("a document whose only key has %d bits: %d %v (consent page: %v), want the 400 invalid_client page",
				bits, p.Status, p.Location, formAction.MatchString(p.Body))
		}
		// The page says fixed words; the description is in the JSON answer.
		if st, code, desc := authorizeJSON(t, newAuthRequest(c).URL(f.Base), "", ""); st != http.StatusBadRequest || code != "invalid_client" || !strings.Contains(desc, want) {
			t.Errorf("a document whose only key has %d bits: JSON %d %s %q, want 400 invalid_client saying %q", bits, st, code, desc, want)
		}
	})

	t.Run("an oversized key next to a usable one", func(t *testing.T) {
		id := document("/big-and-ok.json", `{"keys":[`+string(bigJWK)+`,`+string(goodJWK)+`]}`)
		form := badRefresh()
		form.Set("client_id", id)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", forgedAssertion(id, f.Base+"/oauth/token", "big", bits/8))
		r := f.clientCall(clientReq{Form: form})
		if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" || strings.Contains(r.Description, "integrity") {
			t.Errorf("an assertion naming the %d-bit key: %d %s %q, want 401 invalid_client without the signature checked with that key",
				bits, r.Status, r.Error, r.Description)
		}
		t.Logf("refused: %q", r.Description)
	})
}
