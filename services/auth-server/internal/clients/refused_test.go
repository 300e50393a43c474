package clients

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRefusedReloadIsVisible: a CLIENTS_FILE change that is refused kept
// the previous registry with one log line, and nothing else said so.
// Refused now reports it — with the file's problems and the time it was
// first refused, kept through a later refused change — until a reload is
// accepted; the WARN is logged when the file is refused and then at most
// once every refusedWarnEvery for a later refused change (here an hour:
// one line through two refused changes); Watch does not remind while
// nothing changes (the readiness dependency does). The previous clients
// serve throughout.
func TestRefusedReloadIsVisible(t *testing.T) {
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	entry := func(id, redirect string) string {
		return "  - client_id: " + id + "\n    redirect_uris: [\"" + redirect + "\"]\n" +
			"    token_endpoint_auth_method: none\n    resources: [\"https://mcp.example/mcp\"]\n"
	}
	good := "clients:\n" + entry("app", "https://app.example/cb")
	bad1 := "clients:\n" + entry("app", "https://app.example/cb#frag")
	bad2 := "clients:\n" + entry("app", "ftp://app.example/cb")
	// watch starts Watch on a good registry; reads, if set, counts its
	// reads of the file (one a tick while nothing changes).
	watch := func(t *testing.T, every time.Duration, reads *atomic.Int64) (*Static, string, *lockedBuffer) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "clients.yaml")
		writeAtomically(t, path, good)
		s, problems := LoadFile(path, rules)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		s.warnEvery = every
		if reads != nil {
			s.readFile = func(p string) ([]byte, error) { reads.Add(1); return os.ReadFile(p) }
		}
		var logs lockedBuffer
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go s.Watch(ctx, path, rules, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)), nil, nil, nil)
		return s, path, &logs
	}
	eventually := func(t *testing.T, what string, cond func() bool, logs *lockedBuffer) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("30 s and not %s:\n%s", what, logs.String())
			}
		}
	}
	// firstChange writes content (with a changing comment) until cond,
	// each write left to settle (settleDelay) before the next. Watch
	// starts from the bytes LoadFile parsed, so the first write is a
	// change wherever it lands; the rewrites only bound the wait.
	firstChange := func(t *testing.T, path, content string, cond func() bool, logs *lockedBuffer) {
		t.Helper()
		for i, deadline := 0, time.Now().Add(30*time.Second); !cond(); i++ {
			if time.Now().After(deadline) {
				t.Fatalf("30 s and the change is not taken:\n%s", logs.String())
			}
			writeAtomically(t, path, content+"# write "+strconv.Itoa(i)+"\n")
			for until := time.Now().Add(3 * settleDelay); !cond() && time.Now().Before(until); {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	warns := func(logs *lockedBuffer) int {
		return strings.Count(logs.String(), "level=WARN")
	}
	refusedWith := func(s *Static, want string) bool {
		r := s.Refused()
		return r != nil && slices.ContainsFunc(r.Problems, func(p string) bool { return strings.Contains(p, want) })
	}

	t.Run("refused, then accepted", func(t *testing.T) {
		s, path, logs := watch(t, time.Hour, nil)
		if s.Refused() != nil {
			t.Fatal("refused before any change")
		}
		firstChange(t, path, bad1, func() bool { return refusedWith(s, "fragment") }, logs)
		since := s.Refused().Since
		if c, err := s.Get("app"); err != nil || c.RedirectURIs[0] != "https://app.example/cb" {
			t.Errorf("the previous registry is not in use: %v %v", c, err)
		}
		writeAtomically(t, path, bad2)
		eventually(t, "refused (scheme)", func() bool { return refusedWith(s, "scheme") }, logs)
		if got := s.Refused().Since; !got.Equal(since) {
			t.Errorf("Since %s after a second refused change, want the first refusal's %s", got, since)
		}
		if n := warns(logs); n != 1 || !strings.Contains(logs.String(), "client registry changed but was refused") {
			t.Errorf("%d WARN lines within the hour, want 1 (the first refusal):\n%s", n, logs.String())
		}
		writeAtomically(t, path, good)
		// Watch clears the refusal, then logs that the file is accepted
		// again: the line is waited for (Refused() nil came before it),
		// and the refusal is cleared by then.
		eventually(t, "a line saying the file is accepted again", func() bool {
			return strings.Contains(logs.String(), "client registry file accepted again")
		}, logs)
		if r := s.Refused(); r != nil {
			t.Errorf("accepted again, but still refused: %v", r.Problems)
		}
	})

	t.Run("no reminder from Watch while refused", func(t *testing.T) {
		// The reminder is the readiness dependency's (the auth-server's
		// clients-file): Watch repeating it too made two WARN lines a
		// minute. With the least interval between its lines, Watch ticks
		// (each reads the file once) and logs one WARN, the refusal.
		var reads atomic.Int64
		s, path, logs := watch(t, time.Nanosecond, &reads)
		firstChange(t, path, bad1, func() bool { return s.Refused() != nil }, logs)
		at := reads.Load()
		eventually(t, "20 more reload ticks", func() bool { return reads.Load() >= at+20 }, logs)
		if n := warns(logs); n != 1 || !strings.Contains(logs.String(), "client registry changed but was refused") {
			t.Errorf("%d WARN lines over 20 reload ticks of a refused file, want 1 (the refusal):\n%s", n, logs.String())
		}
	})
}
