package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestRegistrationRefusesDuplicateMembers: client metadata whose member
// name repeats is refused 400 invalid_client_metadata naming the member,
// at the top level and inside an extension member's object (RFC 8259 §4
// leaves duplicates to each parser: encoding/json kept the last
// redirect_uris, a proxy or log reader keeping the first saw another
// client). A member is read by its exact name: "REDIRECT_URIS" is an
// unknown member, ignored (RFC 7591 §3.1), where encoding/json's
// case-insensitive match registered its URI. Before, the repeated
// redirect_uris registered the second URI (201) and "REDIRECT_URIS"
// replaced the first.
func TestRegistrationRefusesDuplicateMembers(t *testing.T) {
	f := startFleet(t, nil)
	register := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	const good, other = `"https://app.example/cb"`, `"https://other.example/cb"`
	for body, want := range map[string]string{
		`{"redirect_uris":[` + good + `],"token_endpoint_auth_method":"none","redirect_uris":[` + other + `]}`: `member 'redirect_uris' appears more than once in the client metadata (RFC 8259 section 4: names must be unique)`,
		`{"redirect_uris":[` + good + `],"redirect\u005furis":[` + other + `]}`:                                `member 'redirect_uris' appears more than once in the client metadata (RFC 8259 section 4: names must be unique)`,
		`{"redirect_uris":[` + good + `],"client_name":"a","client_name":"b"}`:                                 `member 'client_name' appears more than once in the client metadata (RFC 8259 section 4: names must be unique)`,
		`{"redirect_uris":[` + good + `],"jwks":{"keys":[],"keys":[{}]}}`:                                      `member 'keys' appears more than once in the client metadata (RFC 8259 section 4: names must be unique)`,
		`{"redirect_uris":[` + good + `]} {}`:                                                                  `the body must be one JSON object`,
		`{"redirect_uris":[` + good + `],}`:                                                                    `the body is not a JSON object`,
		`[{"redirect_uris":[` + good + `]}]`:                                                                   `the body is not a JSON object`,
		`{"redirect_uris":"` + strings.Trim(good, `"`) + `"}`:                                                  `redirect_uris must be an array of strings`,
		`{"redirect_uris":[` + good + `],"client_name":7}`:                                                     `client_name must be a string`,
	} {
		st, m := register(body)
		if st != http.StatusBadRequest || m["error"] != "invalid_client_metadata" || m["error_description"] != want {
			t.Errorf("%s: %d %v, want 400 invalid_client_metadata %q", body, st, m, want)
		}
	}
	// Distinct names, in nested objects too, and a name differing only in
	// letter case, which is another (unknown, ignored) member.
	st, m := register(`{"redirect_uris":[` + good + `],"REDIRECT_URIS":[` + other + `],"token_endpoint_auth_method":"none","jwks":{"keys":[{"kid":"a"},{"kid":"b"}]}}`)
	uris, _ := m["redirect_uris"].([]any)
	if st != http.StatusCreated || !slices.Equal(uris, []any{strings.Trim(good, `"`)}) {
		t.Errorf("distinct members: %d %v, want 201 with redirect_uris [%s]", st, m, good)
	}
}
