package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
)

// TestDiscoveryTapFollowsRedirects: a provider advertising
// authorization_response_iss_parameter_supported whose discovery URL
// answers through a redirect (a trailing slash added, a moved realm) is
// read like one answering at once: a response without iss is refused
// (RFC 9207 §2.4), and the ID tokens' keys come from its jwks_uri
// (upstreamKeys). The tap compared each hop's URL with the discovery
// URL, so behind a redirect it saw nothing and both checks were off
// (review7).
func TestDiscoveryTapFollowsRedirects(t *testing.T) {
	for _, redirect := range []bool{false, true} {
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			doc := map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token",
				"jwks_uri": srv.URL + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
				"id_token_signing_alg_values_supported": []string{"RS256"}, "authorization_response_iss_parameter_supported": true}
			switch r.URL.Path {
			case "/.well-known/openid-configuration":
				if redirect {
					http.Redirect(w, r, "/.well-known/openid-configuration/", http.StatusMovedPermanently)
					return
				}
				_ = json.NewEncoder(w).Encode(doc)
			case "/.well-known/openid-configuration/":
				_ = json.NewEncoder(w).Encode(doc)
			default:
				http.NotFound(w, r)
			}
		}))
		u := NewUpstream(config.Upstream{Issuer: srv.URL, ClientID: "x", ClientSecret: "y", Scopes: []string{"openid"}},
			"http://127.0.0.1:1/cb", &http.Client{Timeout: 5 * time.Second}, func(string, time.Time, error) {})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := u.CheckResponseIssuer(ctx, url.Values{"code": {"c"}, "state": {"s"}})
		if !errors.Is(err, errResponseIssuer) {
			t.Errorf("discovery redirected=%v: a response without iss from a provider advertising it: %v, want %v", redirect, err, errResponseIssuer)
		}
		party, err := u.rp(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := party.IDTokenVerifier().KeySet.(*upstreamKeys); !ok {
			t.Errorf("discovery redirected=%v: the ID tokens' key set is %T, want *upstreamKeys", redirect, party.IDTokenVerifier().KeySet)
		}
		cancel()
		srv.Close()
	}
}
