package server_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBearerIsAnAccessTokenOnly: userinfo and the consent revocation take
// an access token as the bearer credential (RFC 6750 §2); a refresh token
// is sent to the token endpoint only (RFC 6749 §1.5) and is answered 401
// invalid_token with its Bearer challenge (RFC 6750 §3), as an ID token
// is. fosite's introspection falls back from the access token it is asked
// for to a refresh token, and userinfo answered the profile for one.
func TestBearerIsAnAccessTokenOnly(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	call := func(method, path, bearer string, form url.Values) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.Base+path, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, tc := range []struct{ name, token string }{{"refresh token", tr.RefreshToken}, {"ID token", tr.IDToken}} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			st, h, body := call(method, "/oauth/userinfo", tc.token, url.Values{})
			if st != http.StatusUnauthorized || !strings.Contains(body, `"invalid_token"`) || strings.Contains(body, `"sub"`) ||
				!strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="tollgate", error="invalid_token"`) {
				t.Errorf("%s userinfo with a %s: %d %q %s, want 401 invalid_token with a Bearer challenge", method, tc.name, st, h.Get("WWW-Authenticate"), body)
			}
		}
		if st, _, body := call(http.MethodPost, "/oauth/consent/revoke", tc.token, url.Values{"client_id": {c.ClientID}}); st != http.StatusUnauthorized {
			t.Errorf("consent revocation with a %s: %d %s, want 401", tc.name, st, body)
		}
	}
	// The access token still works, and the refresh token at the token endpoint.
	if st, m := f.userinfo(tr.AccessToken); st != http.StatusOK || m["sub"] == nil {
		t.Errorf("userinfo with the access token: %d %v", st, m)
	}
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("refresh: %d %s %s", r.Status, r.Error, r.Description)
	}
}
