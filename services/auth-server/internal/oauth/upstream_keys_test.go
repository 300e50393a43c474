package oauth

import (
	"errors"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestUpstreamKeyUnderOldKid: a provider that puts a new key under a kid
// the cached JWKS knows (brkidp t_rotation.sh part b) is trusted after
// one fetch of its JWKS; a second failure within upstreamKeyRefetch
// fetches nothing (a token signed by a key that is not the provider's
// cannot make it fetch at will), and one after it fetches again. Before,
// the kid's failure was final: every sign-in failed until a restart.
func TestUpstreamKeyUnderOldKid(t *testing.T) {
	s := startShapeUpstream(t, "", idptest.Shape{Alg: "ES256"})
	s.u.keyRefetch = 2 * time.Second
	if _, err := s.signIn(t); err != nil {
		t.Fatal(err)
	}
	s.p.Rekey()
	if _, err := s.signIn(t); err != nil {
		t.Fatalf("a new key under the old kid: %v", err)
	}
	if n := s.p.JWKSCalls(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
	s.p.Rekey()
	if _, err := s.signIn(t); !errors.Is(err, oidc.ErrSignatureInvalid) {
		t.Errorf("a second new key within the refetch interval: %v, want %v", err, oidc.ErrSignatureInvalid)
	}
	if n := s.p.JWKSCalls(); n != 2 {
		t.Errorf("%d JWKS fetches, want still 2 (at most one refetch per interval)", n)
	}
	time.Sleep(2 * time.Second)
	if _, err := s.signIn(t); err != nil {
		t.Fatalf("after the refetch interval: %v", err)
	}
}

// TestUpstreamKeyLifetime: a key the provider removed from its JWKS stops
// verifying once the cached key set is keyLifetime old; before, it stayed
// trusted until a restart.
func TestUpstreamKeyLifetime(t *testing.T) {
	s := startShapeUpstream(t, "", idptest.Shape{})
	s.u.keyLifetime = 2 * time.Second
	if _, err := s.signIn(t); err != nil {
		t.Fatal(err)
	}
	s.p.Unpublish()
	if _, err := s.signIn(t); err != nil {
		t.Fatalf("within the key set's lifetime: %v", err)
	}
	time.Sleep(2 * time.Second)
	if _, err := s.signIn(t); !errors.Is(err, oidc.ErrSignatureInvalid) {
		t.Errorf("a removed key after the key set's lifetime: %v, want %v", err, oidc.ErrSignatureInvalid)
	}
}
