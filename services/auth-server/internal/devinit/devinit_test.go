package devinit

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
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
	key, _, err := clients.DevSecretKeys(filepath.Join(dir, "keys"), ring.ActiveKeyID())
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
}
