package devinit

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
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
	if len(keys) != 1 {
		t.Fatalf("%d dev keys, want 1", len(keys))
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
	for _, c := range cj.Clients {
		sc, err := static.Get(c.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		if bcrypt.CompareHashAndPassword(sc.SecretHash, []byte(c.ClientSecret)) != nil {
			t.Errorf("%s: clients.json secret does not match the registry hash", c.ClientID)
		}
	}
	// A second run keeps everything.
	if err := Init(dir, origin, io.Discard); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "clients.yaml"))
	keys2, _ := filepath.Glob(filepath.Join(dir, "keys", "*.pem"))
	if string(again) != string(reg) || len(keys2) != 1 || keys2[0] != keys[0] {
		t.Error("a second dev-init changed the state")
	}
}
