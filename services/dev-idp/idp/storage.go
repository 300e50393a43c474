package idp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// errNotFound is what lookups of unknown or expired entries return.
var errNotFound = errors.New("not found or expired")

// authRequest is a pending authorization from /authorize to the code
// exchange.
type authRequest struct {
	id        string
	req       oidc.AuthRequest
	expires   time.Time
	csrf      string // login form token bound to this request
	subject   string
	authTime  time.Time
	done      bool
	code      string // set once, when the code is issued
	codeUntil time.Time
}

func (a *authRequest) GetID() string                      { return a.id }
func (a *authRequest) GetACR() string                     { return "" }
func (a *authRequest) GetAMR() []string                   { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string              { return []string{a.req.ClientID} }
func (a *authRequest) GetAuthTime() time.Time             { return a.authTime }
func (a *authRequest) GetClientID() string                { return a.req.ClientID }
func (a *authRequest) GetNonce() string                   { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.req.Scopes }
func (a *authRequest) GetState() string                   { return a.req.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.done }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: a.req.CodeChallengeMethod}
}

// accessToken is an issued opaque access token.
type accessToken struct {
	subject  string
	clientID string
	scopes   []string
	expires  time.Time
}

// signingKey is the provider's RSA key, generated at start.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.signingKey.key.PublicKey }

func newSigningKey() (*signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	// The kid is derived from the public key so it names exactly this key.
	sum := sha256.Sum256(key.PublicKey.N.Bytes())
	return &signingKey{id: "devidp-" + base64.RawURLEncoding.EncodeToString(sum[:9]), key: key}, nil
}

// storage is the provider's in-memory state. Codes are single use: the
// first presentation at the token endpoint consumes it, whatever follows.
type storage struct {
	mu       sync.Mutex
	clients  map[string]*client
	users    *Users
	key      *signingKey
	now      func() time.Time
	loginTTL time.Duration
	codeTTL  time.Duration
	tokenTTL time.Duration
	// sessionAge and omitAuthTime: Config.SessionAge, Config.OmitAuthTime.
	sessionAge   time.Duration
	omitAuthTime bool

	requests map[string]*authRequest
	codes    map[string]string // code -> request id
	tokens   map[string]*accessToken
}

var _ op.Storage = (*storage)(nil)

func randomID() string { return rand.Text() + rand.Text() }

// sweep drops expired entries; callers hold mu.
func (s *storage) sweep(now time.Time) {
	for id, r := range s.requests {
		if now.After(r.expires) {
			delete(s.requests, id)
			if r.code != "" {
				delete(s.codes, r.code)
			}
		}
	}
	for id, t := range s.tokens {
		if now.After(t.expires) {
			delete(s.tokens, id)
		}
	}
}

// CreateAuthRequest stores a validated authorization request. PKCE with
// S256 is required of every client.
func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge is required (PKCE with S256)")
	}
	if req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired().WithDescription("the dev IdP keeps no session; prompt=none cannot succeed")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	r := &authRequest{id: randomID(), req: *req, expires: now.Add(s.loginTTL), csrf: randomID()}
	s.requests[r.id] = r
	return r, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || s.now().After(r.expires) {
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown or expired authorization request; start again from the client")
	}
	return r, nil
}

// pending returns a copy of the request for the login form.
func (s *storage) pending(id string) (authRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || s.now().After(r.expires) || r.done {
		return authRequest{}, false
	}
	return *r, true
}

// completeLogin marks the request authenticated as sub, once.
func (s *storage) completeLogin(id, csrf, sub string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || s.now().After(r.expires) || r.done {
		return errNotFound
	}
	if subtle.ConstantTimeCompare([]byte(csrf), []byte(r.csrf)) != 1 {
		return errBadCSRF
	}
	r.subject, r.authTime, r.done = sub, s.authTime(r.req), true
	return nil
}

var errBadCSRF = errors.New("login form token does not match")

// authTime is the auth_time of a sign-in completing now for req: zero
// (left out of the ID token) with omitAuthTime; the simulated session's
// start when it satisfies req; now when req forces a fresh authentication
// (prompt=login, or a max_age shorter than the session's age).
func (s *storage) authTime(req oidc.AuthRequest) time.Time {
	now := s.now()
	switch {
	case s.omitAuthTime:
		return time.Time{}
	case s.sessionAge <= 0, slices.Contains(req.Prompt, oidc.PromptLogin):
		return now
	case req.MaxAge != nil && time.Duration(*req.MaxAge)*time.Second < s.sessionAge:
		return now
	}
	return now.Add(-s.sessionAge)
}

// checkCSRF reports whether csrf belongs to the pending request id.
func (s *storage) checkCSRF(id, csrf string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	return ok && subtle.ConstantTimeCompare([]byte(csrf), []byte(r.csrf)) == 1
}

// SaveAuthCode records the code of a completed request; a request gets one
// code only.
func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || s.now().After(r.expires) {
		return oidc.ErrInvalidRequest().WithDescription("unknown or expired authorization request")
	}
	if !r.done {
		return oidc.ErrInteractionRequired().WithDescription("the user has not signed in")
	}
	if r.code != "" {
		return oidc.ErrInvalidRequest().WithDescription("a code was already issued for this authorization request")
	}
	r.code, r.codeUntil = code, s.now().Add(s.codeTTL)
	s.codes[code] = id
	return nil
}

// AuthRequestByCode consumes code: a second presentation finds nothing.
func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, errNotFound
	}
	delete(s.codes, code)
	r, ok := s.requests[id]
	if !ok {
		return nil, errNotFound
	}
	delete(s.requests, id)
	if s.now().After(r.codeUntil) {
		return nil, errors.New("code expired")
	}
	return r, nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.requests[id]; ok {
		delete(s.codes, r.code)
		delete(s.requests, id)
	}
	return nil
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	ar, ok := req.(*authRequest)
	if !ok {
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	id := randomID()
	t := &accessToken{subject: ar.subject, clientID: ar.req.ClientID, scopes: slices.Clone(ar.req.Scopes), expires: now.Add(s.tokenTTL)}
	s.tokens[id] = t
	return id, t.expires, nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("the dev IdP issues no refresh tokens")
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenOrID]; ok && t.clientID == clientID {
		delete(s.tokens, tokenOrID)
	}
	return nil
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("client %q is not registered", id)
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok {
		return fmt.Errorf("client %q is not registered", id)
	}
	if c.spec.AuthMethod == "none" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.spec.ClientSecret)) != 1 {
		return errors.New("wrong client secret")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does the work.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.fill(info, req.GetSubject(), scopes)
}

func (s *storage) fill(info *oidc.UserInfo, sub string, scopes []string) error {
	u, ok := s.users.BySubject(sub)
	if !ok {
		return oidc.ErrServerError().WithDescription("the user no longer exists")
	}
	info.Subject = u.Subject
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeProfile:
			info.Name, info.GivenName, info.FamilyName = u.Name, u.GivenName, u.FamilyName
			info.PreferredUsername = u.Username
		case oidc.ScopeEmail:
			info.Email, info.EmailVerified = u.Email, oidc.Bool(u.EmailVerified)
		}
	}
	return nil
}

// SetUserinfoFromToken answers /userinfo for a live access token.
func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	live := ok && !s.now().After(t.expires) && t.subject == subject
	var scopes []string
	if live {
		scopes = slices.Clone(t.scopes)
	}
	s.mu.Unlock()
	if !live {
		return oidc.ErrInvalidRequest().WithDescription("access token expired or revoked")
	}
	return s.fill(info, subject, scopes)
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("the dev IdP does not support introspection")
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("the dev IdP does not support JWT client authentication")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the dev IdP does not support the JWT profile grant")
}

func (s *storage) Health(context.Context) error { return nil }

func timeNow() time.Time { return time.Now() }
