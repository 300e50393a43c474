package oauth

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

func fullSession() *Session {
	now := time.Unix(1_790_000_000, 0).UTC()
	s := NewSession()
	s.Subject, s.Username = "dev-user-0001", "dev"
	s.ExpiresAt = map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour), fosite.RefreshToken: now.Add(720 * time.Hour)}
	s.Claims = &fjwt.IDTokenClaims{
		JTI: "j", Issuer: "http://127.0.0.1:4000", Subject: "dev-user-0001", Audience: []string{"a", "b"}, Nonce: "n",
		ExpiresAt: now, IssuedAt: now, RequestedAt: now, AuthTime: now, AccessTokenHash: "ah",
		AuthenticationContextClassReference: "acr", AuthenticationMethodsReferences: []string{"pwd"}, CodeHash: "ch",
		Extra: map[string]any{"s": "x", "n": 1.5, "b": true, "z": nil, "l": []any{"y", map[string]any{"k": "v"}}, "m": map[string]any{"k": []any{1.0}}},
	}
	s.Headers = &fjwt.Headers{Extra: map[string]any{"kid": "k1"}}
	s.Profile = tokens.Profile{Name: "Dev User", Email: "dev@example.com", EmailVerified: true, PreferredUsername: "dev"}
	s.UpstreamIssuer = "http://127.0.0.1:4500"
	return s
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSessionClone: Clone gives what the JSON round trip gave, shares no
// map or slice with the original, and falls back to the round trip when
// the Extra maps hold other than JSON values.
func TestSessionClone(t *testing.T) {
	orig := fullSession()
	want := mustJSON(t, orig.cloneJSON())
	c := orig.Clone().(*Session)
	if got := mustJSON(t, c); got != want {
		t.Fatalf("clone\n%s\nwant\n%s", got, want)
	}
	// Mutating the clone leaves the original as it was.
	before := mustJSON(t, orig)
	c.ExpiresAt[fosite.AccessToken] = time.Time{}
	c.Claims.Audience[0] = "changed"
	c.Claims.AuthenticationMethodsReferences[0] = "changed"
	c.Claims.Extra["s"] = "changed"
	c.Claims.Extra["l"].([]any)[0] = "changed"
	c.Claims.Extra["l"].([]any)[1].(map[string]any)["k"] = "changed"
	c.Claims.Extra["m"].(map[string]any)["k"].([]any)[0] = 2.0
	c.Claims.Subject = "changed"
	c.Headers.Extra["kid"] = "changed"
	c.Subject = "changed"
	if after := mustJSON(t, orig); after != before {
		t.Fatalf("the clone shares state with the original:\n%s\n%s", before, after)
	}

	// Non-JSON values in Extra: the round trip, as before.
	orig = fullSession()
	orig.Claims.Extra["typed"] = []string{"x"}
	c = orig.Clone().(*Session)
	if got, want := mustJSON(t, c), mustJSON(t, orig.cloneJSON()); got != want {
		t.Fatalf("fallback clone\n%s\nwant\n%s", got, want)
	}
	if _, ok := c.Claims.Extra["typed"].([]any); !ok {
		t.Fatalf("fallback did not go through JSON: %T", c.Claims.Extra["typed"])
	}

	// Empty and nil parts.
	for _, s := range []*Session{NewSession(), {}, {DefaultSession: openid.DefaultSession{Claims: &fjwt.IDTokenClaims{}}}} {
		if got, want := mustJSON(t, s.Clone()), mustJSON(t, s.cloneJSON()); got != want {
			t.Errorf("clone of %s = %s, want %s", mustJSON(t, s), got, want)
		}
	}
	if (*Session)(nil).Clone() != nil {
		t.Error("clone of nil")
	}
}

// TestSessionCloneFields fails when fosite or tokens.Profile gain a field:
// Clone copies field by field and must then be looked at again.
func TestSessionCloneFields(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{
		{Session{}, 3}, {openid.DefaultSession{}, 5}, {fjwt.IDTokenClaims{}, 14}, {fjwt.Headers{}, 1}, {tokens.Profile{}, 6},
	} {
		if n := reflect.TypeOf(c.v).NumField(); n != c.want {
			t.Errorf("%T has %d fields, Clone knows %d: update Session.Clone", c.v, n, c.want)
		}
	}
}
