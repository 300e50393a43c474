// Package clients is the OAuth client model: statically registered clients
// from a mounted file, and the rules every client (static, Client ID
// Metadata Document or dynamically registered) must satisfy.
package clients

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// Kind says where a client comes from.
type Kind string

const (
	KindStatic   Kind = "static"
	KindMetadata Kind = "metadata-document"
	KindDynamic  Kind = "dynamic"
)

// Token endpoint authentication methods.
const (
	AuthBasic         = "client_secret_basic"
	AuthPost          = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
	AuthNone          = "none"
)

// AuthMethods are the supported token endpoint authentication methods.
var AuthMethods = []string{AuthBasic, AuthPost, AuthPrivateKeyJWT, AuthNone}

// DefaultScopes are granted when an authorization request has no scope.
var DefaultScopes = []string{"openid", "profile", "email"}

// GrantTypes are the grants the auth-server offers.
var GrantTypes = []string{"authorization_code", "refresh_token"}

// ErrNotFound means no client has the id.
var ErrNotFound = errors.New("client not found")

// Client is one OAuth client. It implements fosite.Client and
// fosite.OpenIDConnectClient.
type Client struct {
	ID           string
	Name         string
	SecretHash   []byte
	RedirectURIs []string
	Grants       []string
	AllowedScope []string
	// AnyScope, when set, are the scopes supported now (Rules.ScopeSource):
	// a client whose registration names no scopes may ask for any scope
	// the install supports when it asks, also one a backend declared
	// after the client was loaded. AllowedScope then holds those of the
	// moment the client was loaded.
	AnyScope func() []string `json:"-"`
	// Resources are the audiences (RFC 8707 resources) the client may ask
	// for; the first is the default when a request names none.
	Resources []string
	// AuthMethod is the token endpoint authentication method.
	AuthMethod string
	// RequirePKCE demands S256 PKCE even from confidential clients. Public
	// clients always need it.
	RequirePKCE bool
	// SkipConsent lets a first-party static client skip the consent page.
	// Rules.Check refuses it for a public client with a redirect URI that
	// ApprovalReusable rejects (RFC 8252 §8.6): that redirect does not
	// prove who asks, so the user's approval cannot be assumed either.
	SkipConsent bool
	// JWKS is the client's inline JWK Set (RFC 7591 §2 "jwks"), as
	// registered; set it with setJWKS, which keeps its assertion keys.
	JWKS    *josev3.JSONWebKeySet
	JWKSURI string
	Kind    Kind
	// ClientURI is the client's home page (metadata documents).
	ClientURI string
	// CacheUntil is, for a metadata document's client, until when its
	// cached document may be kept once an authorization with the client
	// has reached a user (the document's max-age within CIMD_CACHE_TTL,
	// from its fetch); zero for every other client.
	CacheUntil time.Time
	// ResourceServer lets a static client introspect every access token,
	// not only its own (RFC 7662 §2.1: the server decides who may
	// introspect); a refresh token is active only to its own client.
	ResourceServer bool
	// assertionKeys is AssertionKeys(assertionKeysOf): the keys of JWKS
	// that may verify a client assertion, filtered once where the client
	// is built (the registry file, a metadata document: setJWKS) rather
	// than at each private_key_jwt authentication (GetJSONWebKeys).
	assertionKeys, assertionKeysOf *josev3.JSONWebKeySet
}

var (
	_ fosite.Client              = (*Client)(nil)
	_ fosite.OpenIDConnectClient = (*Client)(nil)
)

func (c *Client) GetID() string                   { return c.ID }
func (c *Client) GetHashedSecret() []byte         { return c.SecretHash }
func (c *Client) GetRedirectURIs() []string       { return c.RedirectURIs }
func (c *Client) GetGrantTypes() fosite.Arguments { return c.Grants }
func (c *Client) GetResponseTypes() fosite.Arguments {
	return fosite.Arguments{"code"}
}

// GetScopes are the scopes c may ask for: AnyScope's when set, else
// AllowedScope.
func (c *Client) GetScopes() fosite.Arguments {
	if c.AnyScope != nil {
		return c.AnyScope()
	}
	return c.AllowedScope
}
func (c *Client) IsPublic() bool                { return c.AuthMethod == AuthNone }
func (c *Client) GetAudience() fosite.Arguments { return c.Resources }

func (c *Client) GetRequestURIs() []string                 { return nil }
func (c *Client) GetJSONWebKeysURI() string                { return c.JWKSURI }
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetJSONWebKeys is what fosite verifies c's client assertions with: the
// keys of c's inline jwks that AssertionKeys keeps (nil without an inline
// jwks: fosite then fetches jwks_uri). A set is accepted when one key is
// usable (AssertionKeysProblem), so it may hold others — a key above the
// size ceiling among them — which an assertion naming its kid would
// otherwise have checked with. The set is the one setJWKS filtered, shared
// by every authentication (fosite only reads it); a JWKS set otherwise (a
// Client written as a literal) is filtered at each call, as before.
func (c *Client) GetJSONWebKeys() *josev3.JSONWebKeySet {
	if c.assertionKeysOf == c.JWKS {
		return c.assertionKeys
	}
	return AssertionKeys(c.JWKS)
}

// setJWKS sets c's inline jwks and filters, once, the keys of it that may
// verify a client assertion (GetJSONWebKeys).
func (c *Client) setJWKS(set *josev3.JSONWebKeySet) {
	c.JWKS, c.assertionKeys, c.assertionKeysOf = set, AssertionKeys(set), set
}

func (c *Client) GetTokenEndpointAuthMethod() string { return c.AuthMethod }

// IsSecretMethod reports whether method sends the client secret itself:
// client_secret_basic or client_secret_post.
func IsSecretMethod(method string) bool { return method == AuthBasic || method == AuthPost }

// AuthenticatingWith is c as the token, revocation and introspection
// endpoints authenticate it when the request carries its secret by used.
// A client issued a secret (registered with client_secret_basic or
// client_secret_post) may send it either way: RFC 6749 §2.3.1 (OAuth 2.1
// §2.4.1) says the server MUST support HTTP Basic for clients issued a
// password and MAY support the body parameters, and clients pick one
// without reading the registration (the MCP TypeScript SDK sends Basic,
// openid-client the body). fosite accepts only the registered method
// (GetTokenEndpointAuthMethod), so a secret client is returned as a copy
// that reports used; the secret is then checked exactly as for the
// registered method. Any other pair — a public or private_key_jwt client,
// or used not a secret method — returns c itself, as strict as registered.
func (c *Client) AuthenticatingWith(used string) *Client {
	if c.AuthMethod == used || !IsSecretMethod(c.AuthMethod) || !IsSecretMethod(used) {
		return c
	}
	cp := *c
	cp.AuthMethod = used
	return &cp
}
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	return AssertionSigningAlg
}

// AssertionSigningAlg is the one algorithm a private_key_jwt client
// assertion is accepted in: fosite refuses an assertion whose alg differs
// from GetTokenEndpointAuthSigningAlgorithm, so ES256 or PS256 assertions
// are invalid_client whatever keys the client publishes. Discovery
// advertises exactly this (token_endpoint_auth_signing_alg_values_supported).
const AssertionSigningAlg = "RS256"

// NeedsPKCE reports whether authorization requests must carry S256 PKCE.
func (c *Client) NeedsPKCE() bool { return c.RequirePKCE || c.IsPublic() }

// NeedsConsent reports whether the user must approve the client before a
// code is issued: always for self-registered clients.
func (c *Client) NeedsConsent() bool { return c.Kind != KindStatic || !c.SkipConsent }

// ApprovalReusable reports whether a remembered approval of c may stand
// in for the consent page for an authorization request whose redirect
// URI is redirect. RFC 8252 §8.6: a server that cannot verify a client's
// identity SHOULD NOT process its request automatically, also when the
// user approved the client before, "unless the identity of the client can
// be proven". A confidential client proves it at the token endpoint, and a
// public client's https redirect delivers the code only to the origin the
// user approved (a claimed "https" redirect, which §8.6 accepts as
// proof). A public client's http redirect — a loopback address (on any
// port, RFC 8252 §7.3), or any host in development — proves nothing: any
// local process can listen there and send the client's public client_id,
// so it always gets the consent page. Nor does an https redirect to a
// loopback host (https://localhost:8443/cb, https://127.0.0.1/cb): no one
// owns that origin, and a local process with a locally trusted
// certificate (mkcert) can serve it (review4) — nor to a name or address
// that reaches the user's own machine as surely: a *.localhost name (RFC
// 6761 §6.3), either spelt with a trailing dot, and the unspecified
// addresses 0.0.0.0 and [::] (review5).
func (c *Client) ApprovalReusable(redirect string) bool {
	if !c.IsPublic() {
		return true
	}
	u, err := url.Parse(redirect)
	return err == nil && u.Scheme == "https" && !ownMachine(u.Hostname())
}

// unsupportedScopes is the scopes c allows that supported does not hold,
// in c's order: what Rules.Check refuses when the client is loaded or
// registered, and what Static.UnsupportedScopes reports of the static
// clients when the backends' scopes change.
func (c *Client) unsupportedScopes(supported []string) []string {
	var out []string
	for _, s := range c.AllowedScope {
		if !slices.Contains(supported, s) {
			out = append(out, s)
		}
	}
	return out
}

// DefaultResource is the audience of a request that names no resource.
func (c *Client) DefaultResource() string {
	if len(c.Resources) == 0 {
		return ""
	}
	return c.Resources[0]
}

// Rules are what every client must satisfy.
type Rules struct {
	// Resources the install serves; a client's resources are a subset.
	Resources []string
	// Scopes the install supports: the OpenID Connect scopes and those the
	// capabilities declare (registry.Registry.ScopeNames). A client may be
	// allowed a subset; one that names none is allowed all of them. Empty
	// means the OpenID Connect scopes alone.
	Scopes []string
	// ScopeSource, when set, gives the scopes supported at the moment of
	// the call and wins over Scopes: they follow the backends
	// (registry.Discovery). A client that names no scopes is then allowed
	// every scope supported when it asks (Client.AnyScope).
	ScopeSource func() []string
	// ScopesUnknown, when set, is asked at each check of a client that
	// names scopes: true skips the scope check, every other problem still
	// reported — the supported scopes are not known, because a backend has
	// not been reached yet (at the start or a clients-file reload), or the
	// configuration is invalid and the backends were not read (AlwaysUnknown).
	ScopesUnknown func() bool
	// Production refuses plain-http redirect URIs other than loopback.
	Production bool
}

// AlwaysUnknown is a Rules.ScopesUnknown for when the supported scopes
// cannot be known at all.
func AlwaysUnknown() bool { return true }

// SupportedScopes returns r.Scopes, or the OpenID Connect scopes when it
// is empty.
func (r Rules) SupportedScopes() []string {
	if r.ScopeSource != nil {
		if now := r.ScopeSource(); len(now) > 0 {
			return now
		}
	}
	if len(r.Scopes) > 0 {
		return r.Scopes
	}
	out := make([]string, len(registry.OIDCScopes))
	for i, s := range registry.OIDCScopes {
		out[i] = s.Name
	}
	return out
}

// Check returns every problem of c, each prefixed with the client id.
func (r Rules) Check(c *Client) []string {
	var out []string
	add := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("client %q: ", c.ID)+fmt.Sprintf(format, args...))
	}
	if c.ID == "" {
		add("client_id is required")
	}
	if !slices.Contains(AuthMethods, c.AuthMethod) {
		add("token_endpoint_auth_method %q is not one of %s", c.AuthMethod, strings.Join(AuthMethods, ", "))
	}
	switch c.AuthMethod {
	case AuthBasic, AuthPost:
		if !isBcrypt(c.SecretHash) && !IsHMACHash(c.SecretHash) {
			add("client_secret_hash must be a bcrypt hash ($2a$/$2b$/$2y$) or a %s hash; plaintext secrets are refused", HMACPrefix)
		}
	case AuthNone:
		if len(c.SecretHash) > 0 {
			add("a public client (none) must not have a secret")
		}
	case AuthPrivateKeyJWT:
		if len(c.SecretHash) > 0 {
			add("a private_key_jwt client must not have a secret")
		}
		switch {
		case c.JWKS != nil && c.JWKSURI != "":
			// RFC 7591 §2: "MUST NOT both be present"; fosite would use
			// the inline set and never fetch the other.
			add("private_key_jwt takes jwks or jwks_uri, not both (RFC 7591 section 2)")
		case (c.JWKS == nil || len(c.JWKS.Keys) == 0) && c.JWKSURI == "":
			add("private_key_jwt needs jwks or jwks_uri")
		case c.JWKS != nil:
			// The keys of a jwks_uri are known only when an assertion
			// comes (fetched then, each time the set's cache misses):
			// an unusable set is then invalid_client.
			if p := AssertionKeysProblem(c.JWKS); p != "" {
				add("%s", p)
			}
		}
		if c.JWKSURI != "" {
			if u, err := url.Parse(c.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
				add("jwks_uri %q must be an absolute https URL", c.JWKSURI)
			}
		}
	}
	if c.ResourceServer && c.AuthMethod == AuthNone {
		add("resource_server needs client authentication (introspection refuses public clients)")
	}
	if c.SkipConsent {
		for _, u := range c.RedirectURIs {
			if !c.ApprovalReusable(u) {
				add("skip_consent is refused for a public client (token_endpoint_auth_method none) with redirect URI %q: "+
					"a code sent there does not prove which app asked, since any local app can listen on it (RFC 8252 section 8.6), "+
					"so the user must approve on the consent page; remove skip_consent, or register only https redirect URIs on a host the app owns",
					RedactedURI(u))
			}
		}
	}
	if len(c.RedirectURIs) == 0 {
		add("at least one redirect URI is required")
	}
	for _, u := range c.RedirectURIs {
		if err := CheckRedirectURI(u, r.Production); err != nil {
			add("redirect URI %q: %v", RedactedURI(u), err)
		}
	}
	if len(c.Grants) == 0 || !slices.Contains(c.Grants, "authorization_code") {
		add("grant_types must include authorization_code")
	}
	for _, g := range c.Grants {
		if !slices.Contains(GrantTypes, g) {
			add("grant type %q is not supported (%s)", g, strings.Join(GrantTypes, ", "))
		}
	}
	if r.ScopesUnknown == nil || len(c.AllowedScope) == 0 || !r.ScopesUnknown() {
		supported := r.SupportedScopes()
		for _, s := range c.unsupportedScopes(supported) {
			add("scope %q is not supported (%s)", s, strings.Join(supported, ", "))
		}
	}
	if len(c.Resources) == 0 {
		add("at least one resource (audience) is required")
	}
	for _, res := range c.Resources {
		if !slices.Contains(r.Resources, res) {
			add("resource %q is not served by this install (%s)", res, strings.Join(r.Resources, ", "))
		}
	}
	return out
}

// CheckRedirectURI accepts absolute URIs without fragment: https, or http
// on a loopback host (RFC 8252). Outside production, http on any host is
// allowed for local development.
//
// A character RFC 3986 §2 does not allow anywhere in a URI (a space,
// a control character, " < > \ ^ ` { | }) is refused by name and position
// instead of being percent-encoded by url.URL.String: a trailing space
// copied with the URI registered one the client never sends. The scheme
// must be lowercase, RFC 3986 §3.1's canonical form: url.Parse lowercases
// it, so "HTTPS://app.example/cb" would register a URI the authorization
// request's exact comparison (RFC 9700 §4.1.3) only matches in its
// upper-case spelling.
func CheckRedirectURI(raw string, production bool) error {
	u, err := url.Parse(raw)
	var ue *url.Error
	if errors.As(err, &ue) {
		// Why it does not parse (a percent-encoded ASCII character or a
		// space in the host, a control character, a port of other than
		// digits); the URI itself is quoted by the caller.
		return fmt.Errorf("is not a URI (RFC 3986 section 3): %s", strings.TrimPrefix(ue.Err.Error(), "net/url: "))
	}
	if err := checkURIChars(raw); err != nil {
		return err
	}
	if i := strings.IndexByte(raw, ':'); i > 0 && raw[:i] != strings.ToLower(raw[:i]) && !strings.ContainsAny(raw[:i], "/?#") {
		return fmt.Errorf("scheme %q must be lowercase (RFC 3986 section 3.1): register %q", raw[:i], strings.ToLower(raw[:i])+raw[i:])
	}
	if err != nil || !u.IsAbs() {
		return errors.New("must be an absolute URL")
	}
	if s := strings.ToLower(u.Scheme); s != "https" && s != "http" {
		// A native app's private-use scheme (RFC 8252 §7.1) is an absolute
		// URI too: say what is accepted instead.
		return fmt.Errorf("scheme %q is not accepted: use https, or http on a loopback address with any port (RFC 8252 section 7.3)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("must be an absolute URL with a host")
	}
	if u.User != nil {
		// RFC 3986 §3.2.1 deprecates user information; in a redirect URI it
		// only serves to mislead: https://chatgpt.com@app.example/cb goes to
		// app.example.
		return fmt.Errorf("must not have user information before the host (RFC 3986 section 3.2.1): %q goes to %q", u.User.Username()+"@", u.Host)
	}
	if err := checkHost(u); err != nil {
		return err
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not have a fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if LoopbackRedirectHost(u.Hostname()) || !production {
			return nil
		}
		return errors.New("http is only allowed on loopback hosts")
	}
	return errors.New("scheme must be https (or http on loopback)")
}

// checkURIChars refuses the ASCII characters RFC 3986 §2 allows nowhere in
// a URI: controls, space and " < > \ ^ ` { | } (a literal % is checked by
// url.Parse; non-ASCII is left to the host's IDNA check).
func checkURIChars(raw string) error {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		var what string
		switch {
		case c == ' ':
			what = "a space"
		case c == '\t':
			what = "a tab"
		case c < 0x20 || c == 0x7f:
			what = fmt.Sprintf("the control character %U", rune(c))
		case strings.IndexByte("\"<>\\^`{|}", c) >= 0:
			what = fmt.Sprintf("%q", string(c))
		default:
			continue
		}
		where := fmt.Sprintf("at byte %d", i)
		switch {
		case strings.TrimRight(raw, " \t\r\n") != raw && i >= len(strings.TrimRight(raw, " \t\r\n")):
			where = "at its end"
		case i < len(raw)-len(strings.TrimLeft(raw, " \t\r\n")):
			where = "at its start"
		}
		return fmt.Errorf("contains %s %s, which RFC 3986 section 2 does not allow in a URI: remove it, or percent-encode it if it belongs to the path or query", what, where)
	}
	return nil
}

// checkHost refuses the authority of an http(s) redirect URI whose host is
// none of RFC 3986 §3.2.2's: an IP-literal (here an IPv6 address, without
// a zone, which browsers do not take), a dotted-decimal IPv4 address, or a
// DNS name (a registered name "intended for lookup in the DNS" has RFC
// 1123 §2.1's syntax, an internationalized one IDNA's: the platform's
// config.HostName decides). RFC 3986's generic reg-name also allows the
// sub-delimiters (; , ' ! $ & ( ) * + =), which no DNS name has: such a
// host reaches no server, and it has been a way to end a directive of a
// header the host is copied into (the consent page's CSP). A name whose
// last label is a number is an IPv4 address to a browser (WHATWG URL "ends
// in a number": 127.1 is 127.0.0.1), and no top-level domain is numeric
// (RFC 3696 §2), so it must be one in dotted-decimal form. A port is 1 to
// 65535 (RFC 793's 16 bits) when given.
func checkHost(u *url.URL) error {
	host := u.Hostname()
	if err := CheckPort(u); err != nil {
		return err
	}
	if strings.HasPrefix(u.Host, "[") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("host %q is not an IPv6 address without a zone (RFC 3986 section 3.2.2 IP-literal)", host)
		}
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		return nil
	}
	if _, err := config.HostName(host); err != nil {
		return fmt.Errorf("host %q is not a DNS name or IP address (RFC 3986 section 3.2.2, RFC 1123 section 2.1): %v", host, err)
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if last := labels[len(labels)-1]; endsInANumber(last) {
		return fmt.Errorf("host %q ends in a number but is not a dotted-decimal IPv4 address (RFC 3986 section 3.2.2)", host)
	}
	return nil
}

// endsInANumber reports whether label is what the WHATWG URL Standard
// parses as a number in an IPv4 host: decimal digits, or 0x and hex digits.
func endsInANumber(label string) bool {
	digits := label
	if len(label) >= 2 && (label[:2] == "0x" || label[:2] == "0X") {
		digits = label[2:]
		return strings.Trim(digits, "0123456789abcdefABCDEF") == ""
	}
	return digits != "" && strings.Trim(digits, "0123456789") == ""
}

// RedactedURI is raw with the password of its user information, if any,
// replaced by "xxxxx" (url.URL.Redacted), for a message that quotes a
// refused redirect URI: the rule refuses user information without
// repeating a password (RFC 3986 §3.2.1 calls one in a URI a security
// risk). raw is returned as is when it does not parse or has none.
func RedactedURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); !ok {
		return raw
	}
	return u.Redacted()
}

// ASCIIHost is u's host (with its port) as DNS and a browser resolve it:
// a DNS name in its IDNA ASCII form (UTS #46 lookup mapping, as
// config.HostName checks it: lowercase, xn-- labels), an IP address as it
// stands. Pages name a redirect host this way, as browsers name a
// mixed-script one: https://аpple.com/cb (a Cyrillic а) is
// xn--pple-43d.com, not a look-alike of apple.com; and a CSP source list
// takes only ASCII hosts (CSP3 §2.3.1 host-source), so an IDN origin is
// written so to be admitted. A host config.HostName refuses is returned
// unchanged.
//
// The port is written as the browser reads it: none when empty
// (https://app.example:/cb is https://app.example/cb, and a CSP
// host-source "app.example:" is no source at all), a number without
// leading zeros (:0443 is :443).
func ASCIIHost(u *url.URL) string {
	host := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		host = "[" + host + "]"
	} else if a, err := config.HostName(host); err == nil {
		host = a
	} else {
		return u.Host
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return u.Host
		}
		return host + ":" + strconv.Itoa(n)
	}
	return host
}

func isBcrypt(h []byte) bool {
	s := string(h)
	return len(s) == 60 && (strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$"))
}
