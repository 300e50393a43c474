package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
)

// TestRegistryScopeChangeIsTheFilesSetting: a reload's
// client_registry_change record says "scope" when the file's scopes
// member of a client changed — absent ("all supported") to a list, or one
// list to another set — not when the scopes supported changed under a
// client that lists none (a backend declared a new scope), nor when a list
// only changed order. Through the real reload path: CLIENTS_FILE
// rewritten, Watch, the audit records read from the log.
func TestRegistryScopeChangeIsTheFilesSetting(t *testing.T) {
	var supported atomic.Pointer[[]string]
	supported.Store(&[]string{"openid", "profile"})
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}, ScopeSource: func() []string { return *supported.Load() }}
	client := func(id, cb, scopes string) string {
		s := "  - client_id: " + id + "\n    redirect_uris: [\"" + cb + "\"]\n    token_endpoint_auth_method: none\n    resources: [\"https://mcp.example/mcp\"]\n"
		if scopes != "" {
			s += "    scopes: " + scopes + "\n"
		}
		return s
	}
	path := filepath.Join(t.TempDir(), "clients.yaml")
	writeAtomically(t, path, "clients:\n"+
		client("all", "https://all.example/cb", "")+
		client("listed", "https://listed.example/cb", "[openid, profile]")+
		client("marker", "https://marker.example/cb1", ""))
	s, problems := LoadFile(path, rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var out, logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, path, rules, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)), nil, nil, audit.New(&out, "auth-server"))

	// records are the client_registry_change records so far, as
	// "client_id: reason", in the order written.
	records := func() []string {
		var recs []string
		for _, line := range strings.Split(out.String(), "\n") {
			m := map[string]any{}
			if json.Unmarshal([]byte(line), &m) == nil && m["event"] == "client_registry_change" {
				recs = append(recs, m["client_id"].(string)+": "+m["reason"].(string))
			}
		}
		return recs
	}
	// reload writes the file and waits for the record of marker, whose
	// redirect URI each step changes: a reload writes its records sorted
	// by client id, so those of "all" and "listed" come before it.
	reload := func(step int, content string) {
		t.Helper()
		writeAtomically(t, path, content)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			n := 0
			for _, r := range records() {
				if strings.HasPrefix(r, "marker: ") {
					n++
				}
			}
			if n == step {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d: no record of marker 30 s after the reload: %q\n%s", step, records(), logs.String())
			}
		}
	}

	// A refused reload (a client without redirect URIs), written anew
	// until one is logged, says Watch is running.
	for attempt := 0; !strings.Contains(logs.String(), "was refused"); attempt++ {
		if attempt == 30 {
			t.Fatalf("no refused reload logged: %s", logs.String())
		}
		writeAtomically(t, path, fmt.Sprintf("# %d\nclients:\n  - client_id: broken\n    token_endpoint_auth_method: none\n", attempt))
		for i := 0; i < 50 && !strings.Contains(logs.String(), "was refused"); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}

	// 1. A backend declares notes.read; the file changes marker only.
	supported.Store(&[]string{"openid", "profile", "notes.read"})
	reload(1, "clients:\n"+
		client("all", "https://all.example/cb", "")+
		client("listed", "https://listed.example/cb", "[openid, profile]")+
		client("marker", "https://marker.example/cb2", ""))
	// 2. "all" comes to list exactly the scopes supported now (its
	// AllowedScope stays the same, its setting does not: it no longer
	// gets a scope declared later); "listed" reorders its list.
	reload(2, "clients:\n"+
		client("all", "https://all.example/cb", "[openid, profile, notes.read]")+
		client("listed", "https://listed.example/cb", "[profile, openid]")+
		client("marker", "https://marker.example/cb3", ""))

	want := []string{
		"marker: changed: redirect_uris",
		"all: changed: scope",
		"marker: changed: redirect_uris",
	}
	if got := records(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
