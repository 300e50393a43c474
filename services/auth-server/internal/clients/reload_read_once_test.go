package clients

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestReloadParsesWhatItFingerprinted: Watch takes a changed registry once
// two reads a settleDelay apart agree, and parses the bytes of the second
// — not a third read, made after the fingerprint. Real files: the file is
// rewritten by the test at the moment Watch has read the settled new
// registry (three clients), to the first part of it (one client, as a
// writer truncating and writing in place leaves it), and completed again
// at the next read. Before, Watch parsed that half, recorded the two
// clients it lacks as removed fleet-wide, and, the file then reading as
// the fingerprint it had taken, never read the whole registry again; now
// the registry in use is the whole one and nothing is removed. Bounded:
// the test waits for a number of Watch's reads, at most 30 s.
func TestReloadParsesWhatItFingerprinted(t *testing.T) {
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	entry := func(id string) string {
		return "  - client_id: " + id + "\n    redirect_uris: [\"https://" + id + ".example/cb\"]\n" +
			"    token_endpoint_auth_method: none\n    resources: [\"https://mcp.example/mcp\"]\n"
	}
	before := "clients:\n" + entry("app1") + entry("app2")
	whole := "clients:\n" + entry("app1") + entry("app2") + entry("app3")
	half := "clients:\n" + entry("app1")
	path := filepath.Join(t.TempDir(), "clients.yaml")
	writeAtomically(t, path, before)
	s, problems := LoadFile(path, rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}

	var mu sync.Mutex
	var reads, wholeReads int
	var halfWritten bool
	var removed [][]string
	s.readFile = func(p string) ([]byte, error) {
		b, err := os.ReadFile(p)
		mu.Lock()
		defer mu.Unlock()
		reads++
		switch string(b) {
		case whole:
			// The second read of the whole file is the one that settles
			// the change: the writer starts again at that moment.
			if wholeReads++; wholeReads == 2 && !halfWritten {
				halfWritten = true
				rewrite(t, path, half)
			}
		case half:
			rewrite(t, path, whole)
		}
		return b, err
	}
	record := func(_ context.Context, _ time.Time, ids []string) error {
		mu.Lock()
		defer mu.Unlock()
		removed = append(removed, ids)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, path, rules, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, record, nil)
	}()
	read := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return reads, halfWritten
	}
	for n, _ := read(); n < 1; n, _ = read() { // Watch has made its first tick's read
		time.Sleep(10 * time.Millisecond)
	}
	writeAtomically(t, path, whole)
	// The change settles (2 reads), the half is written and read, the
	// whole is written again and settles (2 more): 10 reads after the
	// half was written are past all of it.
	var since int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, half := read()
		if !half {
			since = n
		} else if n-since >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s and Watch made %d reads (the half written: %v)", n, half)
		}
	}
	cancel()
	<-done
	for _, id := range []string{"app1", "app2", "app3"} {
		if _, err := s.Get(id); err != nil {
			t.Errorf("client %s: %v; the registry in use is not the whole file", id, err)
		}
	}
	if len(removed) > 0 {
		t.Errorf("clients recorded as removed: %v; the file never lacked them once it settled", removed)
	}
	if b, _ := os.ReadFile(path); string(b) != whole {
		t.Fatalf("the file ends as %q, not the whole registry", b)
	}
}

// rewrite replaces the file at path with content, as writeAtomically,
// from any goroutine (an error fails the test without stopping it).
func rewrite(t *testing.T, path, content string) {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Error(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Error(err)
	}
}
