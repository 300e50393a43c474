package clients

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWatchTakesAChangeMadeBeforeItStarted (brk48 #3): the auth-server
// loads CLIENTS_FILE at start-up (run.go: LoadFile), then starts Watch
// much later (after discovery, Redis, the OAuth server), and Watch's
// starting fingerprint was a fresh read of the file — not of the bytes
// LoadFile parsed. A file changed in between (a ConfigMap update during a
// rollout, a writer finishing a file the start-up read half-written) was
// fingerprinted as current though the registry in use was the older one,
// and never loaded: the server served the old registry until the file
// changed again. Watch now starts from the fingerprint of the bytes
// LoadFile parsed: such a change is taken at the first tick, a broken one
// refused (Refused reports it), and a file unchanged since LoadFile is not
// reloaded. Real files; bounded: each case waits for a number of Watch's
// reads (at most 30 s).
func TestWatchTakesAChangeMadeBeforeItStarted(t *testing.T) {
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	entry := func(id string) string {
		return "  - client_id: " + id + "\n    redirect_uris: [\"https://" + id + ".example/cb\"]\n" +
			"    token_endpoint_auth_method: none\n    resources: [\"https://mcp.example/mcp\"]\n"
	}
	first := "clients:\n" + entry("app1")
	// watch loads first, writes then (unless empty: the file unchanged),
	// and runs Watch until it has read the file 10 times — the first tick
	// and the settling read, then ticks enough for a change to have been
	// taken — returning the registry and Watch's log.
	watch := func(t *testing.T, then string) (*Static, string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "clients.yaml")
		writeAtomically(t, path, first)
		s, problems := LoadFile(path, rules) // start-up
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		if then != "" { // the file changes while the server is still starting
			writeAtomically(t, path, then)
		}
		var mu sync.Mutex
		reads := 0
		s.readFile = func(p string) ([]byte, error) {
			mu.Lock()
			reads++
			mu.Unlock()
			return os.ReadFile(p)
		}
		var logs lockedBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Watch(ctx, path, rules, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)), nil, nil, nil)
		}()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			n := reads
			mu.Unlock()
			if n >= 10 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("30 s and Watch made %d reads", n)
			}
		}
		cancel()
		<-done
		return s, logs.String()
	}

	t.Run("changed", func(t *testing.T) {
		s, logs := watch(t, first+entry("app2"))
		if _, err := s.Get("app2"); err != nil {
			t.Errorf("client app2, in the file since before Watch started: %v; the registry in use is the one loaded at start-up, and the change is never taken\n%s", err, logs)
		}
		if r := s.Refused(); r != nil {
			t.Errorf("refused: %v", r.Problems)
		}
	})
	t.Run("changed and broken", func(t *testing.T) {
		// A client without redirect URIs: refused, app1 kept, and said so.
		s, logs := watch(t, first+"  - client_id: broken\n    token_endpoint_auth_method: none\n")
		r := s.Refused()
		if r == nil || !strings.Contains(strings.Join(r.Problems, "; "), "broken") {
			t.Errorf("a broken file written before Watch started: Refused = %+v, want its problems (client broken)\n%s", r, logs)
		}
		if !strings.Contains(logs, "client registry changed but was refused") {
			t.Errorf("no refusal logged:\n%s", logs)
		}
		if _, err := s.Get("app1"); err != nil {
			t.Errorf("client app1 of the registry in use: %v", err)
		}
	})
	t.Run("unchanged", func(t *testing.T) {
		s, logs := watch(t, "")
		if strings.Contains(logs, "client registry reloaded") || s.Refused() != nil {
			t.Errorf("a file unchanged since LoadFile was reloaded or refused:\n%s", logs)
		}
		if _, err := s.Get("app1"); err != nil {
			t.Errorf("client app1: %v", err)
		}
	})
}
