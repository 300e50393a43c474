package clients

import (
	"slices"
	"strings"
	"testing"
)

// TestUnsupportedScopesOneRule: a client's scope is unsupported by one
// rule (Client.unsupportedScopes), which both Rules.Check (a client's
// problems when it is loaded or registered) and Static.UnsupportedScopes
// (the static clients checked again at each change of the backends'
// scopes) apply: the scopes the client allows that the supported list
// does not hold, each reported once per time it is listed, in the
// client's order for Check, as sorted "client_id scope" for the registry.
// While the supported scopes are unknown, Check reports none.
func TestUnsupportedScopesOneRule(t *testing.T) {
	supported := []string{"openid", "notes.read"}
	a := &Client{ID: "a", AllowedScope: []string{"notes.write", "openid", "files.read"}}
	b := &Client{ID: "b", AllowedScope: []string{"notes.read"}}
	z := &Client{ID: "0z", AllowedScope: []string{"calendar"}}
	s := newStatic(map[string]*Client{"a": a, "b": b, "0z": z})
	if got, want := s.UnsupportedScopes(supported), []string{"0z calendar", "a files.read", "a notes.write"}; !slices.Equal(got, want) {
		t.Errorf("UnsupportedScopes = %q, want %q", got, want)
	}
	if got := s.UnsupportedScopes([]string{"openid", "notes.read", "notes.write", "files.read", "calendar"}); len(got) != 0 {
		t.Errorf("UnsupportedScopes with every scope supported = %q, want none", got)
	}

	rules := Rules{Scopes: supported}
	scopeProblems := func(r Rules, c *Client) []string {
		var out []string
		for _, p := range r.Check(c) {
			if strings.Contains(p, `: scope "`) {
				out = append(out, p)
			}
		}
		return out
	}
	if got, want := scopeProblems(rules, a), []string{
		`client "a": scope "notes.write" is not supported (openid, notes.read)`,
		`client "a": scope "files.read" is not supported (openid, notes.read)`,
	}; !slices.Equal(got, want) {
		t.Errorf("Check: scope problems %q, want %q", got, want)
	}
	if got := scopeProblems(rules, b); len(got) != 0 {
		t.Errorf("Check of a supported client: scope problems %q, want none", got)
	}
	unknown := Rules{Scopes: supported, ScopesUnknown: AlwaysUnknown}
	if got := scopeProblems(unknown, a); len(got) != 0 {
		t.Errorf("Check while the scopes are unknown: %q, want none", got)
	}
}
