package server_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/secrethash"
	"github.com/tollgate/tollgate/services/platform/config"
)

// hashClientSecret runs `auth-server hash-client-secret` (-stdin when
// stdin is set) with the key in keyFile and returns what it printed, one
// item a line.
func hashClientSecret(t *testing.T, keyFile, stdin string) []string {
	t.Helper()
	var out bytes.Buffer
	var args []string
	if stdin != "" {
		args = []string{"-stdin"}
	}
	env := config.MapEnv(map[string]string{"CLIENT_SECRET_HMAC_KEY_FILE": keyFile})
	if err := secrethash.Main(args, env, strings.NewReader(stdin), &out); err != nil {
		t.Fatalf("hash-client-secret: %v", err)
	}
	return strings.Fields(out.String())
}

// TestHashClientSecretForTheStaticRegistry follows the deployment guide and
// the key rotation guide: a GPT client's secret made by `auth-server
// hash-client-secret` under the key file the auth-server is given
// (CLIENT_SECRET_HMAC_KEY_FILE, the file ending in a newline as `openssl
// rand -base64 48 >` leaves it) authenticates at the token endpoint, a
// wrong secret does not, nor does a hash under a key the server is not
// given. Then the key is rotated: with a new key current and the old one
// in CLIENT_SECRET_HMAC_KEYS_ROTATED the old hash still authenticates;
// with the secret hashed again under the new key (-stdin) and the old key
// removed, the new hash does and the old one no longer.
func TestHashClientSecretForTheStaticRegistry(t *testing.T) {
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "key-a"), filepath.Join(dir, "key-b")
	for _, k := range []string{keyA, keyB} {
		if err := os.WriteFile(k, []byte(strings.Repeat(filepath.Base(k), 8)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	made := hashClientSecret(t, keyA, "")
	if len(made) != 2 {
		t.Fatalf("hash-client-secret printed %q, want a secret and its hash", made)
	}
	secret, hashA := made[0], made[1]
	hashB := hashClientSecret(t, keyB, secret+"\n")[0]
	other := hashClientSecret(t, keyB, "")

	registry := `- client_id: my-gpt
  client_name: My GPT
  client_secret_hash: "` + hashA + `"
  token_endpoint_auth_method: client_secret_post
  require_pkce: false
  redirect_uris: ["https://chatgpt.com/aip/g-0123456789ab/oauth/callback"]
  resources: ["BASE/actions"]
- client_id: other-key
  client_name: Hashed under a key the server is not given
  client_secret_hash: "` + other[1] + `"
  token_endpoint_auth_method: client_secret_post
  redirect_uris: ["https://chatgpt.com/aip/g-ba9876543210/oauth/callback"]
  resources: ["BASE/actions"]
`
	f := startFleetWith(t, map[string]string{"CLIENT_SECRET_HMAC_KEY_FILE": keyA}, registry)
	gpt := devClient{ClientID: "my-gpt"}
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
	expect("the made secret", gpt, secret, http.StatusBadRequest)
	expect("a wrong secret", gpt, secret[1:]+"A", http.StatusUnauthorized)
	expect("a secret hashed under another key", devClient{ClientID: "other-key"}, other[0], http.StatusUnauthorized)

	// Rotation, steps 1-2: the new key current, the old one still verifying.
	f.restart(map[string]string{"CLIENT_SECRET_HMAC_KEY_FILE": keyB, "CLIENT_SECRET_HMAC_KEYS_ROTATED_FILE": keyA})
	expect("the old hash, its key rotated", gpt, secret, http.StatusBadRequest)
	expect("a secret hashed under the new key", devClient{ClientID: "other-key"}, other[0], http.StatusBadRequest)

	// Step 3: the registry holds the secret hashed again under the new key;
	// the old key is gone.
	reg := filepath.Join(f.Dir, "clients.yaml")
	b, err := os.ReadFile(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reg, bytes.Replace(b, []byte(hashA), []byte(hashB), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	f.restart(map[string]string{"CLIENT_SECRET_HMAC_KEYS_ROTATED_FILE": ""})
	expect("the secret hashed again under the new key", gpt, secret, http.StatusBadRequest)
	if err := os.WriteFile(reg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f.restart(nil)
	expect("the old hash, its key removed", gpt, secret, http.StatusUnauthorized)
}
