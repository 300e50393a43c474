package server_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaticHashesVerifyUnderTheDerivedKeys pins what
// docs/operations/client-registry.md says of the static registry's
// $hmac-sha256$ hashes once CLIENT_SECRET_HMAC_KEY is set: the derived
// keys the server would use without it verify them too, as they verify a
// dynamic registration's — a hash under the key derived from a token
// secret authenticates while that secret is TOKEN_HMAC_SECRET or in
// TOKEN_HMAC_SECRETS_ROTATED, and is refused (401 invalid_client) once it
// is neither; in development without TOKEN_HMAC_SECRET, dev-init's hashes
// (under the signing keys' derived keys) authenticate, and are refused
// once TOKEN_HMAC_SECRET is set. The registry file is never rewritten.
func TestStaticHashesVerifyUnderTheDerivedKeys(t *testing.T) {
	secret := strings.Repeat("static-derived-", 3)
	registry := `- client_id: derived-static
  client_name: Hashed under TOKEN_HMAC_SECRET's derived key
  client_secret_hash: "` + hashUnder(t, hmacBreakA, secret) + `"
  token_endpoint_auth_method: client_secret_post
  redirect_uris: ["https://chatgpt.com/aip/g-0123456789ab/oauth/callback"]
  resources: ["BASE/actions"]
`
	f := startFleetWith(t, map[string]string{"CLIENT_SECRET_HMAC_KEY": adoptKey}, registry)
	reg := filepath.Join(f.Dir, "clients.yaml")
	file, err := os.ReadFile(reg)
	if err != nil {
		t.Fatal(err)
	}
	static := devClient{ClientID: "derived-static"}
	devinit := f.Clients["gpt-actions"] // client_secret_post, dev-init's hash
	// badRefresh fails with 400 invalid_grant only once the client has
	// authenticated; 401 invalid_client means it has not.
	expect := func(what string, c devClient, secret string, status int) {
		t.Helper()
		r := f.clientCall(clientReq{Form: postCreds(c, secret, badRefresh())})
		want := map[int]string{http.StatusBadRequest: "invalid_grant", http.StatusUnauthorized: "invalid_client"}[status]
		if r.Status != status || r.Error != want {
			t.Errorf("%s: %d %q (%s), want %d %s", what, r.Status, r.Error, r.Description, status, want)
		}
	}

	// Development, no TOKEN_HMAC_SECRET: the signing keys' derived keys.
	expect("dev-init's hash, CLIENT_SECRET_HMAC_KEY set", devinit, devinit.ClientSecret, http.StatusBadRequest)
	expect("a hash under an unconfigured token secret's key", static, secret, http.StatusUnauthorized)

	f.restart(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA})
	expect("a hash under TOKEN_HMAC_SECRET's derived key", static, secret, http.StatusBadRequest)
	expect("a wrong secret", static, secret[1:]+"x", http.StatusUnauthorized)
	expect("dev-init's hash once TOKEN_HMAC_SECRET is set", devinit, devinit.ClientSecret, http.StatusUnauthorized)

	f.restart(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA})
	expect("the hash, its token secret rotated", static, secret, http.StatusBadRequest)

	f.restart(map[string]string{"TOKEN_HMAC_SECRETS_ROTATED": ""})
	expect("the hash, its token secret removed", static, secret, http.StatusUnauthorized)

	if now, err := os.ReadFile(reg); err != nil || !bytes.Equal(now, file) {
		t.Errorf("the registry file changed (%v): a static hash is never rewritten", err)
	}
}
