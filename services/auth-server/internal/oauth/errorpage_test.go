package oauth

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestErrorPageRetryAfter: an authorization-endpoint error page (HTML for a
// browser, JSON otherwise) answering 503 says when to retry (RFC 9110
// §10.2.3), as every other 503 of the auth-server does: a store outage met
// past the rate limiter (the address's tokens leased) reached the client
// lookup, the callback or the consent step and answered without one. A
// Retry-After already set is kept; other statuses get none.
func TestErrorPageRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		accept string
		status int
		preset string
		want   string
	}{
		{"text/html", http.StatusServiceUnavailable, "", unavailableRetryAfter},
		{"application/json", http.StatusServiceUnavailable, "", unavailableRetryAfter},
		{"text/html", http.StatusServiceUnavailable, "1", "1"},
		{"text/html", http.StatusBadRequest, "", ""},
		{"application/json", http.StatusTooManyRequests, "", ""},
	} {
		w := httptest.NewRecorder()
		if tc.preset != "" {
			w.Header().Set("Retry-After", tc.preset)
		}
		r := httptest.NewRequest(http.MethodGet, "/oauth/authorize", nil)
		r.Header.Set("Accept", tc.accept)
		(&Server{log: slog.New(slog.DiscardHandler)}).errorPage(w, r, "authorize", tc.status, "temporarily_unavailable", "the service is temporarily unavailable; retry later")
		if w.Code != tc.status || w.Header().Get("Retry-After") != tc.want || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s %d (Retry-After %q set before): %d, Retry-After %q, Cache-Control %q; want %d, %q, no-store",
				tc.accept, tc.status, tc.preset, w.Code, w.Header().Get("Retry-After"), w.Header().Get("Cache-Control"), tc.status, tc.want)
		}
	}
}
