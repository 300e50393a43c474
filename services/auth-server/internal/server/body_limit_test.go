package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBodyOverTheLimitIs413: a request body over the OAuth endpoints'
// limit (64 KiB) is answered 413 Content Too Large (RFC 9110 §15.5.14),
// with the OAuth error body of the endpoint — invalid_request, or at
// registration invalid_client_metadata (RFC 7591 §3.2.2) — and says so;
// a body at the limit is read. Before, every one was 400, which tells a
// client nothing about what to change.
func TestBodyOverTheLimitIs413(t *testing.T) {
	f := startFleet(t, map[string]string{"DCR_ENABLED": "true"})
	c := f.Clients["local-test"]
	form := func(size int) string {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "token": {"x"}, "client_id": {c.ClientID}}.Encode() + "&pad="
		return v + strings.Repeat("a", size-len(v))
	}
	const limit = 64 << 10
	const want = "the request body is larger than 65536 bytes"
	for _, path := range []string{"/oauth/token", "/oauth/revoke", "/oauth/introspect", "/oauth/userinfo", "/oauth/consent/revoke"} {
		t.Run(path, func(t *testing.T) {
			st, code, desc := guardAnswer(t, f, path, []string{"application/x-www-form-urlencoded"}, "", form(limit+1))
			if st != http.StatusRequestEntityTooLarge || code != "invalid_request" || desc != want {
				t.Errorf("%d %s %q, want 413 invalid_request %q", st, code, desc, want)
			}
			// At the limit, the body is read: whatever the answer, it is
			// not about the body's size.
			st, code, desc = guardAnswer(t, f, path, []string{"application/x-www-form-urlencoded"}, "", form(limit))
			if st == http.StatusRequestEntityTooLarge || strings.Contains(desc, "larger than") {
				t.Errorf("a body of exactly %d bytes: %d %s %q", limit, st, code, desc)
			}
		})
	}
	t.Run("/oauth/register", func(t *testing.T) {
		body := func(size int) string {
			v := `{"redirect_uris":["http://127.0.0.1:8986/cb"],"token_endpoint_auth_method":"none","client_name":"x","software_id":"`
			return v + strings.Repeat("a", size-len(v)-2) + `"}`
		}
		st, code, desc := guardAnswer(t, f, "/oauth/register", []string{"application/json"}, "", body(limit+1))
		if want := "the body is larger than 65536 bytes"; st != http.StatusRequestEntityTooLarge || code != "invalid_client_metadata" || desc != want {
			t.Errorf("%d %s %q, want 413 invalid_client_metadata %q", st, code, desc, want)
		}
		if st, code, desc := guardAnswer(t, f, "/oauth/register", []string{"application/json"}, "", body(limit)); st != http.StatusCreated {
			t.Errorf("a body of exactly %d bytes: %d %s %q, want 201", limit, st, code, desc)
		}
	})
}
