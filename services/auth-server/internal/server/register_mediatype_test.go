package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestRegistrationMediaType: a registration is read when its body is
// declared application/json (RFC 7591 §3.1), whatever the letter case of
// the media type (RFC 9110 §8.3.1) and with parameters; another media type
// whose name begins with "application/json" is refused
// invalid_client_metadata, as any other that is not JSON. Before, a prefix
// test refused "Application/JSON" and registered clients from
// "application/jsonp" and "application/json-seq" bodies.
func TestRegistrationMediaType(t *testing.T) {
	f := startFleet(t, nil)
	body := `{"redirect_uris":["http://127.0.0.1:8986/cb"],"token_endpoint_auth_method":"none"}`
	for _, tc := range []struct {
		ct   string
		want int
	}{
		{"application/json", http.StatusCreated},
		{"application/json; charset=utf-8", http.StatusCreated},
		{"Application/JSON", http.StatusCreated},
		{"APPLICATION/JSON;charset=UTF-8", http.StatusCreated},
		{"application/jsonp", http.StatusBadRequest},
		{"application/json-seq", http.StatusBadRequest},
		{"application/json+x; charset=utf-8", http.StatusBadRequest},
		{"text/plain", http.StatusBadRequest},
		{"", http.StatusBadRequest},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/register", strings.NewReader(body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			m := map[string]any{}
			_ = json.NewDecoder(resp.Body).Decode(&m)
			if resp.StatusCode != tc.want {
				t.Fatalf("%d %v, want %d", resp.StatusCode, m, tc.want)
			}
			if tc.want == http.StatusBadRequest && (m["error"] != "invalid_client_metadata" || m["error_description"] != "the request must be application/json") {
				t.Errorf("%v, want invalid_client_metadata 'the request must be application/json'", m)
			}
			if tc.want == http.StatusCreated && m["client_id"] == nil {
				t.Errorf("%v: no client_id", m)
			}
		})
	}
}
