package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
)

// lockedBuffer is a bytes.Buffer safe for Watch's goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRegistryChangesAudited: a CLIENTS_FILE reload writes one
// client_registry_change audit record per client it adds, removes or
// changes, saying what changed (a rotated secret, redirect URIs) and never
// the secret's hash; an unchanged client and a refused reload write none.
func TestRegistryChangesAudited(t *testing.T) {
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	hash := func(s string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(s), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	client := func(id, cb, secretHash string) string {
		return "  - client_id: " + id + "\n    client_name: " + id + "\n    redirect_uris: [\"" + cb + "\"]\n    token_endpoint_auth_method: client_secret_basic\n    client_secret_hash: \"" + secretHash + "\"\n    resources: [\"https://mcp.example/mcp\"]\n"
	}
	oldHash, newHash, keptHash := hash("old-secret"), hash("new-secret"), hash("kept-secret")
	path := filepath.Join(t.TempDir(), "clients.yaml")
	writeAtomically(t, path, "clients:\n"+client("rotated", "https://app.example/cb", oldHash)+client("kept", "https://kept.example/cb", keptHash)+client("gone", "https://gone.example/cb", keptHash))
	s, problems := LoadFile(path, rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var out lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, path, rules, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil, audit.New(&out, "auth-server"))

	// A refused reload (a client without redirect URIs) changes nothing.
	writeAtomically(t, path, "clients:\n  - client_id: broken\n    token_endpoint_auth_method: none\n")
	for deadline := time.Now().Add(30 * time.Second); s.Refused() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the broken file was not refused within 30 s")
		}
	}
	if strings.Contains(out.String(), "client_registry_change") {
		t.Fatalf("a refused reload was audited: %s", out.String())
	}
	next := "clients:\n" + client("rotated", "https://app.example/cb2", newHash) + client("kept", "https://kept.example/cb", keptHash) + client("added", "https://added.example/cb", keptHash)
	// Written once: Watch takes a change once the file has read the same
	// for its settle delay, so a file rewritten faster never reloads.
	writeAtomically(t, path, next)
	var recs []map[string]any
	for deadline := time.Now().Add(30 * time.Second); len(recs) < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("records 30 s after the reload: %s", out.String())
		}
		recs = recs[:0]
		for _, line := range strings.Split(out.String(), "\n") {
			m := map[string]any{}
			if json.Unmarshal([]byte(line), &m) == nil && m["event"] == "client_registry_change" {
				recs = append(recs, m)
			}
		}
	}
	want := map[string]string{"added": "added", "gone": "removed", "rotated": "changed: secret, redirect_uris"}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3: %s", len(recs), out.String())
	}
	for _, r := range recs {
		id, _ := r["client_id"].(string)
		if r["reason"] != want[id] || r["result"] != "ok" || r["log.type"] != "audit" {
			t.Errorf("record %v, want client %s reason %q", r, id, want[id])
		}
	}
	for _, secret := range []string{oldHash, newHash, keptHash, "old-secret", "new-secret"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the audit log holds a secret or its hash: %s", out.String())
		}
	}
}
