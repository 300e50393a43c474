package oauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

// A refused client authentication (429 back-off or limit, 503 busy) is
// answered by the guard's writer whatever the handler writes: 401 with
// WWW-Authenticate, or RFC 7009's 200 for revocation.
func TestRefusedWriter(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{metrics: m}
	for _, tc := range []struct {
		status     int
		retry      time.Duration
		code       string
		retryAfter string
		handler    func(http.ResponseWriter)
	}{
		{http.StatusTooManyRequests, 90 * time.Second, "temporarily_unavailable", "90", func(w http.ResponseWriter) {
			w.Header().Set("WWW-Authenticate", `Basic realm="tollgate"`)
			writeJSONError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		}},
		{http.StatusServiceUnavailable, time.Second, "temporarily_unavailable", "1", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusOK)
		}},
		{http.StatusTooManyRequests, 1500 * time.Millisecond, "temporarily_unavailable", "2", func(w http.ResponseWriter) {
			_, _ = w.Write([]byte("ok")) // implicit 200
		}},
	} {
		ca := &clientAuth{endpoint: "token"}
		ca.refuse(tc.status, tc.retry, "refused")
		ca.refuse(http.StatusServiceUnavailable, time.Hour, "second refusal is ignored")
		rec := httptest.NewRecorder()
		rw := &refusedWriter{ResponseWriter: rec, s: s, ca: ca}
		tc.handler(rw)
		var body oauthError
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", rec.Body, err)
		}
		if rec.Code != tc.status || body.Error != tc.code || rec.Header().Get("Retry-After") != tc.retryAfter ||
			rec.Header().Get("WWW-Authenticate") != "" || rw.status != tc.status {
			t.Errorf("%d: got %d %+v Retry-After %q WWW-Authenticate %q", tc.status, rec.Code, body,
				rec.Header().Get("Retry-After"), rec.Header().Get("WWW-Authenticate"))
		}
	}
	// Without a refusal the handler's answer passes through.
	rec := httptest.NewRecorder()
	rw := &refusedWriter{ResponseWriter: rec, s: s, ca: &clientAuth{endpoint: "token"}}
	writeJSONError(rw, http.StatusUnauthorized, "invalid_client", "x")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "invalid_client") {
		t.Errorf("pass-through: %d %s", rec.Code, rec.Body)
	}
}

// RFC 6749 §2.3: one client authentication method per request; the one
// a request carries its secret by is what oneAuthMethod returns.
func TestOneAuthMethod(t *testing.T) {
	for _, tc := range []struct {
		name   string
		basic  string // "" = none
		form   url.Values
		ok     bool
		method string // the secret method, when ok
	}{
		{"basic only", "app", url.Values{}, true, clients.AuthBasic},
		{"basic and the same body client_id", "app", url.Values{"client_id": {"app"}}, true, clients.AuthBasic},
		{"basic percent-encoded and the decoded body client_id", "my%2Dapp", url.Values{"client_id": {"my-app"}}, true, clients.AuthBasic},
		{"post only", "", url.Values{"client_id": {"app"}, "client_secret": {"s"}}, true, clients.AuthPost},
		{"a public client", "", url.Values{"client_id": {"app"}}, true, ""},
		{"basic and a body secret", "app", url.Values{"client_id": {"app"}, "client_secret": {"s"}}, false, ""},
		{"basic and another body client_id", "app", url.Values{"client_id": {"other"}}, false, ""},
		{"basic and an assertion", "app", url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}, false, ""},
		{"secret and assertion", "", url.Values{"client_secret": {"s"}, "client_assertion": {"x.y.z"}}, false, ""},
	} {
		r := httptest.NewRequest(http.MethodPost, "/oauth/token", nil)
		if tc.basic != "" {
			r.SetBasicAuth(tc.basic, "secret")
		}
		method, err := oneAuthMethod(r, tc.form)
		if (err == nil) != tc.ok || method != tc.method {
			t.Errorf("%s: %q, %v, want %q, ok=%v", tc.name, method, err, tc.method, tc.ok)
		}
		if err != nil {
			if _, code, _ := classify(err); code != "invalid_request" {
				t.Errorf("%s: classified as %s, want invalid_request", tc.name, code)
			}
		}
	}
}
