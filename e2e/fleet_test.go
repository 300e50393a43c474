package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/tollgate/tollgate/e2e/harness"
	"github.com/tollgate/tollgate/services/platform/devfleet"
)

// fleet is shared by every test of the package: building and starting it
// once keeps the suite fast.
var fleet *harness.Fleet

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	f, err := harness.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the fleet did not start:", err)
		os.Exit(1)
	}
	fleet = f
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: fleet log:\n%s\n", f.Logs)
	}
	f.Stop()
	os.Exit(code)
}

func getJSON(t *testing.T, url string, v any) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp
}

// TestHealthThroughTheIngress: /health on the public origin is routed to
// actions-api, which asks capability-core over gRPC.
func TestHealthThroughTheIngress(t *testing.T) {
	var h struct {
		Service, Version, Status, Timestamp string
		Checks                              []struct{ Name, Status string }
	}
	resp := getJSON(t, fleet.Origin+"/health", &h)
	if resp.StatusCode != 200 || h.Service != "capability-core" || h.Status != "ok" || len(h.Checks) == 0 {
		t.Fatalf("GET /health = %d %+v", resp.StatusCode, h)
	}
	if ts, err := time.Parse(time.RFC3339Nano, h.Timestamp); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("timestamp %q is not a fresh RFC 3339 time", h.Timestamp)
	}
}

func TestEveryComponentIsReady(t *testing.T) {
	for _, name := range devfleet.Services {
		admin := fleet.AdminURL(name)
		if admin == "" {
			t.Errorf("%s has no admin URL", name)
			continue
		}
		var body struct{ Status string }
		if resp := getJSON(t, admin+"/healthz/ready", &body); resp.StatusCode != 200 || body.Status != "ok" {
			t.Errorf("%s ready = %d %q", name, resp.StatusCode, body.Status)
		}
		if resp := getJSON(t, admin+"/metrics", nil); resp.StatusCode != 200 {
			t.Errorf("%s metrics = %d", name, resp.StatusCode)
		}
	}
}

func TestUnroutedPathsAreNotFound(t *testing.T) {
	var body struct{ Error string }
	if resp := getJSON(t, fleet.Origin+"/internal/debug", &body); resp.StatusCode != 404 || body.Error != "not_found" {
		t.Errorf("GET /internal/debug = %d %+v", resp.StatusCode, body)
	}
}

func TestDevCredentialsAreWritten(t *testing.T) {
	for _, id := range []string{"local-test", "gpt-actions", "gpt-apps-mcp"} {
		c, ok := fleet.Client(id)
		if !ok || c.ClientSecret == "" || len(c.RedirectURIs) == 0 || c.Audience == "" {
			t.Errorf("clients.json entry for %s = %+v", id, c)
		}
	}
	if fleet.Creds.User.Username == "" || fleet.Creds.User.Password == "" {
		t.Error("clients.json has no dev IdP user")
	}
}
