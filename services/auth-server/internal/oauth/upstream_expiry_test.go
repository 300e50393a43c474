package oauth

import (
	"errors"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestUpstreamShortIDToken: an ID token is accepted until its exp (OpenID
// Connect Core 1.0 §3.1.3.7 (9): the current time MUST be before exp),
// however short its life, while one just expired is refused and iat may
// still be up to upstreamClockSkew ahead of our clock. Before, the skew
// was taken off exp as well: an ID token valid for 30 s or less was
// always refused ("token has expired").
func TestUpstreamShortIDToken(t *testing.T) {
	for _, ttl := range []time.Duration{20 * time.Second, 5 * time.Second} {
		if _, err := signInShape(t, "", idptest.Shape{IDTokenTTL: ttl}); err != nil {
			t.Errorf("ID token valid for %v, redeemed at once: %v", ttl, err)
		}
	}
	if _, err := signInShape(t, "", idptest.Shape{IDTokenTTL: 20 * time.Second, Skew: 25 * time.Second}); err != nil {
		t.Errorf("iat 25 s ahead: %v", err)
	}
	for name, shape := range map[string]idptest.Shape{
		"expired 1 s ago":  {IDTokenTTL: -time.Second},
		"expired 20 s ago": {IDTokenTTL: -20 * time.Second},
	} {
		if _, err := signInShape(t, "", shape); !errors.Is(err, oidc.ErrExpired) {
			t.Errorf("%s: %v, want %v", name, err, oidc.ErrExpired)
		}
	}
	if _, err := signInShape(t, "", idptest.Shape{Skew: 40 * time.Second}); !errors.Is(err, oidc.ErrIatInFuture) {
		t.Errorf("iat 40 s ahead: %v, want %v", err, oidc.ErrIatInFuture)
	}
}
