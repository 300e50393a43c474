package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// guardAnswer sends a POST to path with the Content-Type headers cts (none
// when empty) and the bearer token at (none when empty), and returns the
// status and the JSON error.
func guardAnswer(t *testing.T, f *fleet, path string, cts []string, at, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.Base+path, strings.NewReader(body))
	if len(cts) > 0 {
		req.Header["Content-Type"] = cts
	}
	if at != "" {
		req.Header.Set("Authorization", "Bearer "+at)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(b, &e)
	if e.Error == "" && resp.StatusCode >= 400 {
		t.Logf("%s: %d %s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, e.Error, e.Description
}

// TestBodyErrorsNameWhatIsWrong: a POST whose Content-Type is no media type
// (a parameter without a value, RFC 9110 §8.3.1) is refused 400
// invalid_request saying so — at an endpoint that reads no form (userinfo)
// without claiming a form error, at a form endpoint naming the form it takes
// (RFC 6749 §3.2 at the token endpoint, the consent revocation's form).
// JSON at the consent revocation endpoint (whose client_id is a form
// parameter) is refused as at the token endpoint, not "client_id is
// required"; a body over 64 KiB is said to be too large, not an invalid
// form; a declared form that does not decode is an invalid form. Before,
// every one of these but the token endpoint's was "the request body is not
// a valid form" (the consent revocation's JSON: "client_id is required").
func TestBodyErrorsNameWhatIsWrong(t *testing.T) {
	f := startFleet(t, nil)
	const bad = "application/json; charset"
	for _, tc := range []struct {
		name, path, ct, body, want string
	}{
		{"userinfo, malformed", "/oauth/userinfo", bad, "{}",
			`the Content-Type header 'application/json; charset' is not a valid media type (RFC 9110 section 8.3.1); the userinfo endpoint reads no request body: send the access token in the Authorization header (RFC 6750 section 2.1) and no Content-Type, or a valid one`},
		{"consent revocation, malformed", "/oauth/consent/revoke", bad, `{"client_id":"local-test"}`,
			`the Content-Type header 'application/json; charset' is not a valid media type (RFC 9110 section 8.3.1); the consent revocation endpoint takes form parameters: send Content-Type: application/x-www-form-urlencoded`},
		{"consent revocation, JSON", "/oauth/consent/revoke", "application/json", `{"client_id":"local-test"}`,
			`the consent revocation endpoint takes form parameters, not 'application/json': send Content-Type: application/x-www-form-urlencoded`},
		{"token, malformed form type", "/oauth/token", "application/x-www-form-urlencoded; charset", "grant_type=refresh_token&refresh_token=x",
			`the Content-Type header 'application/x-www-form-urlencoded; charset' is not a valid media type (RFC 9110 section 8.3.1); the token endpoint takes form parameters (RFC 6749 section 3.2): send Content-Type: application/x-www-form-urlencoded`},
		{"token, two media types", "/oauth/token", "application/json, text/plain", "grant_type=refresh_token&refresh_token=x",
			`the Content-Type header 'application/json, text/plain' is not a valid media type (RFC 9110 section 8.3.1); the token endpoint takes form parameters (RFC 6749 section 3.2): send Content-Type: application/x-www-form-urlencoded`},
		{"userinfo, too large", "/oauth/userinfo", "application/x-www-form-urlencoded", "a=" + strings.Repeat("b", 70<<10),
			`the request body is larger than 65536 bytes`},
		{"consent revocation, not a form", "/oauth/consent/revoke", "application/x-www-form-urlencoded", "client_id=%zz",
			`the request body is not a valid form (application/x-www-form-urlencoded, RFC 6749 Appendix B)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := http.StatusBadRequest
			if strings.Contains(tc.want, "larger than") {
				want = http.StatusRequestEntityTooLarge // RFC 9110 §15.5.14 (TestBodyOverTheLimitIs413)
			}
			st, code, desc := guardAnswer(t, f, tc.path, []string{tc.ct}, "", tc.body)
			if st != want || code != "invalid_request" || desc != tc.want {
				t.Errorf("%d %s %q,\nwant %d invalid_request %q", st, code, desc, want, tc.want)
			}
		})
	}
	// The userinfo endpoint ignores a well-formed JSON declaration (it
	// reads no body), and the consent revocation takes its form.
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	if tr.AccessToken == "" {
		t.Fatalf("no access token: %+v", tr)
	}
	if st, code, desc := guardAnswer(t, f, "/oauth/userinfo", []string{"application/json"}, tr.AccessToken, "{}"); st != http.StatusOK {
		t.Errorf("userinfo POST with a JSON declaration: %d %s %s, want 200", st, code, desc)
	}
	if st, code, desc := guardAnswer(t, f, "/oauth/consent/revoke", []string{"application/x-www-form-urlencoded; charset=utf-8"}, tr.AccessToken,
		url.Values{"client_id": {c.ClientID}}.Encode()); st != http.StatusNoContent {
		t.Errorf("consent revocation form: %d %s %s, want 204", st, code, desc)
	}
}

// TestTwoContentTypesRefused: a request with two Content-Type headers is
// refused 400 whichever comes first — at registration invalid_client_metadata
// (RFC 7591 §3.2.2), elsewhere invalid_request — since Content-Type is one
// value (RFC 9110 §5.3) and a reader of the other one sees another body.
// Before, registration read the first: [application/json, text/plain]
// registered a client.
func TestTwoContentTypesRefused(t *testing.T) {
	f := startFleet(t, map[string]string{"DCR_ENABLED": "true"})
	const want = "more than one Content-Type header (RFC 9110 section 5.3: it is a single value)"
	body := `{"redirect_uris":["http://127.0.0.1:8986/cb"],"token_endpoint_auth_method":"none"}`
	for _, cts := range [][]string{{"application/json", "text/plain"}, {"text/plain", "application/json"}, {"application/json", "application/json"}} {
		st, code, desc := guardAnswer(t, f, "/oauth/register", cts, "", body)
		if st != http.StatusBadRequest || code != "invalid_client_metadata" || desc != want {
			t.Errorf("register with %q: %d %s %q, want 400 invalid_client_metadata %q", cts, st, code, desc, want)
		}
	}
	st, code, desc := guardAnswer(t, f, "/oauth/token", []string{"application/x-www-form-urlencoded", "application/json"}, "", "grant_type=refresh_token&refresh_token=x&client_id=test-public")
	if st != http.StatusBadRequest || code != "invalid_request" || desc != want {
		t.Errorf("token: %d %s %q, want 400 invalid_request %q", st, code, desc, want)
	}
	// One header registers.
	if st, code, desc := guardAnswer(t, f, "/oauth/register", []string{"application/json"}, "", body); st != http.StatusCreated {
		t.Errorf("register: %d %s %s, want 201", st, code, desc)
	}
}
