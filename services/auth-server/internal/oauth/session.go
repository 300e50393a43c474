package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Session is what a grant remembers about the user: the OpenID Connect
// session fosite needs for ID tokens, and the profile mapped from the
// upstream IdP, which access tokens and userinfo disclose per scope.
type Session struct {
	openid.DefaultSession `json:"oidc"`
	Profile               tokens.Profile `json:"profile"`
	// UpstreamIssuer is the verified iss of the upstream ID token of the
	// sign-in that made the grant (Identity.Issuer): its subject is the
	// upstream sub within that issuer (OpenID Connect Core 1.0 §2). Empty
	// in a grant written before grants recorded it (issuerSet.acceptsGrant).
	UpstreamIssuer string `json:"upstream_iss,omitempty"`
}

// NewSession returns an empty session for fosite to fill.
func NewSession() *Session {
	return &Session{DefaultSession: openid.DefaultSession{Claims: &fjwt.IDTokenClaims{}, Headers: fjwt.NewHeaders()}}
}

// Clone deep-copies the session (fosite clones it on every refresh). It
// copies field by field; the claims' and headers' Extra maps are copied
// when they hold only JSON values (what a session read from the store
// holds), and otherwise the whole session goes through a JSON round trip,
// which is what Clone always did (TestSessionClone).
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	out := &Session{Profile: s.Profile, UpstreamIssuer: s.UpstreamIssuer}
	out.Username, out.Subject = s.Username, s.Subject
	if s.ExpiresAt != nil {
		out.ExpiresAt = make(map[fosite.TokenType]time.Time, len(s.ExpiresAt))
		for k, v := range s.ExpiresAt {
			out.ExpiresAt[k] = v
		}
	}
	ok := true
	if c := s.Claims; c != nil {
		cc := *c
		cc.Audience = slices.Clone(c.Audience)
		cc.AuthenticationMethodsReferences = slices.Clone(c.AuthenticationMethodsReferences)
		cc.Extra, ok = cloneJSONMap(c.Extra)
		out.Claims = &cc
	}
	if h := s.Headers; h != nil && ok {
		hh := *h
		hh.Extra, ok = cloneJSONMap(h.Extra)
		out.Headers = &hh
	}
	if !ok {
		return s.cloneJSON()
	}
	return out
}

// cloneJSON is Clone by a JSON round trip.
func (s *Session) cloneJSON() fosite.Session {
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

// cloneJSONMap deep-copies m if it holds only what encoding/json decodes
// into an interface (nil, bool, float64, string, []any, map[string]any);
// ok is false otherwise.
func cloneJSONMap(m map[string]any) (map[string]any, bool) {
	if m == nil {
		return nil, true
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		c, ok := cloneJSONValue(v)
		if !ok {
			return nil, false
		}
		out[k] = c
	}
	return out, true
}

func cloneJSONValue(v any) (any, bool) {
	switch v := v.(type) {
	case nil, bool, float64, string:
		return v, true
	case map[string]any:
		return cloneJSONMap(v)
	case []any:
		if v == nil {
			return v, true
		}
		out := make([]any, len(v))
		for i, e := range v {
			c, ok := cloneJSONValue(e)
			if !ok {
				return nil, false
			}
			out[i] = c
		}
		return out, true
	}
	return nil, false
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
// typ at+jwt, signed by the KeyRing with the configured algorithm) and
// validates them with the fleet's verifier; authorization codes stay
// fosite's opaque HMAC tokens, and refresh tokens are fosite HMAC tokens
// whose key names their grant (see GenerateRefreshToken).
//
// The "signatures" it returns are the store's handles (package store):
// "<grant id>.<exp>" for an access token and "<grant id>.<mac>" for a
// refresh token, so the store keeps one record per grant.
type accessStrategy struct {
	hmac *oauth2.HMACSHAStrategy
	// macKey is fosite's HMAC key of tokens (the first 32 bytes of the
	// global secret); successorKey derives a refresh token's successor.
	macKey       [32]byte
	successorKey []byte
	issuer       string
	ring         *tokens.KeyRing
	alg          jose.SignatureAlgorithm
	verifier     *tokens.Verifier
	ttl          time.Duration
	now          func() time.Time
	// signing counts the signatures' CPU time (nil: not counted).
	signing *signingMeter
	// gate queues the signatures (signGate; nil: none).
	gate *signGate
	// macs and successors are the HMAC states under macKey and
	// successorKey, pooled (keyedMAC).
	macs, successors keyedMAC
}

// keyedMAC is HMAC-SHA512/256 under one key with its states pooled:
// hmac.New allocates ~1.2 KB and hashes the key each time, and a refresh
// computes three MACs (the presented token's, its successor's nonce and
// the successor's token MAC; successorOf) — hmac.New's were ~6 % of a
// refresh's allocation (docs/benchmarks/auth-server-history.md).
// A pooled state is Reset to the keyed state before use. The zero value
// is ready; the key is the one of the first call, and every call must pass
// the same.
type keyedMAC struct {
	once sync.Once
	pool sync.Pool
}

// sum appends the MAC of data under key to dst.
func (k *keyedMAC) sum(key, dst []byte, data ...[]byte) []byte {
	k.once.Do(func() {
		key := slices.Clone(key)
		k.pool.New = func() any { return hmac.New(sha512.New512_256, key) }
	})
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	for _, d := range data {
		h.Write(d)
	}
	dst = h.Sum(dst)
	k.pool.Put(h)
	return dst
}

const refreshPrefix = "ory_rt_"

// AccessTokenSignature is the store handle "<grant id>.<exp>", read from the
// token's claims without verifying it: the store only looks the grant up,
// and ValidateAccessToken verifies the token before anything is trusted.
func (a *accessStrategy) AccessTokenSignature(_ context.Context, token string) string {
	tok, err := jwt.ParseSigned(token, tokens.AccessTokenAlgorithms)
	if err != nil {
		return ""
	}
	// grant_id names the token's grant (fosite's request id): the
	// auth-server finds the grant of an access token without storing it.
	var g tokens.AccessClaims
	var std jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&g, &std); err != nil || !store.ValidGrantID(g.GrantID) {
		return ""
	}
	h := g.GrantID
	if std.Expiry != nil {
		h += "." + strconv.FormatInt(int64(*std.Expiry), 10)
	}
	return h
}

// lifetime is an access token's exp - iat (ACCESS_TOKEN_TTL in whole
// seconds), the expires_in of a token response (RFC 6749 §5.1).
func (a *accessStrategy) lifetime() time.Duration { return a.ttl.Truncate(time.Second) }

func (a *accessStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	sess, _ := r.GetSession().(*Session)
	if sess == nil {
		return "", "", fosite.ErrServerError.WithDebug("unexpected session type")
	}
	if !store.ValidGrantID(r.GetID()) {
		return "", "", fosite.ErrServerError.WithDebug("request without a grant id")
	}
	// iat, nbf and exp come from one instant, and exp - iat is the
	// lifetime the token response's expires_in says (RFC 6749 §5.1,
	// RFC 9068 §2.2; Server.token sets it). fosite set the session's
	// expiry from its own, earlier clock reading, rounded to the second:
	// against this one, truncated, exp - iat was 3601 s in about half the
	// grants. The session (the store's record, the handle) gets this exp.
	now := a.now().UTC().Truncate(time.Second)
	exp := now.Add(a.lifetime())
	sess.SetExpiresAt(fosite.AccessToken, exp)
	scopes := []string(r.GetGrantedScopes())
	std := jwt.Claims{
		Issuer: a.issuer, Subject: sess.Subject, Audience: jwt.Audience(r.GetGrantedAudience()),
		Expiry: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		ID: randomID(),
	}
	priv := tokens.AccessClaims{
		ClientID: r.GetClient().GetID(), Scope: strings.Join(scopes, " "),
		// fosite's request id names the grant: the code exchange and every
		// refresh keep it, and the store keeps one record per grant under it.
		GrantID: r.GetID(),
		Profile: ScopedProfile(sess.Profile, scopes),
	}
	if sess.Claims != nil && !sess.Claims.AuthTime.IsZero() {
		priv.AuthTime = sess.Claims.AuthTime.Unix()
	}
	var tok string
	if err := a.gate.enter(ctx); err != nil {
		return "", "", err
	}
	err := func() error {
		defer a.gate.exit(ctx) // also when signing panics (net/http recovers)
		return a.signing.sign(string(a.alg), "access_token", func() (err error) {
			tok, err = a.ring.SignAccessToken(a.alg, std, priv)
			return err
		})
	}()
	if err != nil {
		return "", "", err
	}
	return tok, r.GetID() + "." + strconv.FormatInt(exp.Unix(), 10), nil
}

// ValidateAccessToken verifies the token; r is its grant as the store
// read it, whose granted scopes it narrows to the token's own: a refresh
// may issue a token with fewer scopes than its grant (RFC 6749 §6), and
// userinfo and introspection answer for the token. Its RequestedAt
// becomes the token's iat, which introspection answers as iat (RFC 7662
// §2.2: when the token was issued; the grant's is its sign-in, earlier
// than any refresh's token).
func (a *accessStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	c, err := a.verifier.Verify(ctx, token)
	if err != nil {
		return fosite.ErrTokenExpired.WithWrap(err).WithDebug(err.Error())
	}
	if req, ok := r.(*fosite.Request); ok && req != nil {
		if !c.IssuedAt.IsZero() {
			req.RequestedAt = c.IssuedAt.UTC()
		}
		var keep fosite.Arguments
		for _, sc := range req.GrantedScope {
			if slices.Contains(c.Scopes, sc) {
				keep = append(keep, sc)
			}
		}
		req.GrantedScope = keep
	}
	return nil
}

// Refresh tokens are fosite HMAC tokens, ory_rt_<key>.<mac> with
// mac = HMAC-SHA512/256(secret, key), whose key is
//
//	len(grant id) (1 byte) | grant id | nonce (32 bytes)
//
// so a token names its grant and fosite's own validation (rotated secrets
// included) applies unchanged. The first token of a grant has a random
// nonce; a successor's nonce is HMAC(successorKey, predecessor's mac), so
// every refresh with the same token yields the same successor: concurrent
// refreshes by one client converge on one live token instead of branching.

// parseRefresh checks a refresh token's MAC and returns its grant id and mac.
// parsedRefresh remembers, for the length of one token request, the
// refresh token parseRefresh last checked: fosite asks for the presented
// token's signature twice and the strategy checks it again to derive its
// successor — one HMAC check instead of three (withParsedRefresh).
type parsedRefresh struct {
	mu            sync.Mutex
	token, id, mc string
	ok, done      bool
	// the successor made for (succID, succMAC) (successorOf)
	succID, succMAC, succToken, succHandle string
	succMade                               bool
}

type parsedRefreshKey struct{}

// withParsedRefresh returns ctx carrying the request's parseRefresh memo.
func withParsedRefresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, parsedRefreshKey{}, &parsedRefresh{})
}

// parseRefresh checks an authentic refresh token and returns its grant id
// and MAC. Within a token request (withParsedRefresh) the result for the
// same token string is computed once.
func (a *accessStrategy) parseRefresh(ctx context.Context, token string) (id, mac string, ok bool) {
	p, _ := ctx.Value(parsedRefreshKey{}).(*parsedRefresh)
	if p == nil {
		return a.checkRefresh(ctx, token)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done || p.token != token {
		p.id, p.mc, p.ok = a.checkRefresh(ctx, token)
		p.token, p.done = token, true
	}
	return p.id, p.mc, p.ok
}

func (a *accessStrategy) checkRefresh(ctx context.Context, token string) (id, mac string, ok bool) {
	raw, found := strings.CutPrefix(token, refreshPrefix)
	if !found || (!a.currentMAC(raw) && a.hmac.Enigma.Validate(ctx, raw) != nil) {
		return "", "", false
	}
	k, mac, _ := strings.Cut(raw, ".")
	key, err := b64.DecodeString(k)
	if err != nil || len(key) < 1 || len(key) < 1+int(key[0]) {
		return "", "", false
	}
	id = string(key[1 : 1+int(key[0])])
	if !store.ValidGrantID(id) {
		return "", "", false
	}
	return id, mac, true
}

// currentMAC reports whether raw, a fosite HMAC token without its prefix
// ("<key>.<mac>", base64url), carries the MAC of its key under the
// current secret (macKey) — the first check of fosite's
// Enigma.Validate, made with a pooled state (keyedMAC) where fosite
// makes an HMAC state per call (hmac.New: ~1 KB and the key hashed
// again). It accepts only what that check accepts; false says nothing
// more: the caller then asks Enigma.Validate, which also tries the
// rotated secrets (TestCurrentMAC). Without a key (macKey all zero) it
// is always false.
func (a *accessStrategy) currentMAC(raw string) bool {
	if a.macKey == ([32]byte{}) {
		return false
	}
	k, m, ok := strings.Cut(raw, ".")
	if !ok || k == "" || m == "" {
		return false
	}
	key, err := b64.DecodeString(k)
	if err != nil {
		return false
	}
	var want [32]byte
	var enc [43]byte // b64.EncodedLen(32)
	if len(m) != len(enc) {
		return false
	}
	copy(enc[:], m)
	if n, err := b64.Decode(want[:], enc[:]); err != nil || n != len(want) {
		return false
	}
	var sum [32]byte
	return hmac.Equal(a.macs.sum(a.macKey[:], sum[:0], key), want[:])
}

// RefreshTokenSignature is the store handle "<grant id>.<mac>" of an
// authentic refresh token, "" for anything else (not found).
func (a *accessStrategy) RefreshTokenSignature(ctx context.Context, token string) string {
	id, mac, ok := a.parseRefresh(ctx, token)
	if !ok {
		return ""
	}
	return id + "." + mac
}

// GenerateRefreshToken issues the grant's first refresh token, or the
// successor of the one being redeemed (refresh_token grant).
func (a *accessStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	id := r.GetID()
	if !store.ValidGrantID(id) {
		return "", "", fosite.ErrServerError.WithDebug("request without a grant id")
	}
	if pid, pmac, ok := a.parseRefresh(ctx, r.GetRequestForm().Get("refresh_token")); ok && pid == id {
		tok, handle := a.successorOf(ctx, id, pmac)
		return tok, handle, nil
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return "", "", err
	}
	tok, handle := a.refreshToken(id, nonce)
	return tok, handle, nil
}

// successorOf is successor(id, pmac), made once per token request
// (withParsedRefresh): a refresh needs it twice — the store's intent
// (refreshGrantHandler.expect), so that the grant's read rotates it in the
// same round trip, then fosite's GenerateRefreshToken for the response —
// and each making is two HMACs (the successor's nonce, its token's MAC).
// successor is a function of (id, pmac) and the keys alone, so a second
// call with the same pair gets the same token and handle it would make.
func (a *accessStrategy) successorOf(ctx context.Context, id, pmac string) (token, handle string) {
	p, _ := ctx.Value(parsedRefreshKey{}).(*parsedRefresh)
	if p == nil {
		return a.successor(id, pmac)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.succMade || p.succID != id || p.succMAC != pmac {
		p.succToken, p.succHandle = a.successor(id, pmac)
		p.succID, p.succMAC, p.succMade = id, pmac, true
	}
	return p.succToken, p.succHandle
}

// successor is the refresh token that follows the grant's token with MAC
// pmac, and its store handle.
func (a *accessStrategy) successor(id, pmac string) (token, handle string) {
	var nonce [32]byte
	return a.refreshToken(id, a.successors.sum(a.successorKey, nonce[:0], []byte(pmac)))
}

func (a *accessStrategy) refreshToken(id string, nonce []byte) (token, handle string) {
	key := append(append([]byte{byte(len(id))}, id...), nonce...)
	var sum [32]byte
	mac := b64.EncodeToString(a.macs.sum(a.macKey[:], sum[:0], key))
	return refreshPrefix + b64.EncodeToString(key) + "." + mac, id + "." + mac
}

// ValidateRefreshToken is fosite's check (HMACSHAStrategy): the refresh
// token's expiry in the stored session, then its MAC — here through
// parseRefresh, which within a token request has already checked this
// token to find its grant (the pooled HMAC state, else fosite's
// Enigma.Validate with the rotated secrets), instead of a third HMAC with
// a state of its own (hmac.New: ~1 KB). A token parseRefresh refuses is
// refused as fosite's check refuses it (TestValidateRefreshToken).
func (a *accessStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	if exp := r.GetSession().GetExpiresAt(fosite.RefreshToken); !exp.IsZero() && exp.Before(time.Now().UTC()) {
		return fosite.ErrTokenExpired.WithHintf("Refresh token expired at '%s'.", exp)
	}
	if _, _, ok := a.parseRefresh(ctx, token); !ok {
		return a.hmac.ValidateRefreshToken(ctx, r, token)
	}
	return nil
}

// Authorization codes are fosite HMAC tokens too, ory_ac_<key>.<mac>, whose
// key names the grant the code will create (fosite's request id, which the
// code exchange keeps):
//
//	len(grant id) (1 byte) | grant id | nonce (32 random bytes)
//
// so the code's Redis key and its grant's share a Redis Cluster hash tag
// (package store, CodeHandle) and the redemption script runs in one slot.

// AuthorizeCodeSignature is the store handle "<grant id>.<mac>" of a code
// (store.CodeHandle), "" for anything else (not found).
func (a *accessStrategy) AuthorizeCodeSignature(_ context.Context, token string) string {
	return store.CodeHandle(token)
}

// GenerateAuthorizeCode issues a code naming the request's grant id.
func (a *accessStrategy) GenerateAuthorizeCode(_ context.Context, r fosite.Requester) (string, string, error) {
	id := r.GetID()
	if !store.ValidGrantID(id) {
		return "", "", fosite.ErrServerError.WithDebug("request without a grant id")
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return "", "", err
	}
	key := append(append([]byte{byte(len(id))}, id...), nonce...)
	var sum [32]byte
	mac := b64.EncodeToString(a.macs.sum(a.macKey[:], sum[:0], key))
	return store.CodePrefix + b64.EncodeToString(key) + "." + mac, id + "." + mac, nil
}

// ValidateAuthorizeCode is fosite's check (HMACSHAStrategy): the code's
// expiry, then its MAC — here the MAC under the current secret with the
// pooled HMAC state (currentMAC), where fosite's check makes an HMAC state
// of its own per call (hmac.New: ~0.75 KB and the key hashed again), and
// fosite's code handler validates a code twice per grant. A code that
// check does not accept (a rotated secret, an altered or malformed code)
// goes to fosite's own check, so its answer is fosite's
// (TestValidateAuthorizeCode).
func (a *accessStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	raw, ok := strings.CutPrefix(token, store.CodePrefix)
	if !ok || !a.currentMAC(raw) {
		return a.hmac.ValidateAuthorizeCode(ctx, r, token)
	}
	// fosite's expiry rule (HMACSHAStrategyUnPrefixed.ValidateAuthorizeCode).
	exp := r.GetSession().GetExpiresAt(fosite.AuthorizeCode)
	if exp.IsZero() {
		if end := r.GetRequestedAt().Add(a.hmac.Config.GetAuthorizeCodeLifespan(ctx)); end.Before(time.Now().UTC()) {
			return fosite.ErrTokenExpired.WithHintf("Authorize code expired at '%s'.", end)
		}
		return nil
	}
	if exp.Before(time.Now().UTC()) {
		return fosite.ErrTokenExpired.WithHintf("Authorize code expired at '%s'.", exp)
	}
	return nil
}

// authenticCode reports whether code is one this server made: an
// authorization code carrying the MAC of its key under the current secret
// or a rotated one (ValidateAuthorizeCode's MAC check, without the
// expiry).
func (a *accessStrategy) authenticCode(ctx context.Context, code string) bool {
	raw, ok := strings.CutPrefix(code, store.CodePrefix)
	return ok && (a.currentMAC(raw) || a.hmac.Enigma.Validate(ctx, raw) == nil)
}

// b64 is fosite's token encoding (base64url, no padding).
var b64 = base64.RawURLEncoding

// ringSource serves the verifier the auth-server's own key set.
type ringSource struct {
	issuer string
	ring   *tokens.KeyRing
}

func (s ringSource) FetchKeySet(context.Context) (tokens.KeySet, error) {
	return tokens.KeySet{Issuer: s.issuer, Keys: s.ring.PublicJWKS()}, nil
}

// refreshIDToken is fosite's OpenID Connect refresh handler, run only when
// the refresh request asks for an ID token by naming openid in its scope
// parameter (RFC 6749 §6). OpenID Connect Core §12.2 lets a refresh
// response omit the ID token; the clients we serve use the access token,
// and an ID token costs a second signature per refresh
// (docs/reference/oauth.md, "Signing budget").
type refreshIDToken struct {
	inner *openid.OpenIDConnectRefreshHandler
}

func refreshIDTokenFactory(config fosite.Configurator, storage any, strategy any) any {
	return &refreshIDToken{inner: compose.OpenIDConnectRefreshFactory(config, storage, strategy).(*openid.OpenIDConnectRefreshHandler)}
}

// wantsIDToken reports whether a refresh request names openid in scope.
func wantsIDToken(r fosite.AccessRequester) bool {
	return slices.Contains(strings.Fields(r.GetRequestForm().Get("scope")), "openid")
}

func (h *refreshIDToken) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !wantsIDToken(r) {
		return fosite.ErrUnknownRequest
	}
	return h.inner.HandleTokenEndpointRequest(ctx, r)
}

func (h *refreshIDToken) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !wantsIDToken(r) {
		return fosite.ErrUnknownRequest
	}
	return h.inner.PopulateTokenEndpointResponse(ctx, r, resp)
}

func (h *refreshIDToken) CanSkipClientAuth(ctx context.Context, r fosite.AccessRequester) bool {
	return h.inner.CanSkipClientAuth(ctx, r)
}

func (h *refreshIDToken) CanHandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) bool {
	return wantsIDToken(r) && h.inner.CanHandleTokenEndpointRequest(ctx, r)
}
