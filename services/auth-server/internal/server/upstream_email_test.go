package server_test

import (
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestUpstreamEmailVerifiedPair: email and email_verified reach the tokens
// as a pair from one claim set (OpenID Connect Core §5.1: email_verified
// says whether the email claim's value was verified). Before, claims were
// merged one at a time, so a verification of one address could vouch for
// another: a mapped email (UPSTREAM_CLAIM_MAP=email=preferred_username)
// took the email claim's email_verified, and userinfo's email took the ID
// token's email_verified.
func TestUpstreamEmailVerifiedPair(t *testing.T) {
	mapEmail := map[string]string{"UPSTREAM_CLAIM_MAP": "email=preferred_username"}
	for name, tc := range map[string]struct {
		shape    idptest.Shape
		env      map[string]string
		email    string
		verified bool
	}{
		"mapped email, email_verified of another address": {
			idptest.Shape{UserinfoClaims: map[string]any{"email": "ada@corp.example", "email_verified": true, "preferred_username": "ceo@corp.example"}},
			mapEmail, "ceo@corp.example", false,
		},
		"mapped email, email_verified of the same address": {
			idptest.Shape{UserinfoClaims: map[string]any{"email": "ada@corp.example", "email_verified": true, "preferred_username": "ada@corp.example"}},
			mapEmail, "ada@corp.example", true,
		},
		"mapped email, no email claim": {
			idptest.Shape{IDClaims: map[string]any{"email_verified": true, "preferred_username": "ceo@corp.example"}},
			mapEmail, "ceo@corp.example", false,
		},
		"mapped email and email_verified": {
			idptest.Shape{UserinfoClaims: map[string]any{"mail": "ada@corp.example", "mail_verified": true}},
			map[string]string{"UPSTREAM_CLAIM_MAP": "email=mail,email_verified=mail_verified"}, "ada@corp.example", true,
		},
		"userinfo email without email_verified, ID token verified another": {
			idptest.Shape{
				IDClaims:       map[string]any{"email": "ada@corp.example", "email_verified": true},
				UserinfoClaims: map[string]any{"email": "ceo@corp.example"},
			},
			nil, "ceo@corp.example", false,
		},
		"userinfo email without email_verified, ID token verified it": {
			idptest.Shape{
				IDClaims:       map[string]any{"email": "ada@corp.example", "email_verified": true},
				UserinfoClaims: map[string]any{"email": "ada@corp.example"},
			},
			nil, "ada@corp.example", true,
		},
		"userinfo verified email, ID token another unverified": {
			idptest.Shape{
				IDClaims:       map[string]any{"email": "old@corp.example", "email_verified": false},
				UserinfoClaims: map[string]any{"email": "ada@corp.example", "email_verified": true},
			},
			nil, "ada@corp.example", true,
		},
		"ID token email, userinfo email_verified alone": {
			idptest.Shape{
				IDClaims:       map[string]any{"email": "ada@corp.example"},
				UserinfoClaims: map[string]any{"email_verified": true},
			},
			nil, "ada@corp.example", false,
		},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := startShaped(t, tc.shape, tc.env)
			wantProfile(t, f.signIn(t), idptest.Subject, tc.email, tc.verified, "")
		})
	}
}

// TestUpstreamDiscoveryIssuerMismatch: a discovery document naming another
// issuer than UPSTREAM_ISSUER_URL (Discovery 1.0 §4.3) is a
// misconfiguration no retry mends: server_error, not
// temporarily_unavailable. Before, it passed for an outage.
func TestUpstreamDiscoveryIssuerMismatch(t *testing.T) {
	f, _ := startShaped(t, idptest.Shape{DiscoveryIssuer: "https://other.example", UserinfoClaims: fullProfile}, nil)
	f.refusedWith(t, "server_error")
}

// TestUpstreamOutageAfterTheCode: the provider's JWKS or userinfo endpoint
// answering 502/503/504 (RFC 9110 §15.6.3-5) is an outage, as at its token
// endpoint: temporarily_unavailable, which tells the client to retry.
// Before, both were server_error "the identity provider's response could
// not be verified". Any other failure of theirs stays server_error.
func TestUpstreamOutageAfterTheCode(t *testing.T) {
	for name, tc := range map[string]struct {
		shape idptest.Shape
		want  string
	}{
		"JWKS 503":     {idptest.Shape{JWKSStatus: 503, UserinfoClaims: fullProfile}, "temporarily_unavailable"},
		"JWKS 504":     {idptest.Shape{JWKSStatus: 504, UserinfoClaims: fullProfile}, "temporarily_unavailable"},
		"JWKS 404":     {idptest.Shape{JWKSStatus: 404, UserinfoClaims: fullProfile}, "server_error"},
		"userinfo 502": {idptest.Shape{UserinfoStatus: 502, UserinfoClaims: fullProfile}, "temporarily_unavailable"},
		"userinfo 503": {idptest.Shape{UserinfoStatus: 503, UserinfoClaims: fullProfile}, "temporarily_unavailable"},
		"userinfo 500": {idptest.Shape{UserinfoStatus: 500, UserinfoClaims: fullProfile}, "server_error"},
		// A reachable JWKS that does not verify the signature: never an outage.
		"forged signature": {idptest.Shape{ForgeSignature: true, UserinfoClaims: fullProfile}, "server_error"},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := startShaped(t, tc.shape, nil)
			f.refusedWith(t, tc.want)
		})
	}
}
