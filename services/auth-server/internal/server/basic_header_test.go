package server_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBasicCredentialsAsSent: the Authorization header of the Basic
// scheme at the token, introspection and revocation endpoints, over real
// HTTP and Redis —
//   - credentials after two spaces (RFC 9110 §11.4: 1*SP) or a lower-case
//     scheme name (§11.1) authenticate the client;
//   - credentials that are not base64 of "id:secret", or the scheme name
//     alone, are 401 invalid_client with the Basic challenge (RFC 6749
//     §5.2: the client tried the Authorization header) saying the
//     credentials could not be read. Before, both were answered "no client
//     authentication: send client_id …", and the bare scheme name at
//     introspection "bearer tokens are not accepted here".
func TestBasicCredentialsAsSent(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	creds := base64.StdEncoding.EncodeToString([]byte(c.ClientID + ":" + c.ClientSecret))
	send := func(path, body, authz string) (int, string, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.Base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", authz)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), m
	}
	requests := map[string]string{
		"/oauth/token":      "grant_type=refresh_token&refresh_token=ory_rt_unknown.unknown",
		"/oauth/introspect": "token=" + tr.AccessToken,
		"/oauth/revoke":     "token=garbage",
	}
	authenticated := map[string]int{"/oauth/token": http.StatusBadRequest, "/oauth/introspect": http.StatusOK, "/oauth/revoke": http.StatusOK}
	for path, body := range requests {
		for _, authz := range []string{"Basic  " + creds, "basic " + creds, "BASIC   " + creds} {
			st, _, m := send(path, body, authz)
			if st != authenticated[path] || (path == "/oauth/token" && m["error"] != "invalid_grant") || (path == "/oauth/introspect" && m["active"] != true) {
				t.Errorf("%s with %.12q…: %d %v, want the client authenticated (%d)", path, authz, st, m, authenticated[path])
			}
		}
		for _, authz := range []string{"Basic !!!notbase64", "Basic", "Basic ", "Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon"))} {
			st, challenge, m := send(path, body, authz)
			desc, _ := m["error_description"].(string)
			if st != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.HasPrefix(challenge, "Basic ") || !strings.Contains(desc, "Basic credentials could not be read") {
				t.Errorf("%s with %q: %d %q %v, want 401 invalid_client, a Basic challenge, saying the credentials could not be read", path, authz, st, challenge, m)
			}
		}
	}
}
