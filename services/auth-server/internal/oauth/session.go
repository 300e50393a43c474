package oauth

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Session is what a grant remembers about the user: the OpenID Connect
// session fosite needs for ID tokens, and the profile mapped from the
// upstream IdP, which access tokens and userinfo disclose per scope.
type Session struct {
	openid.DefaultSession `json:"oidc"`
	Profile               tokens.Profile `json:"profile"`
}

// NewSession returns an empty session for fosite to fill.
func NewSession() *Session {
	return &Session{DefaultSession: openid.DefaultSession{Claims: &fjwt.IDTokenClaims{}, Headers: fjwt.NewHeaders()}}
}

// Clone deep-copies the session (fosite clones it on refresh).
func (s *Session) Clone() fosite.Session {
	b, err := json.Marshal(s)
	if err != nil {
		return nil
	}
	out := NewSession()
	if err := json.Unmarshal(b, out); err != nil {
		return nil
	}
	return out
}

// ScopedProfile returns the part of p that scopes allow: profile claims
// with "profile", email claims with "email".
func ScopedProfile(p tokens.Profile, scopes []string) tokens.Profile {
	var out tokens.Profile
	if slices.Contains(scopes, "profile") {
		out.Name, out.GivenName, out.FamilyName, out.PreferredUsername = p.Name, p.GivenName, p.FamilyName, p.PreferredUsername
	}
	if slices.Contains(scopes, "email") {
		out.Email, out.EmailVerified = p.Email, p.EmailVerified
	}
	return out
}

// profileMap is p as claims.
func profileMap(p tokens.Profile) map[string]any {
	b, _ := json.Marshal(p)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	return m
}

// accessStrategy issues access tokens in the fleet's format (RFC 9068 JWT,
// RS256, typ at+jwt, the KeyRing's active kid) and validates them with the
// fleet's verifier; authorization codes and refresh tokens stay fosite's
// opaque HMAC tokens.
type accessStrategy struct {
	hmac interface {
		RefreshTokenSignature(ctx context.Context, token string) string
		GenerateRefreshToken(ctx context.Context, requester fosite.Requester) (string, string, error)
		ValidateRefreshToken(ctx context.Context, requester fosite.Requester, token string) error
		AuthorizeCodeSignature(ctx context.Context, token string) string
		GenerateAuthorizeCode(ctx context.Context, requester fosite.Requester) (string, string, error)
		ValidateAuthorizeCode(ctx context.Context, requester fosite.Requester, token string) error
	}
	issuer   string
	ring     *tokens.KeyRing
	verifier *tokens.Verifier
	ttl      time.Duration
	now      func() time.Time
}

func (a *accessStrategy) AccessTokenSignature(_ context.Context, token string) string {
	return redisx.Hash(token)
}

func (a *accessStrategy) GenerateAccessToken(_ context.Context, r fosite.Requester) (string, string, error) {
	sess, _ := r.GetSession().(*Session)
	if sess == nil {
		return "", "", fosite.ErrServerError.WithDebug("unexpected session type")
	}
	now := a.now().UTC().Truncate(time.Second)
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = now.Add(a.ttl)
	}
	scopes := []string(r.GetGrantedScopes())
	std := jwt.Claims{
		Issuer: a.issuer, Subject: sess.Subject, Audience: jwt.Audience(r.GetGrantedAudience()),
		Expiry: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		ID: randomID(),
	}
	priv := tokens.AccessClaims{
		ClientID: r.GetClient().GetID(), Scope: strings.Join(scopes, " "),
		// fosite's request id names the grant: the code exchange and every
		// refresh keep it, and the store's token family is keyed by it.
		GrantID: r.GetID(),
		Profile: ScopedProfile(sess.Profile, scopes),
	}
	if sess.Claims != nil && !sess.Claims.AuthTime.IsZero() {
		priv.AuthTime = sess.Claims.AuthTime.Unix()
	}
	tok, err := a.ring.Sign(tokens.AccessTokenType, std, priv)
	if err != nil {
		return "", "", err
	}
	return tok, redisx.Hash(tok), nil
}

func (a *accessStrategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	if _, err := a.verifier.Verify(ctx, token); err != nil {
		return fosite.ErrTokenExpired.WithWrap(err).WithDebug(err.Error())
	}
	return nil
}

func (a *accessStrategy) RefreshTokenSignature(ctx context.Context, token string) string {
	return a.hmac.RefreshTokenSignature(ctx, token)
}
func (a *accessStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	return a.hmac.GenerateRefreshToken(ctx, r)
}
func (a *accessStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	return a.hmac.ValidateRefreshToken(ctx, r, token)
}
func (a *accessStrategy) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return a.hmac.AuthorizeCodeSignature(ctx, token)
}
func (a *accessStrategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	return a.hmac.GenerateAuthorizeCode(ctx, r)
}
func (a *accessStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return a.hmac.ValidateAuthorizeCode(ctx, r, token)
}

// ringSource serves the verifier the auth-server's own key set.
type ringSource struct {
	issuer string
	ring   *tokens.KeyRing
}

func (s ringSource) FetchKeySet(context.Context) (tokens.KeySet, error) {
	return tokens.KeySet{Issuer: s.issuer, Keys: s.ring.PublicJWKS()}, nil
}
