package devinit

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestInit: the dev state is complete, valid for the registry rules of a
// development install, and kept across runs.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	origin := "http://localhost:4000"
	if err := Init(dir, origin, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"clients.yaml", "clients.json", "users.yaml", "upstream-client-secret"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "keys", "*.pem"))
	if len(keys) != 2 {
		t.Fatalf("%d dev keys, want 2 (RSA for RS256, EC P-256 for ES256)", len(keys))
	}
	reg, _ := os.ReadFile(filepath.Join(dir, "clients.yaml"))
	static, problems := clients.Parse(reg, clients.Rules{Resources: []string{origin + "/mcp", origin + "/actions"}})
	if len(problems) > 0 || static.Len() != 3 {
		t.Fatalf("registry: %d clients, problems %v", static.Len(), problems)
	}
	var cj struct {
		Clients []struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "clients.json"))
	if err := json.Unmarshal(b, &cj); err != nil {
		t.Fatal(err)
	}
	// The hashes are keyed fast hashes under the key the auth-server
	// derives from the dev signing key.
	ring, err := tokens.LoadKeyDir(filepath.Join(dir, "keys"), "")
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := clients.DevSecretKeys(ring)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := clients.NewSecretHasher(clients.SecretHasherOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cj.Clients {
		sc, err := static.Get(c.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		if !clients.IsHMACHash(sc.SecretHash) {
			t.Errorf("%s: hash %.14s… is not an HMAC hash", c.ClientID, sc.SecretHash)
		}
		if err := hasher.Compare(context.Background(), sc.SecretHash, []byte(c.ClientSecret)); err != nil {
			t.Errorf("%s: clients.json secret does not match the registry hash: %v", c.ClientID, err)
		}
		if len(c.ClientSecret) < 52 {
			t.Errorf("%s: secret of %d base32 characters, want at least 52 (256 bits)", c.ClientID, len(c.ClientSecret))
		}
	}
	// A second run keeps everything.
	if err := Init(dir, origin, io.Discard); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "clients.yaml"))
	keys2, _ := filepath.Glob(filepath.Join(dir, "keys", "*.pem"))
	if string(again) != string(reg) || len(keys2) != 2 || keys2[0] != keys[0] || keys2[1] != keys[1] {
		t.Error("a second dev-init changed the state")
	}
	// gpt-actions does not require PKCE (GPTs send none); the others do.
	for _, id := range []string{"local-test", "gpt-actions", "gpt-apps-mcp"} {
		sc, _ := static.Get(id)
		if want := id != "gpt-actions"; sc.RequirePKCE != want {
			t.Errorf("%s: require_pkce %v, want %v", id, sc.RequirePKCE, want)
		}
	}

	// A new origin (PUBLIC_URL) rewrites the registry for it and keeps the
	// secrets already handed out.
	tunnel := "https://abc.trycloudflare.com"
	if err := Init(dir, tunnel, io.Discard); err != nil {
		t.Fatal(err)
	}
	reg2, _ := os.ReadFile(filepath.Join(dir, "clients.yaml"))
	moved, problems := clients.Parse(reg2, clients.Rules{Resources: []string{tunnel + "/mcp", tunnel + "/actions"}})
	if len(problems) > 0 || moved.Len() != 3 {
		t.Fatalf("registry for %s: %d clients, problems %v", tunnel, moved.Len(), problems)
	}
	var cj2 struct {
		Origin  string `json:"origin"`
		Clients []struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
	}
	b2, _ := os.ReadFile(filepath.Join(dir, "clients.json"))
	if err := json.Unmarshal(b2, &cj2); err != nil || cj2.Origin != tunnel {
		t.Fatalf("clients.json origin %q (%v), want %s", cj2.Origin, err, tunnel)
	}
	for i, c := range cj2.Clients {
		if c.ClientSecret != cj.Clients[i].ClientSecret {
			t.Errorf("%s: the secret changed with the origin", c.ClientID)
		}
		sc, err := moved.Get(c.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		if err := hasher.Compare(context.Background(), sc.SecretHash, []byte(c.ClientSecret)); err != nil {
			t.Errorf("%s: kept secret does not match the new registry: %v", c.ClientID, err)
		}
	}
	if !strings.Contains(string(reg2), "https://abc.trycloudflare.com/oauth/test-callback") || strings.Contains(string(reg2), origin+"/oauth/test-callback") {
		t.Error("local-test's origin callback did not follow the origin")
	}

	// A redirect URI added by hand (a real GPT's callback) survives the
	// next start.
	gpt := "https://chatgpt.com/aip/g-0123456789abcdef/oauth/callback"
	edited := strings.Replace(string(reg2), "- https://chatgpt.com/aip/g-dev/oauth/callback", "- https://chatgpt.com/aip/g-dev/oauth/callback\n  - "+gpt, 1)
	if edited == string(reg2) {
		t.Fatalf("no g-dev callback line in\n%s", reg2)
	}
	writeFile(t, filepath.Join(dir, "clients.yaml"), edited)
	if err := Init(dir, tunnel, io.Discard); err != nil {
		t.Fatal(err)
	}
	reg3, _ := os.ReadFile(filepath.Join(dir, "clients.yaml"))
	kept, problems := clients.Parse(reg3, clients.Rules{Resources: []string{tunnel + "/mcp", tunnel + "/actions"}})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if sc, _ := kept.Get("gpt-actions"); !slices.Contains(sc.RedirectURIs, gpt) {
		t.Errorf("the added callback was lost: %v", sc.RedirectURIs)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
