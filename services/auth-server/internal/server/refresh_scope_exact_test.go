package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A refresh's scope parameter names granted scopes exactly as written:
// scope tokens are case-sensitive (RFC 6749 §3.3), so "OPENID" is not the
// granted "openid" and the refresh is invalid_scope (§5.2), as the
// authorization endpoint refuses it. It was compared without regard to
// case (fosite's Arguments.Has) and narrowed with it: scope=OPENID got 200
// with tokens of no scope and no ID token, "openid EMAIL" 200 with
// "openid" (brk49 #1). A refused refresh rotates nothing: the token then
// refreshes with the exact scope.
func TestRefreshScopeIsCaseSensitive(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["gpt-apps-mcp"]
	tr := f.fullFlow(c, newAuthRequest(c)) // openid profile email
	refresh := func(scope string) tokenResponse {
		return f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "scope": {scope}})
	}
	for _, tc := range []struct{ scope, named string }{
		{"OPENID", "OPENID"},
		{"OpenID Email", "OpenID"},
		{"openid EMAIL", "EMAIL"},
	} {
		r := refresh(tc.scope)
		if r.Status != http.StatusBadRequest || r.Error != "invalid_scope" || !strings.Contains(r.Description, "The scope '"+tc.named+"' ") {
			t.Errorf("refresh with scope %q: %d %s %q (response scope %q, ID token %v); want 400 invalid_scope naming %q (scopes are case-sensitive, RFC 6749 §3.3)",
				tc.scope, r.Status, r.Error, r.Description, r.Scope, r.IDToken != "", tc.named)
		}
	}
	r := refresh("openid email")
	if r.Status != http.StatusOK || r.Scope != "openid email" || r.IDToken == "" {
		t.Fatalf("refresh with the exact scope after the refusals: %d %s %q, scope %q, ID token %v; want 200 \"openid email\" with an ID token",
			r.Status, r.Error, r.Description, r.Scope, r.IDToken != "")
	}
}

// A refused refresh's error_description quotes the refused scope in the
// characters RFC 6749 §5.2 allows there (%x20-21 / %x23-5B / %x5D-7E:
// '\' becomes '/', anything else outside the set '?', as the
// authorization endpoint's descriptions) and at most 64 bytes of it
// ("..." when cut). It quoted the scope as sent: a backslash, a DEL,
// non-ASCII letters, and 300 bytes of it in full (brk49 #2).
func TestRefreshScopeRefusalQuotesSanitized(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["gpt-apps-mcp"]
	tr := f.fullFlow(c, newAuthRequest(c))
	for _, tc := range []struct{ scope, quoted string }{
		{"openid a\\b", "a/b"},
		{"openid é", "?"},
		{"openid a\x7fb", "a?b"},
		{"openid a\"b", "a'b"},
		{"openid " + strings.Repeat("z", 300), strings.Repeat("z", 64) + "..."},
		{"openid " + strings.Repeat("z", 63) + "é", strings.Repeat("z", 63) + "..."},
	} {
		r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "scope": {tc.scope}})
		if r.Status != http.StatusBadRequest || r.Error != "invalid_scope" || !strings.Contains(r.Description, " The scope '"+tc.quoted+"' ") {
			t.Errorf("refresh with scope %.40q: %d %s %.200q; want 400 invalid_scope, the description saying \"The scope '%s' \"",
				tc.scope, r.Status, r.Error, r.Description, tc.quoted)
		}
	}
}
