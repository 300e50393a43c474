package clients

import "testing"

// TestStaticHasJWKSURI: the operator's registry names its clients'
// jwks_uris (the auth-server fetches and caches those apart from the ones
// anonymous callers name, brk47), a registry reloaded with Replace names
// the new ones only, and a nil registry names none.
func TestStaticHasJWKSURI(t *testing.T) {
	doc := func(uri string) []byte {
		return []byte(`{"clients":[{"client_id":"pk","token_endpoint_auth_method":"private_key_jwt","jwks_uri":"` + uri + `",` +
			`"redirect_uris":["https://app.example/cb"],"resources":["https://mcp.example/mcp"]}]}`)
	}
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	s, problems := Parse(doc("https://app.example/jwks.json"), rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for uri, want := range map[string]bool{"https://app.example/jwks.json": true, "https://app.example/jwks.json?x": false, "https://evil.example/jwks.json": false, "": false} {
		if got := s.HasJWKSURI(uri); got != want {
			t.Errorf("HasJWKSURI(%q) = %v, want %v", uri, got, want)
		}
	}
	next, problems := Parse(doc("https://app.example/v2/jwks.json"), rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	s.Replace(next)
	if s.HasJWKSURI("https://app.example/jwks.json") || !s.HasJWKSURI("https://app.example/v2/jwks.json") {
		t.Error("after Replace: want the new registry's jwks_uri only")
	}
	if (*Static)(nil).HasJWKSURI("https://app.example/jwks.json") {
		t.Error("a nil registry names a jwks_uri")
	}
}
