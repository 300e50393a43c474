package oauth

import (
	"errors"
	"sync"
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

// TestUpstreamKeyEndpointDown: when the key set's lifetime is up (or a
// signature failure asks for a refetch) while the provider's JWKS
// endpoint is down, the key set it was to replace still verifies, and the
// JWKS is fetched again upstreamKeyRefetch later; before, the new, empty
// key set failed every sign-in until the endpoint came back.
func TestUpstreamKeyEndpointDown(t *testing.T) {
	s := startShapeUpstream(t, "", idptest.Shape{Alg: "ES256"})
	s.u.keyLifetime = 2 * time.Second
	s.u.keyRefetch = 2 * time.Second
	if _, err := s.signIn(t); err != nil {
		t.Fatal(err)
	}
	s.p.JWKSDown(true)
	time.Sleep(2 * time.Second)
	if _, err := s.signIn(t); err != nil {
		t.Fatalf("the JWKS endpoint down at the key set's lifetime: %v, want the previous keys to verify", err)
	}
	if _, err := s.signIn(t); err != nil {
		t.Fatalf("again, the JWKS endpoint still down: %v", err)
	}
	s.p.JWKSDown(false)
	time.Sleep(2 * time.Second)
	if _, err := s.signIn(t); err != nil {
		t.Fatalf("the JWKS endpoint back: %v", err)
	}
	if n := s.p.JWKSCalls(); n != 2 {
		t.Errorf("%d JWKS fetches answered, want 2 (the first, and one once the endpoint was back)", n)
	}
	// A key the provider removed while its endpoint was down stops
	// verifying once the JWKS is fetched again.
	s.p.Unpublish()
	time.Sleep(2 * time.Second)
	if _, err := s.signIn(t); !errors.Is(err, oidc.ErrSignatureInvalid) {
		t.Errorf("a removed key after the refetch: %v, want %v", err, oidc.ErrSignatureInvalid)
	}
}

// TestUpstreamKeyEndpointDownConcurrent: sign-ins that meet the key set's
// lifetime together while the JWKS endpoint is down all verify with the
// previous keys — the first to fail its fetch fell back, and the others,
// finding the set replaced meanwhile, returned their fetch error (3–5 of
// 8 failed, review7).
func TestUpstreamKeyEndpointDownConcurrent(t *testing.T) {
	s := startShapeUpstream(t, "", idptest.Shape{Alg: "ES256"})
	s.u.keyLifetime = 2 * time.Second
	s.u.keyRefetch = 5 * time.Second
	if _, err := s.signIn(t); err != nil {
		t.Fatal(err)
	}
	s.p.JWKSDown(true)
	time.Sleep(2 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := s.signIn(t); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent sign-in with the JWKS endpoint down at the key set's lifetime: %v", err)
	}
}
