package tokens_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestRefusalNamesVerifiedClaimsOnly: every refusal is a *tokens.Refusal
// wrapping ErrInvalidToken, with Verify's claims nil and the reason as a
// code. A token whose signature verified and that was refused after it —
// expired (checked, and from the cache), wrong audience, revoked —
// carries its claims (grant and client); a forged one (another key under
// the published kid), a malformed one and one under an unknown kid carry
// none, though their payloads name a grant and a client too.
func TestRefusalNamesVerifiedClaimsOnly(t *testing.T) {
	r := testharness.StartRedis(t)
	set, err := revocation.New(revocation.Options{Redis: r.Client(), NoSubscribe: true, ReconcileInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var skew atomic.Int64 // the verifier's clock runs this far ahead
	iss := tokentest.Start(t, issuer)
	v := newVerifier(t, iss, tokens.VerifierOptions{Revocations: set, Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	ctx := context.Background()
	mint := func(grant string, tok tokentest.Token) string {
		tok.GrantID, tok.ClientID = grant, "client-"+grant
		if tok.Audience == "" {
			tok.Audience = mcpAud
		}
		return iss.Mint(t, tok)
	}
	cached := mint("cached", tokentest.Token{ExpiresIn: time.Hour})
	if _, err := v.Verify(ctx, cached); err != nil {
		t.Fatal(err)
	}
	revoked := mint("revoked", tokentest.Token{})
	if err := revocation.NewRevoker(r.Client(), time.Hour, set).Revoke(ctx, "revoked"); err != nil {
		t.Fatal(err)
	}
	_, other := tokentest.Keys()
	now := time.Now()
	payload := map[string]any{"iss": issuer, "sub": "x", "aud": mcpAud, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "client_id": "client-forged", "grant_id": "forged"}
	cases := []struct {
		name, raw, reason, words, grant string
		clock                           time.Duration
	}{
		{"expired", mint("expired", tokentest.Token{IssuedAt: now.Add(-3 * time.Hour)}), tokens.ReasonExpired, "token expired", "expired", 0},
		{"wrong audience", mint("aud", tokentest.Token{Audience: "https://tollgate.example.com/actions"}), tokens.ReasonWrongAudience, "wrong audience", "aud", 0},
		{"revoked", revoked, tokens.ReasonRevoked, "token revoked", "revoked", 0},
		{"forged", signed(t, jose.RS256, other, "key-a", payload), tokens.ReasonBadSignature, "bad signature", "", 0},
		{"malformed", "garbage", tokens.ReasonMalformed, "not a JWS compact token", "", 0},
		{"unknown kid", signed(t, jose.RS256, other, "key-z", payload), tokens.ReasonUnknownKey, `unknown kid "key-z"`, "", 0},
		// Last: the clock moves past the cached token's exp.
		{"expired in the cache", cached, tokens.ReasonExpired, "token expired", "cached", 2 * time.Hour},
	}
	for _, tc := range cases {
		skew.Store(int64(tc.clock))
		c, err := v.Verify(ctx, tc.raw)
		var refusal *tokens.Refusal
		if c != nil || !errors.Is(err, tokens.ErrInvalidToken) || !errors.As(err, &refusal) {
			t.Fatalf("%s: claims %v, err %v; want nil claims and a *Refusal wrapping ErrInvalidToken", tc.name, c, err)
		}
		if refusal.Reason != tc.reason || tokens.RefusalCode(err) != tc.reason || err.Error() != "invalid token: "+tc.words {
			t.Errorf("%s: reason %q (code %q), %q; want %q, %q", tc.name, refusal.Reason, tokens.RefusalCode(err), err, tc.reason, "invalid token: "+tc.words)
		}
		verified := tokens.RefusedClaims(err)
		if verified != refusal.Verified() {
			t.Errorf("%s: RefusedClaims and Verified differ", tc.name)
		}
		switch {
		case tc.grant == "" && verified != nil:
			t.Errorf("%s: claims %+v from a token whose signature did not verify", tc.name, *verified)
		case tc.grant != "" && (verified == nil || verified.GrantID != tc.grant || verified.ClientID != "client-"+tc.grant):
			t.Errorf("%s: verified claims %v, want grant %q and client %q", tc.name, verified, tc.grant, "client-"+tc.grant)
		}
	}
	if got := tokens.RefusalCode(tokens.ErrNoToken); got != "" {
		t.Errorf("RefusalCode of an error of no verifier: %q, want \"\"", got)
	}
	if tokens.RefusedClaims(tokens.ErrNoToken) != nil {
		t.Error("RefusedClaims of an error of no verifier is not nil")
	}
}

// TestOutageIsNoRefusal: a token the verifier cannot check — its key set
// unfetchable (a real gRPC KeySetService answering UNAVAILABLE) — gets
// ErrKeysUnavailable, which refuses nothing: RefusalCode is "", so no
// "access token refused" line is written for an outage (it was
// "malformed"), and RefusedClaims is nil.
func TestOutageIsNoRefusal(t *testing.T) {
	_, v := verifierOfFailingKeySet(t, true, nil)
	_, err := v.Verify(context.Background(), signedAs(t, "key-a", 1))
	if !errors.Is(err, tokens.ErrKeysUnavailable) {
		t.Fatalf("Verify with the key set unfetchable: %v, want ErrKeysUnavailable", err)
	}
	if got := tokens.RefusalCode(err); got != "" {
		t.Errorf("RefusalCode(%v) = %q, want \"\" (an outage refuses no token)", err, got)
	}
	if tokens.RefusedClaims(err) != nil {
		t.Error("RefusedClaims of an outage is not nil")
	}
}
