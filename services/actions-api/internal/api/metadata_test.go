package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/actions-api/internal/api"
)

// metadataURL is where RFC 9728 §3.1 puts the metadata of the resource
// audience (http://actions.test/actions): the well-known suffix between the
// host and the path.
const metadataURL = "http://actions.test/.well-known/oauth-protected-resource/actions"

// The Actions resource publishes its protected resource metadata (RFC 9728
// §2, §3): resource is ACTIONS_AUDIENCE (the audience the auth-server binds
// Actions tokens to, §3.3), the issuer as its one authorization server, the
// registry's scopes and the header bearer method; a 401 points at it
// (§5.1, checked for every refusal in TestBearerRefusals); other well-known
// paths, and methods other than GET and HEAD, get the JSON error shape.
func TestProtectedResourceMetadata(t *testing.T) {
	f := start(t, nil)
	r := f.do(t, http.MethodGet, api.WellKnownProtectedResource+"/actions", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET metadata: %d %v %s", r.status, r.header, r.body)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m["resource"] != audience {
		t.Errorf("resource = %v, want %s", m["resource"], audience)
	}
	if as, _ := m["authorization_servers"].([]any); len(as) != 1 || as[0] != issuerURL {
		t.Errorf("authorization_servers = %v", m["authorization_servers"])
	}
	if bm, _ := m["bearer_methods_supported"].([]any); len(bm) != 1 || bm[0] != "header" {
		t.Errorf("bearer_methods_supported = %v", m["bearer_methods_supported"])
	}
	var scopes []string
	for _, s := range m["scopes_supported"].([]any) {
		scopes = append(scopes, s.(string))
	}
	// Every scope an operation requires is listed (and openid).
	want := []string{"openid"}
	for _, ss := range f.protected(t) {
		want = append(want, ss...)
	}
	for _, s := range want {
		if !slices.Contains(scopes, s) {
			t.Errorf("scopes_supported %v lacks %s", scopes, s)
		}
	}
	if h := f.do(t, http.MethodHead, "/.well-known/oauth-protected-resource/actions", nil); h.status != http.StatusOK {
		t.Errorf("HEAD metadata: %d", h.status)
	}
	// The challenge's resource_metadata names this document.
	if ch := f.do(t, http.MethodGet, "/actions/profile", nil).header.Get("WWW-Authenticate"); !strings.Contains(ch, `resource_metadata="`+metadataURL+`"`) {
		t.Errorf("401 challenge %q lacks resource_metadata", ch)
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
		"/.well-known/oauth-protected-resource/actions/x", "/.well-known/unknown"} {
		if r := f.do(t, http.MethodGet, path, nil); r.status != http.StatusNotFound || r.err.Error == "" {
			t.Errorf("GET %s: %d %s, want a JSON 404", path, r.status, r.body)
		}
	}
	if r := f.do(t, http.MethodPost, "/.well-known/oauth-protected-resource/actions", nil); r.status != http.StatusMethodNotAllowed || r.err.Error == "" {
		t.Errorf("POST metadata: %d %s, want a JSON 405", r.status, r.body)
	}
}
