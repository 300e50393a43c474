package server_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestRefusedClientsFileIsVisible: a CLIENTS_FILE reload that is refused
// (a bad file after a change) kept the previous clients with one log line
// and nothing else. Now, through the real auth-server's admin listener:
// tollgate_auth_clients_file_refused is 0, then 1 while the file on disk is
// refused, and 0 again after a good reload; /healthz/ready reports the
// dependency "clients-file" down while refused — and stays 200: the pod
// serves the previous registry, as every replica reading the same file
// does (a dependency, reported, never gating, as Redis) — and the WARN
// names the file's problem, as does the readiness dependency's, the one
// that repeats while the file stays refused. The previous clients sign in throughout.
func TestRefusedClientsFileIsVisible(t *testing.T) {
	f := startFleet(t, map[string]string{"CLIENTS_FILE_RELOAD_INTERVAL": "100ms"})
	c := f.Clients["local-test"]
	get := func(path string) (int, string) {
		resp, err := http.Get(f.Admin() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	gauge := func() string {
		_, b := get("/metrics")
		for _, line := range strings.Split(b, "\n") {
			if strings.HasPrefix(line, "tollgate_auth_clients_file_refused ") {
				return line
			}
		}
		return ""
	}
	ready := func(want string) {
		t.Helper()
		if st, body := get("/healthz/ready"); st != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("readiness %d %s, want 200 with %s", st, body, want)
		}
	}
	if g := gauge(); g != "tollgate_auth_clients_file_refused 0" {
		t.Fatalf("at the start: %q", g)
	}
	ready(`{"name":"clients-file","status":"ok"}`)

	path := filepath.Join(f.Dir, "clients.yaml")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(good)+"- client_id: broken\n  redirect_uris: [\"https://broken.example/cb#frag\"]\n  token_endpoint_auth_method: none\n  resources: [\"BASE/mcp\"]\n")
	testharness.Eventually(t, 30*time.Second, "the gauge at 1", func() (bool, string) { g := gauge(); return g == "tollgate_auth_clients_file_refused 1", g })
	ready(`{"name":"clients-file","status":"down","error":"failed"}`)
	if logs := f.AS.Logs.String(); !strings.Contains(logs, "client registry changed but was refused") || !strings.Contains(logs, "must not have a fragment") {
		t.Errorf("no WARN naming the problem:\n%s", logs)
	}
	// The readiness dependency's WARN — the one that repeats, once a
	// minute, while the file stays refused — names the problems too.
	named := false
	for _, line := range strings.Split(f.AS.Logs.String(), "\n") {
		if strings.Contains(line, "readiness: dependency down") && strings.Contains(line, "clients-file") {
			named = named || strings.Contains(line, "must not have a fragment")
		}
	}
	if !named {
		t.Errorf("the readiness WARN for clients-file does not name the problem:\n%s", f.AS.Logs.String())
	}
	if tr := f.fullFlow(c, newAuthRequest(c)); tr.AccessToken == "" {
		t.Error("the previous registry does not serve")
	}

	writeFile(t, path, string(good))
	testharness.Eventually(t, 30*time.Second, "the gauge at 0", func() (bool, string) { g := gauge(); return g == "tollgate_auth_clients_file_refused 0", g })
	ready(`{"name":"clients-file","status":"ok"}`)
}
