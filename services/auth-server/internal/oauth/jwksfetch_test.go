package oauth

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
)

// TestJWKSFetchFailureIsInvalidClient: a private_key_jwt client's
// jwks_uri that cannot be fetched — real loopback servers through the
// auth-server's own guarded client (its test switch AllowPrivate, as
// CIMD_ALLOW_PRIVATE_NETWORKS sets it, lets it reach loopback): connection
// refused, HTTP 500 (retried once), HTTP 404, no answer in time, a body
// that is not a JWK set — is answered as the token endpoint answers it
// (classify): 401 invalid_client (RFC 6749 §5.2, client authentication
// failed), saying in fixed words what failed and never the address; not
// fosite's 500 server_error. Without the switch the SSRF guard still
// refuses loopback, answered the same way.
func TestJWKSFetchFailureIsInvalidClient(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/404":
			http.NotFound(w, r)
		case "/slow":
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		case "/bad":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"keys": [`))
		}
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/jwks.json"
	ln.Close()

	fetcher := func(allowPrivate bool) signingUseFetcher {
		mf := clients.NewMetadataFetcher(clients.FetchOptions{AllowPrivate: allowPrivate, Timeout: 300 * time.Millisecond})
		return signingUseFetcher{fetcher: newJWKSFetcher(mf.RetryableClient())}
	}
	for _, tc := range []struct {
		name, location, want string
		allowPrivate         bool
	}{
		{"connection refused", closed, "could not connect", true},
		{"500", srv.URL + "/500", "it answered a server error status", true},
		{"404", srv.URL + "/404", "it answered HTTP 404", true},
		{"timeout", srv.URL + "/slow", "timed out", true},
		{"bad JSON", srv.URL + "/bad", "its answer is not a JWK set", true},
		{"loopback without the switch", srv.URL + "/bad", "host's address is not a public address", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fetcher(tc.allowPrivate).Resolve(context.Background(), tc.location, true)
			if err == nil {
				t.Fatal("resolved")
			}
			status, code, desc := classify(err)
			if status != http.StatusUnauthorized || code != "invalid_client" || !strings.Contains(desc, "jwks_uri could not be used to verify the client assertion: "+tc.want+".") {
				t.Errorf("%d %s %q, want 401 invalid_client saying %q", status, code, desc, tc.want)
			}
			if strings.Contains(desc, "127.0.0.1") {
				t.Errorf("the description names the address: %q", desc)
			}
		})
	}
}
