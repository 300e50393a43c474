package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

func scopesSupported(t *testing.T, f *fleet) []string {
	t.Helper()
	resp, err := http.Get(f.Base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		ScopesSupported []string `json:"scopes_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	return md.ScopesSupported
}

// The scopes follow the backends: a backend down at start joins
// scopes_supported, client registration and consent (for a client allowed
// every scope) after a refresh; when it drops its service, the scope is
// refused again.
func TestScopesFollowTheBackends(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{{Package: "notes", Name: "NotesService",
		Scopes: []*optionsv1.Scope{{Name: "notes.read", Description: "Read your notes"}}}})
	notes.Stop()
	f := startFleetWith(t, map[string]string{
		"CAPABILITY_BACKENDS":         "shipments=" + startShipmentsBackend(t) + ",notes=" + notes.Addr,
		"CAPABILITY_REFRESH_INTERVAL": "1s",
	}, `- client_id: any-scope-app
  client_name: Any scope app
  redirect_uris: ["http://127.0.0.1:8979/any-callback"]
  token_endpoint_auth_method: none
  resources: ["BASE/mcp"]
`)
	if got := scopesSupported(t, f); !slices.Contains(got, "shipments.read") || slices.Contains(got, "notes.read") {
		t.Fatalf("scopes_supported with notes down = %v", got)
	}
	if st, reg := register(t, f, `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","scope":"openid notes.read"}`); st != http.StatusBadRequest {
		t.Errorf("register notes.read while notes is down: %d %v", st, reg)
	}

	notes.Restart(t)
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(scopesSupported(t, f), "notes.read") {
		if time.Now().After(deadline) {
			t.Fatal("notes.read never joined scopes_supported")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, reg := register(t, f, `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","scope":"openid notes.read"}`); st != http.StatusCreated {
		t.Errorf("register notes.read: %d %v", st, reg)
	}
	// A client that names no scopes may ask for the new one; consent
	// shows its words.
	c := devClient{ClientID: "any-scope-app", RedirectURIs: []string{"http://127.0.0.1:8979/any-callback"}, AuthMethod: "none"}
	a := newAuthRequest(c)
	a.Scope = "openid notes.read"
	b := newBrowser(t, a.RedirectURI)
	p := f.login(b, a)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "<li>Read your notes</li>") {
		t.Fatalf("consent for notes.read: %d %v\n%s", p.Status, p.Location, p.Body)
	}

	// The backend drops the service: the scope goes.
	notes.Serve(t)
	deadline = time.Now().Add(30 * time.Second)
	for slices.Contains(scopesSupported(t, f), "notes.read") {
		if time.Now().After(deadline) {
			t.Fatal("notes.read stayed in scopes_supported")
		}
		time.Sleep(100 * time.Millisecond)
	}
	a = newAuthRequest(c)
	a.Scope = "openid notes.read"
	p = newBrowser(t, a.RedirectURI).get(a.URL(f.Base))
	if p.Location == nil || p.Location.Query().Get("error") != "invalid_scope" {
		t.Errorf("notes.read after its service went: %d %v, want invalid_scope", p.Status, p.Location)
	}
}
