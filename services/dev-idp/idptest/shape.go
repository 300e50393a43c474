package idptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Shape describes how a real OpenID Provider departs from the dev IdP's
// defaults. StartShape serves it over real HTTP with real signed JWTs, so
// the auth-server's upstream bridge is tested against each provider's
// wire format without a mock of the bridge. {base} in the issuer fields is
// the provider's origin (http://127.0.0.1:<port>, or BaseURL), {host} that
// origin without its scheme.
//
// The provider signs in the account it is given at once (a provider with a
// single sign-on session): its /authorize redirects straight back with a
// code, after checking client_id, redirect_uri, response_type=code and the
// S256 code challenge.
type Shape struct {
	// Path is the issuer's path (e.g. "/" for Auth0, "/common/v2.0" for
	// Entra ID multi-tenant); Issuer = {base}+Path is what the auth-server
	// is configured with. Endpoints are served under it.
	Path string
	// DiscoveryIssuer is the discovery document's issuer (default Issuer).
	DiscoveryIssuer string
	// TokenIssuer is the ID token's iss (default DiscoveryIssuer).
	TokenIssuer string
	// Alg signs ID tokens: RS256 (default), RS512, PS256, ES256 or ES384.
	Alg string
	// AdvertisedAlgs is discovery's id_token_signing_alg_values_supported
	// (default [Alg]).
	AdvertisedAlgs []string
	// OmitKid publishes the key and signs without a kid.
	OmitKid bool
	// AuthMethods are the token endpoint authentication methods the
	// provider supports and enforces (default client_secret_basic and
	// client_secret_post).
	AuthMethods []string
	// TokenType is the token response's token_type (default "Bearer").
	TokenType string
	// NoUserinfo leaves userinfo_endpoint out of discovery (and serves none).
	NoUserinfo bool
	// Subject is the user's sub (default Subject).
	Subject string
	// IDClaims are added to the ID token, UserinfoClaims to userinfo.
	IDClaims, UserinfoClaims map[string]any
	// Skew moves iat and nbf this far into the future (a provider whose
	// clock runs ahead).
	Skew time.Duration
	// AuthTimeSkew moves auth_time, the time of the sign-in the provider
	// reports, this far from now: negative for a provider whose clock runs
	// behind, positive for one whose clock runs ahead.
	AuthTimeSkew time.Duration
	// IDTokenTTL is how long ID tokens are valid: exp is now plus this
	// (default an hour; negative: issued already expired).
	IDTokenTTL time.Duration
	// ForgeSignature signs ID tokens with a key that is not published,
	// under the published key's kid.
	ForgeSignature bool
	// BaseURL replaces the origin in every URL the provider names (with
	// TLS: the test dials the server by its own address).
	BaseURL string
	// TLS serves https (httptest's certificate, for example.com).
	TLS bool
	// ResponseModes is discovery's response_modes_supported (default:
	// left out). Whatever it says, a request with response_mode=form_post
	// is answered with a form POST (OAuth 2.0 Form Post Response Mode §2):
	// a page whose form submits itself to the redirect URI, as Sign in with
	// Apple sends.
	ResponseModes []string
	// ClientKey is the public key of the client's private_key_jwt
	// assertions (with AuthMethods listing private_key_jwt; OpenID Connect
	// Core §9, RFC 7523 §3), ClientKeyID its kid (empty: any). An
	// assertion must be signed RS256 or ES256 by it, have iss and sub the
	// client id, aud the token endpoint URL, an exp in the next 10 minutes
	// and a jti not seen before; client_assertion beside another
	// authentication method is refused.
	ClientKey   crypto.PublicKey
	ClientKeyID string
	// ClientCert makes the provider Microsoft Entra ID's certificate
	// credentials (with AuthMethods listing private_key_jwt): an assertion
	// must name the certificate in its header by x5t#S256, the base64url
	// SHA-256 of its DER (RFC 7515 §4.1.8), and an x5t beside it must be
	// the SHA-1 one (§4.1.7); it is verified with the certificate's public
	// key (ClientKey is then not needed), and may be PS256 as well
	// ("Microsoft identity platform application authentication certificate
	// credentials", Assertion format).
	ClientCert *x509.Certificate
	// AppleTeamID makes the provider Sign in with Apple's token endpoint:
	// the client secret (client_secret_post; with AuthMethods listing it)
	// must be a JWT signed ES256 by ClientKey with kid ClientKeyID, iss
	// AppleTeamID, sub the client id, aud the issuer, iat not in the
	// future and exp after now and at most six months (15777000 s) after
	// iat (Apple's "Creating a client secret"); ClientSecret is refused.
	AppleTeamID string
	// AuthorizeError, when set, is the error the authorization endpoint
	// answers instead of a code (e.g. Apple's user_cancelled_authorize).
	AuthorizeError string
	// AuthorizeIss, when set, is the iss parameter of the authorization
	// response (RFC 9207 §2; "{issuer}": the discovery document's issuer;
	// "{empty}": an iss parameter with an empty value).
	AuthorizeIss string
	// IssParameterSupported advertises
	// authorization_response_iss_parameter_supported in discovery (RFC
	// 9207 §3).
	IssParameterSupported bool
	// JWKSStatus and UserinfoStatus, when set, are the HTTP status the
	// JWKS and userinfo endpoints answer instead of their document, with
	// a plain-text body (an outage at the provider's front: 503, 502).
	JWKSStatus, UserinfoStatus int
	// User is the user field posted with a form_post answer (Sign in with
	// Apple's JSON, {"name":{"firstName":…,"lastName":…},"email":…}, sent
	// on a user's first sign-in only); empty: none.
	User string
}

// Shaped is a running provider of a Shape.
type Shaped struct {
	// Issuer is {base}+Path: the auth-server's UPSTREAM_ISSUER_URL.
	Issuer       string
	ClientID     string
	ClientSecret string
	// Server is the HTTP server (its Client trusts its certificate).
	Server *httptest.Server

	t        testing.TB
	shape    Shape
	base     string
	redirect string

	mu         sync.Mutex
	assertions []Assertion // accepted client assertions
	jtis       map[string]bool
	keys       []*shapeKey // published; the last one signs
	codes      map[string]shapeCode
	tokens     map[string]bool
	userinfo   int
	jwksCalls  int
	jwksDown   bool
}

type shapeKey struct {
	id  string
	key crypto.Signer
	// hidden keys sign but are not published (Unpublish).
	hidden bool
}

type shapeCode struct {
	redirect, challenge, nonce string
}

// StartShape runs a provider of shape until the test ends; redirect is the
// auth-server's /oauth/callback.
func StartShape(t testing.TB, shape Shape, redirect string) *Shaped {
	t.Helper()
	if shape.Alg == "" {
		shape.Alg = "RS256"
	}
	if len(shape.AuthMethods) == 0 {
		shape.AuthMethods = []string{"client_secret_basic", "client_secret_post"}
	}
	if shape.TokenType == "" {
		shape.TokenType = "Bearer"
	}
	if shape.Subject == "" {
		shape.Subject = Subject
	}
	p := &Shaped{t: t, shape: shape, ClientID: ClientID, ClientSecret: rand.Text(), redirect: redirect,
		codes: map[string]shapeCode{}, tokens: map[string]bool{}, jtis: map[string]bool{}}
	p.keys = []*shapeKey{p.newKey()}
	mux := http.NewServeMux()
	prefix := strings.TrimSuffix(shape.Path, "/")
	mux.HandleFunc("GET "+prefix+"/.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET "+prefix+"/authorize", p.authorize)
	mux.HandleFunc("POST "+prefix+"/token", p.token)
	mux.HandleFunc("GET "+prefix+"/jwks", p.jwks)
	if !shape.NoUserinfo {
		mux.HandleFunc("GET "+prefix+"/userinfo", p.userinfoHandler)
	}
	if shape.TLS {
		p.Server = httptest.NewTLSServer(mux)
	} else {
		p.Server = httptest.NewServer(mux)
	}
	t.Cleanup(p.Server.Close)
	p.base = p.Server.URL
	if shape.BaseURL != "" {
		p.base = shape.BaseURL
	}
	p.Issuer = p.base + shape.Path
	return p
}

// TLSConfig trusts the provider's certificate under its name example.com.
func (p *Shaped) TLSConfig() *tls.Config {
	c := p.Server.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	c.ServerName = "example.com"
	return c
}

// Rotate publishes a new signing key next to the old ones and signs with it
// from now on.
func (p *Shaped) Rotate() {
	k := p.newKey()
	p.mu.Lock()
	p.keys = append(p.keys, k)
	p.mu.Unlock()
}

// Rekey replaces the signing key with a new one under the same kid, the
// old one unpublished (a provider that reuses kids, or one restored with
// new keys under its old names).
func (p *Shaped) Rekey() {
	k := p.newKey()
	p.mu.Lock()
	last := p.keys[len(p.keys)-1]
	k.id = last.id
	p.keys[len(p.keys)-1] = k
	p.mu.Unlock()
}

// Unpublish removes the signing key from the JWKS, but the provider goes
// on signing with it (as one holding a key the provider removed would).
func (p *Shaped) Unpublish() {
	p.mu.Lock()
	p.keys[len(p.keys)-1].hidden = true
	p.mu.Unlock()
}

// JWKSDown makes the JWKS endpoint answer 503 (down) or serve the keys
// again (!down), as a provider whose key endpoint fails for a while.
func (p *Shaped) JWKSDown(down bool) {
	p.mu.Lock()
	p.jwksDown = down
	p.mu.Unlock()
}

// JWKSCalls is how many JWKS requests were answered 200.
func (p *Shaped) JWKSCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.jwksCalls
}

// UserinfoCalls is how many userinfo requests were answered 200.
func (p *Shaped) UserinfoCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.userinfo
}

func (p *Shaped) newKey() *shapeKey {
	var k crypto.Signer
	var err error
	switch p.shape.Alg {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	return &shapeKey{id: rand.Text()[:12], key: k}
}

func (p *Shaped) fill(s string) string {
	host := p.base[strings.Index(p.base, "://")+3:]
	return strings.NewReplacer("{base}", p.base, "{host}", host).Replace(s)
}

func (p *Shaped) discoveryIssuer() string {
	if p.shape.DiscoveryIssuer != "" {
		return p.fill(p.shape.DiscoveryIssuer)
	}
	return p.Issuer
}

func (p *Shaped) tokenIssuer() string {
	if p.shape.TokenIssuer != "" {
		return p.fill(p.shape.TokenIssuer)
	}
	return p.discoveryIssuer()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *Shaped) discovery(w http.ResponseWriter, _ *http.Request) {
	at := p.base + strings.TrimSuffix(p.shape.Path, "/")
	algs := p.shape.AdvertisedAlgs
	if len(algs) == 0 {
		algs = []string{p.shape.Alg}
	}
	doc := map[string]any{
		"issuer":                                p.discoveryIssuer(),
		"authorization_endpoint":                at + "/authorize",
		"token_endpoint":                        at + "/token",
		"jwks_uri":                              at + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": algs,
		"token_endpoint_auth_methods_supported": p.shape.AuthMethods,
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "profile", "email"},
	}
	if !p.shape.NoUserinfo {
		doc["userinfo_endpoint"] = at + "/userinfo"
	}
	if p.shape.IssParameterSupported {
		doc["authorization_response_iss_parameter_supported"] = true
	}
	if len(p.shape.ResponseModes) > 0 {
		doc["response_modes_supported"] = p.shape.ResponseModes
	}
	writeJSON(w, http.StatusOK, doc)
}

func (p *Shaped) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.ClientID || q.Get("redirect_uri") != p.redirect {
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	back, _ := url.Parse(p.redirect)
	out := url.Values{"state": {q.Get("state")}}
	switch {
	case q.Get("response_type") != "code":
		out.Set("error", "unsupported_response_type")
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		out.Set("error", "invalid_request")
	case !strings.Contains(" "+q.Get("scope")+" ", " openid "):
		out.Set("error", "invalid_scope")
	case p.shape.AuthorizeError != "":
		out.Set("error", p.shape.AuthorizeError)
	default:
		code := rand.Text()
		p.mu.Lock()
		p.codes[code] = shapeCode{redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), nonce: q.Get("nonce")}
		p.mu.Unlock()
		out.Set("code", code)
	}
	if p.shape.AuthorizeIss != "" {
		iss := strings.ReplaceAll(p.fill(p.shape.AuthorizeIss), "{issuer}", p.discoveryIssuer())
		out.Set("iss", strings.ReplaceAll(iss, "{empty}", ""))
	}
	if q.Get("response_mode") == "form_post" {
		if p.shape.User != "" && out.Has("code") {
			out.Set("user", p.shape.User)
		}
		formPost(w, back.String(), out)
		return
	}
	back.RawQuery = out.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// formPostPage submits the authorization response to the redirect URI
// with the browser's POST (OAuth 2.0 Form Post Response Mode §2, §5.1).
var formPostPage = template.Must(template.New("form_post").Parse(`<!DOCTYPE html>
<html><head><title>Submit This Form</title></head>
<body onload="javascript:document.forms[0].submit()">
<form method="post" action="{{.Action}}">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}"/>
{{end}}</form></body></html>
`))

// FormPostAction and FormPostFields read a form_post page: where its form
// posts and what (the page's HTML unescaped).
var (
	FormPostAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	FormPostFields = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

func formPost(w http.ResponseWriter, action string, fields url.Values) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = formPostPage.Execute(w, map[string]any{"Action": action, "Fields": fields})
}

// Assertion is a private_key_jwt client assertion, or a Sign in with
// Apple client secret, the provider accepted: its JOSE header and claims.
type Assertion struct {
	Header jose.Header
	Claims map[string]any
}

// Assertions returns the client assertions (or Apple client secrets)
// accepted so far.
func (p *Shaped) Assertions() []Assertion {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Assertion(nil), p.assertions...)
}

// TokenEndpoint is the provider's token endpoint URL.
func (p *Shaped) TokenEndpoint() string {
	return p.base + strings.TrimSuffix(p.shape.Path, "/") + "/token"
}

// assertionAuth checks a private_key_jwt client assertion (RFC 7523 §3).
func (p *Shaped) assertionAuth(r *http.Request) bool {
	key := p.shape.ClientKey
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.ES256}
	if p.shape.ClientCert != nil {
		key = p.shape.ClientCert.PublicKey
		algs = append(algs, jose.PS256)
	}
	if key == nil || r.PostForm.Has("client_secret") || r.Header.Get("Authorization") != "" ||
		r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return false
	}
	jws, err := jose.ParseSigned(r.PostForm.Get("client_assertion"), algs)
	if err != nil || len(jws.Signatures) != 1 {
		return false
	}
	h := jws.Signatures[0].Header
	if p.shape.ClientKeyID != "" && h.KeyID != p.shape.ClientKeyID {
		return false
	}
	if c := p.shape.ClientCert; c != nil {
		s256 := sha256.Sum256(c.Raw)
		s1 := sha1.Sum(c.Raw)
		x5t, hasX5t := h.ExtraHeaders["x5t"]
		if h.ExtraHeaders["x5t#S256"] != base64.RawURLEncoding.EncodeToString(s256[:]) ||
			(hasX5t && x5t != base64.RawURLEncoding.EncodeToString(s1[:])) {
			return false
		}
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return false
	}
	var c map[string]any
	if json.Unmarshal(payload, &c) != nil {
		return false
	}
	aud := c["aud"]
	if list, ok := aud.([]any); ok && len(list) == 1 {
		aud = list[0]
	}
	exp, _ := c["exp"].(float64)
	jti, _ := c["jti"].(string)
	now := float64(time.Now().Unix())
	if c["iss"] != p.ClientID || c["sub"] != p.ClientID || aud != p.TokenEndpoint() || exp < now || exp > now+600 || jti == "" ||
		(r.PostForm.Has("client_id") && r.PostForm.Get("client_id") != p.ClientID) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jtis[jti] {
		return false
	}
	p.jtis[jti] = true
	p.assertions = append(p.assertions, Assertion{Header: h, Claims: c})
	return true
}

// appleMaxSecretTTL is the longest a Sign in with Apple client secret may
// be valid: six months, as Apple counts them.
const appleMaxSecretTTL = 15777000

// appleSecretAuth checks a Sign in with Apple client secret JWT.
func (p *Shaped) appleSecretAuth(secret string) bool {
	jws, err := jose.ParseSigned(secret, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 || p.shape.ClientKey == nil {
		return false
	}
	h := jws.Signatures[0].Header
	if h.KeyID == "" || h.KeyID != p.shape.ClientKeyID {
		return false
	}
	payload, err := jws.Verify(p.shape.ClientKey)
	if err != nil {
		return false
	}
	var c map[string]any
	if json.Unmarshal(payload, &c) != nil {
		return false
	}
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	now := float64(time.Now().Unix())
	if c["iss"] != p.shape.AppleTeamID || c["sub"] != p.ClientID || c["aud"] != p.discoveryIssuer() ||
		iat == 0 || iat > now+5 || exp <= now || exp-iat > appleMaxSecretTTL {
		return false
	}
	p.mu.Lock()
	p.assertions = append(p.assertions, Assertion{Header: h, Claims: c})
	p.mu.Unlock()
	return true
}

// clientAuth checks the client per the methods the shape supports.
func (p *Shaped) clientAuth(r *http.Request) bool {
	allowed := func(m string) bool {
		for _, a := range p.shape.AuthMethods {
			if a == m {
				return true
			}
		}
		return false
	}
	if r.PostForm.Has("client_assertion") {
		return allowed("private_key_jwt") && p.assertionAuth(r)
	}
	if id, secret, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		return allowed("client_secret_basic") && id == p.ClientID && subtle.ConstantTimeCompare([]byte(secret), []byte(p.ClientSecret)) == 1
	}
	if p.shape.AppleTeamID != "" {
		return allowed("client_secret_post") && r.PostForm.Get("client_id") == p.ClientID && p.appleSecretAuth(r.PostForm.Get("client_secret"))
	}
	return allowed("client_secret_post") && r.PostForm.Get("client_id") == p.ClientID &&
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("client_secret")), []byte(p.ClientSecret)) == 1
}

func (p *Shaped) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if !p.clientAuth(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	c, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("redirect_uri") != c.redirect ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	at := rand.Text()
	p.mu.Lock()
	p.tokens[at] = true
	p.mu.Unlock()
	now := time.Now()
	ttl := p.shape.IDTokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	claims := map[string]any{
		"iss": p.tokenIssuer(), "sub": p.shape.Subject, "aud": p.ClientID,
		"iat": now.Add(p.shape.Skew).Unix(), "nbf": now.Add(p.shape.Skew).Unix(), "exp": now.Add(ttl).Unix(),
		"auth_time": now.Add(p.shape.AuthTimeSkew).Unix(), "nonce": c.nonce,
	}
	for k, v := range p.shape.IDClaims {
		claims[k] = v
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "token_type": p.shape.TokenType, "expires_in": 3600, "id_token": p.sign(claims),
	})
}

func (p *Shaped) sign(claims map[string]any) string {
	p.mu.Lock()
	k := p.keys[len(p.keys)-1]
	p.mu.Unlock()
	signer := k.key
	if p.shape.ForgeSignature {
		signer = p.newKey().key
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if !p.shape.OmitKid {
		opts = opts.WithHeader(jose.HeaderKey("kid"), k.id)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(p.shape.Alg), Key: signer}, opts)
	if err != nil {
		p.t.Error(err)
		return ""
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		p.t.Error(err)
		return ""
	}
	out, _ := jws.CompactSerialize()
	return out
}

func (p *Shaped) jwks(w http.ResponseWriter, _ *http.Request) {
	if p.shape.JWKSStatus != 0 {
		http.Error(w, http.StatusText(p.shape.JWKSStatus), p.shape.JWKSStatus)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jwksDown {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	p.jwksCalls++
	set := jose.JSONWebKeySet{}
	for _, k := range p.keys {
		if k.hidden {
			continue
		}
		jwk := jose.JSONWebKey{Key: k.key.Public(), Algorithm: p.shape.Alg, Use: "sig"}
		if !p.shape.OmitKid {
			jwk.KeyID = k.id
		}
		set.Keys = append(set.Keys, jwk)
	}
	writeJSON(w, http.StatusOK, set)
}

// userinfoHandler answers a bearer access token it issued (the scheme is
// case-insensitive, RFC 7235 §2.1).
func (p *Shaped) userinfoHandler(w http.ResponseWriter, r *http.Request) {
	if p.shape.UserinfoStatus != 0 {
		http.Error(w, http.StatusText(p.shape.UserinfoStatus), p.shape.UserinfoStatus)
		return
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	p.mu.Lock()
	ok := strings.EqualFold(scheme, "bearer") && p.tokens[tok]
	if ok {
		p.userinfo++
	}
	p.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	info := map[string]any{"sub": p.shape.Subject}
	for k, v := range p.shape.UserinfoClaims {
		info[k] = v
	}
	writeJSON(w, http.StatusOK, info)
}
