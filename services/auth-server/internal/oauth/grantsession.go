package oauth

import (
	"time"

	gojson "github.com/goccy/go-json"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

var _ store.GrantSession = (*Session)(nil)

// grantSession is a Session as a grant record keeps it (store.GrantSession):
// the profile once, the ID token claims a later ID token is built from,
// and nothing each token issue recomputes. Its JSON as a whole (the
// session's own JSON, with every claim and zero times spelled out, was
// most of a grant's Redis memory) is a few short keys.
type grantSession struct {
	Subject  string         `json:"sub,omitempty"`
	Username string         `json:"usr,omitempty"`
	Profile  tokens.Profile `json:"p"`
	Claims   *grantClaims   `json:"c,omitempty"`
	// Kid is the ID token header's key id; HeaderExtra its other extra
	// header fields.
	Kid         string         `json:"kid,omitempty"`
	HeaderExtra map[string]any `json:"h,omitempty"`
	// UpstreamIssuer is Session.UpstreamIssuer.
	UpstreamIssuer string `json:"ui,omitempty"`
}

// grantClaims are the ID token claims of a grant's session that outlive
// one token. jti, exp, iat, at_hash and c_hash are per token (fosite's
// refresh handler recomputes them for each ID token) and not kept.
type grantClaims struct {
	Issuer string `json:"iss,omitempty"`
	// Subject when it differs from the session's.
	Subject     string   `json:"sub,omitempty"`
	Audience    []string `json:"aud,omitempty"`
	Nonce       string   `json:"nonce,omitempty"`
	RequestedAt int64    `json:"rat,omitempty"`
	AuthTime    int64    `json:"auth_time,omitempty"`
	ACR         string   `json:"acr,omitempty"`
	AMR         []string `json:"amr,omitempty"`
	// Extra are the extra claims, except those equal to the profile's
	// claim of the same name, which FromProfile lists instead (authorize.go
	// copies the scoped profile there: the profile is kept once).
	Extra       map[string]any `json:"ext,omitempty"`
	FromProfile []string       `json:"fp,omitempty"`
}

// profileClaim is the claim name of p as its JSON (and the ID token) has it.
func profileClaim(p tokens.Profile, name string) (any, bool) {
	switch name {
	case "name":
		return p.Name, p.Name != ""
	case "given_name":
		return p.GivenName, p.GivenName != ""
	case "family_name":
		return p.FamilyName, p.FamilyName != ""
	case "preferred_username":
		return p.PreferredUsername, p.PreferredUsername != ""
	case "email":
		return p.Email, p.Email != ""
	case "email_verified":
		return p.EmailVerified, p.EmailVerified
	}
	return nil, false
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// MarshalGrant implements store.GrantSession: the grant form's JSON as
// encoding/json writes it, written by github.com/goccy/go-json, whose
// encoder compiled per type writes the same bytes
// (TestUnmarshalGrantRoundTrip compares them on random sessions) with
// fewer instructions (docs/benchmarks/auth-server-history.md, session 42
// perf16).
func (s *Session) MarshalGrant() ([]byte, error) { return marshalGrant(s.grantForm()) }

func marshalGrant(g grantSession) ([]byte, error) { return gojson.Marshal(g) }

// grantForm is s as a grant record keeps it.
func (s *Session) grantForm() grantSession {
	g := grantSession{Subject: s.Subject, Username: s.Username, Profile: s.Profile, UpstreamIssuer: s.UpstreamIssuer}
	if c := s.Claims; c != nil {
		gc := &grantClaims{Issuer: c.Issuer, Audience: c.Audience, Nonce: c.Nonce,
			RequestedAt: unixOrZero(c.RequestedAt), AuthTime: unixOrZero(c.AuthTime),
			ACR: c.AuthenticationContextClassReference, AMR: c.AuthenticationMethodsReferences}
		if c.Subject != s.Subject {
			gc.Subject = c.Subject
		}
		for k, v := range c.Extra {
			if pv, ok := profileClaim(s.Profile, k); ok && pv == v {
				gc.FromProfile = append(gc.FromProfile, k)
				continue
			}
			if gc.Extra == nil {
				gc.Extra = map[string]any{}
			}
			gc.Extra[k] = v
		}
		if c.Extra != nil && gc.Extra == nil && gc.FromProfile == nil {
			gc.Extra = map[string]any{} // keep an empty map as one
		}
		g.Claims = gc
	}
	if h := s.Headers; h != nil {
		for k, v := range h.Extra {
			if kid, ok := v.(string); ok && k == "kid" {
				g.Kid = kid
				continue
			}
			if g.HeaderExtra == nil {
				g.HeaderExtra = map[string]any{}
			}
			g.HeaderExtra[k] = v
		}
	}
	return g
}

// UnmarshalGrant implements store.GrantSession: the session as it was
// stored, its per-token claims and expiries empty. It is decoded with
// github.com/goccy/go-json, which decodes the same JSON into the same Go
// values as encoding/json (TestUnmarshalGrantAsEncodingJSON) with a
// decoder compiled per type: UnmarshalGrant ~15 k instructions per
// refresh, where it took ~39 k with jsonv1 (encoding/json's rules on the
// json/v2 decoder), and more with encoding/json
// (docs/benchmarks/auth-server-history.md, session 41 perf14).
func (s *Session) UnmarshalGrant(b []byte) error {
	var g grantSession
	if err := gojson.Unmarshal(b, &g); err != nil {
		return err
	}
	s.fromGrant(g)
	return nil
}

// fromGrant sets s from its grant form.
func (s *Session) fromGrant(g grantSession) {
	s.Subject, s.Username, s.Profile, s.UpstreamIssuer = g.Subject, g.Username, g.Profile, g.UpstreamIssuer
	s.ExpiresAt = nil
	s.Claims = &fjwt.IDTokenClaims{}
	if gc := g.Claims; gc != nil {
		c := s.Claims
		c.Issuer, c.Subject, c.Audience, c.Nonce = gc.Issuer, gc.Subject, gc.Audience, gc.Nonce
		if c.Subject == "" {
			c.Subject = g.Subject
		}
		c.RequestedAt, c.AuthTime = timeOrZero(gc.RequestedAt), timeOrZero(gc.AuthTime)
		c.AuthenticationContextClassReference, c.AuthenticationMethodsReferences = gc.ACR, gc.AMR
		c.Extra = gc.Extra
		if len(gc.FromProfile) > 0 && c.Extra == nil {
			c.Extra = make(map[string]any, len(gc.FromProfile))
		}
		for _, k := range gc.FromProfile {
			if v, ok := profileClaim(g.Profile, k); ok {
				c.Extra[k] = v
			}
		}
	}
	s.Headers = fjwt.NewHeaders()
	if g.Kid != "" {
		s.Headers.Extra["kid"] = g.Kid
	}
	for k, v := range g.HeaderExtra {
		s.Headers.Extra[k] = v
	}
}
