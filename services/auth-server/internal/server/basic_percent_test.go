package server_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBasicMalformedPercentEncoding: RFC 6749 §2.3.1 has the client id and
// secret form-urlencoded before they are put in the Basic credentials, so
// one that does not decode ("%zz", a "%" at the end) is a failed client
// authentication — 401 invalid_client with the Basic challenge (RFC 6749
// §5.2), audited as a client_authentication_failure naming the id as
// sent — at the token, introspection and revocation endpoints, over real
// HTTP and Redis. Before, fosite answered 400 invalid_request ("could not
// be decoded from 'application/x-www-form-urlencoded'") and nothing was
// audited.
func TestBasicMalformedPercentEncoding(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	endpoints := map[string]string{
		"token":      "grant_type=refresh_token&refresh_token=ory_rt_unknown.unknown",
		"introspect": "token=" + url.QueryEscape(tr.AccessToken),
		"revoke":     "token=garbage",
	}
	cases := []struct{ name, id, secret, auditedID string }{
		{"client id", "local-test%zz", url.QueryEscape(c.ClientSecret), "local-test%zz"},
		{"client id ending in %", "local-test%", url.QueryEscape(c.ClientSecret), "local-test%"},
		{"client secret", url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret) + "%G1", c.ClientID},
	}
	for endpoint, body := range endpoints {
		for _, tc := range cases {
			req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/"+endpoint, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(tc.id+":"+tc.secret)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := map[string]any{}
			_ = json.Unmarshal(b, &m)
			desc, _ := m["error_description"].(string)
			if resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") || !strings.Contains(desc, "form-urlencoded") {
				t.Errorf("%s, malformed %s: %d %q %s, want 401 invalid_client with a Basic challenge saying it is not form-urlencoded", endpoint, tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b)
			}
			want := map[string]any{"event": "client_authentication_failure", "result": "invalid_client", "endpoint": endpoint, "client_id": tc.auditedID}
			if e := findEvent(auditEvents(t, f), want); e == nil {
				t.Errorf("%s, malformed %s: no audit record %v", endpoint, tc.name, want)
			}
		}
	}
}
