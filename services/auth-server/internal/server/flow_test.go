package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestFullFlowDevClients runs client → /oauth/authorize → dev IdP login
// form → /oauth/callback → code → token → userinfo → refresh for each dev
// client (client_secret_basic and client_secret_post), and checks the
// access token with the fleet's verifier over gRPC.
func TestFullFlowDevClients(t *testing.T) {
	f := startFleet(t, nil)
	for _, id := range []string{"local-test", "gpt-actions", "gpt-apps-mcp"} {
		t.Run(id, func(t *testing.T) {
			f.t = t
			c := f.Clients[id]
			a := newAuthRequest(c)
			tr := f.fullFlow(c, a)
			if tr.TokenType != "bearer" || tr.RefreshToken == "" || tr.IDToken == "" || tr.ExpiresIn <= 0 {
				t.Fatalf("token response lacks parts: %+v", tr)
			}
			if tr.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("token response Cache-Control = %q, want no-store", tr.Header.Get("Cache-Control"))
			}
			// The fleet's verifier accepts it for the client's default audience.
			claims, err := f.Verifier(c.Audience).Verify(ctxT(t), tr.AccessToken)
			if err != nil {
				t.Fatalf("fleet verifier refused the access token: %v", err)
			}
			if claims.Subject != idptest.Subject || claims.ClientID != id || !claims.HasAudience(c.Audience) {
				t.Errorf("claims: sub %q client %q aud %v", claims.Subject, claims.ClientID, claims.Audience)
			}
			if strings.Join(claims.Scopes, " ") != "openid profile email" || claims.Profile.Email != idptest.Email || !claims.Profile.EmailVerified || claims.Profile.Name != "Dev User" {
				t.Errorf("claims: scopes %v profile %+v", claims.Scopes, claims.Profile)
			}
			checkHeader(t, tr.AccessToken, "at+jwt")
			checkIDToken(t, f, tr, c.ClientID, a.Nonce)

			status, info := f.userinfo(tr.AccessToken)
			if status != http.StatusOK || info["sub"] != idptest.Subject || info["email"] != idptest.Email || info["preferred_username"] != "dev" && info["name"] != "Dev User" {
				t.Errorf("userinfo %d %v", status, info)
			}

			// Refresh rotates and keeps the grant's audience and scopes.
			r1 := f.refresh(c, tr.RefreshToken)
			if r1.Status != http.StatusOK || r1.RefreshToken == "" || r1.RefreshToken == tr.RefreshToken {
				t.Fatalf("refresh: %d %s %s", r1.Status, r1.Error, r1.Description)
			}
			c2, err := f.Verifier(c.Audience).Verify(ctxT(t), r1.AccessToken)
			if err != nil || !c2.HasAudience(c.Audience) || c2.Subject != idptest.Subject || c2.Profile.Email != idptest.Email {
				t.Fatalf("refreshed token: %v %+v", err, c2)
			}
		})
	}
}

func checkHeader(t *testing.T, raw, typ string) {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	h := tok.Headers[0]
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); got != typ || h.KeyID == "" || h.Algorithm != "RS256" {
		t.Errorf("header typ %q kid %q alg %q, want typ %q", got, h.KeyID, h.Algorithm, typ)
	}
}

// checkIDToken verifies the ID token's signature with the published JWKS
// and its nonce, audience, auth_time and at_hash.
func checkIDToken(t *testing.T, f *fleet, tr tokenResponse, clientID, nonce string) {
	t.Helper()
	resp, err := http.Get(f.Base + "/oauth/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(tr.IDToken, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("ID token kid %q not in JWKS", tok.Headers[0].KeyID)
	}
	var std jwt.Claims
	var extra struct {
		Nonce    string `json:"nonce"`
		AuthTime int64  `json:"auth_time"`
		AtHash   string `json:"at_hash"`
		Email    string `json:"email"`
	}
	if err := tok.Claims(keys[0].Key, &std, &extra); err != nil {
		t.Fatalf("ID token signature: %v", err)
	}
	if err := std.Validate(jwt.Expected{Issuer: f.Base, AnyAudience: jwt.Audience{clientID}, Subject: idptest.Subject}); err != nil {
		t.Errorf("ID token claims: %v", err)
	}
	if extra.Nonce != nonce || extra.AuthTime == 0 || extra.AtHash == "" || extra.Email != idptest.Email {
		t.Errorf("ID token extra claims: %+v (nonce want %q)", extra, nonce)
	}
}

var _ = tokens.AccessTokenType
