package oauth

import (
	"bytes"
	"encoding/json"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
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

// MarshalGrant implements store.GrantSession.
func (s *Session) MarshalGrant() ([]byte, error) {
	g := grantSession{Subject: s.Subject, Username: s.Username, Profile: s.Profile}
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
	return json.Marshal(g)
}

// UnmarshalGrant implements store.GrantSession: the session as it was
// stored, its per-token claims and expiries empty. It is decoded with
// encoding/json's rules on the json/v2 decoder (jsonv1: 9 allocations
// instead of 31 for a typical session; TestUnmarshalGrantAsEncodingJSON).
//
// What MarshalGrant writes is read by a decoder of that form alone
// (scanGrant), ~8× fewer instructions than jsonv1's reflection; any other
// input — escapes, non-ASCII bytes, numbers in a claim map, nulls,
// duplicate or unknown names, whitespace — goes to jsonv1 as before.
func (s *Session) UnmarshalGrant(b []byte) error {
	var g grantSession // on the stack: jsonv1 decodes into another
	if !scanGrant(b, &g) {
		v := new(grantSession)
		if err := jsonv1.Unmarshal(b, v); err != nil {
			return err
		}
		g = *v
	}
	s.fromGrant(g)
	return nil
}

// scanGrant decodes b into g when b is a grant session in the compact
// form MarshalGrant writes, reporting whether it was: an object of the
// known lower-case names, each at most once, whose strings are printable
// ASCII without escapes, whose integers are unsigned decimals of at most
// 18 digits, and whose claim maps ("ext", "h") hold only such strings and
// booleans. For every input it accepts, g is what encoding/json's
// Unmarshal would make of it (TestScanGrantAsEncodingJSON); false leaves
// g partly set.
func scanGrant(b []byte, g *grantSession) bool {
	d := grantScan{b: b, ok: true}
	var seen uint8
	d.object(func(k []byte) {
		var bit uint8
		switch string(k) {
		case "sub":
			bit, g.Subject = 1, d.str()
		case "usr":
			bit, g.Username = 2, d.str()
		case "p":
			bit = 4
			d.profile(&g.Profile)
		case "c":
			bit, g.Claims = 8, d.claims()
		case "kid":
			bit, g.Kid = 16, d.str()
		case "h":
			bit, g.HeaderExtra = 32, d.claimMap()
		default:
			d.ok = false
		}
		if seen&bit != 0 {
			d.ok = false
		}
		seen |= bit
	})
	return d.ok && d.i == len(b)
}

// grantScan is scanGrant's position in its input; ok turns false at the
// first byte outside the form it reads, and every method then does
// nothing more.
type grantScan struct {
	b  []byte
	i  int
	ok bool
}

// next consumes c when it is the next byte.
func (d *grantScan) next(c byte) bool {
	if d.ok && d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *grantScan) expect(c byte) {
	if !d.next(c) {
		d.ok = false
	}
}

// raw reads a string's bytes, printable ASCII without escapes.
func (d *grantScan) raw() []byte {
	d.expect('"')
	start := d.i
	for d.ok {
		if d.i >= len(d.b) {
			d.ok = false
			break
		}
		c := d.b[d.i]
		if c == '"' {
			d.i++
			return d.b[start : d.i-1]
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			d.ok = false
		}
		d.i++
	}
	return nil
}

func (d *grantScan) str() string {
	if r := d.raw(); d.ok {
		return string(r)
	}
	return ""
}

// int reads an unsigned decimal of 1 to 18 digits, without leading zeros.
func (d *grantScan) int() int64 {
	var n int64
	start := d.i
	for d.ok && d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		n = n*10 + int64(d.b[d.i]-'0')
		d.i++
	}
	if l := d.i - start; l == 0 || l > 18 || l > 1 && d.b[start] == '0' {
		d.ok = false
	}
	return n
}

func (d *grantScan) bool() bool {
	switch {
	case d.ok && bytes.HasPrefix(d.b[d.i:], []byte("true")):
		d.i += 4
		return true
	case d.ok && bytes.HasPrefix(d.b[d.i:], []byte("false")):
		d.i += 5
	default:
		d.ok = false
	}
	return false
}

// object reads an object, calling member with each name after its colon
// to read the value.
func (d *grantScan) object(member func(name []byte)) {
	d.expect('{')
	if d.next('}') {
		return
	}
	for d.ok {
		k := d.raw()
		d.expect(':')
		if !d.ok {
			return
		}
		member(k)
		if d.next('}') {
			return
		}
		d.expect(',')
	}
}

// strs reads an array of strings; [] is an empty, non-nil slice, as
// encoding/json makes it.
func (d *grantScan) strs() []string {
	d.expect('[')
	l := []string{}
	if d.next(']') {
		return l
	}
	for d.ok {
		l = append(l, d.str())
		if d.next(']') {
			return l
		}
		d.expect(',')
	}
	return nil
}

// claimMap reads an object of strings and booleans.
func (d *grantScan) claimMap() map[string]any {
	m := map[string]any{}
	d.object(func(k []byte) {
		if _, dup := m[string(k)]; dup {
			d.ok = false
		}
		if d.ok && d.i < len(d.b) && d.b[d.i] == '"' {
			m[string(k)] = d.str()
		} else {
			m[string(k)] = d.bool()
		}
	})
	return m
}

func (d *grantScan) profile(p *tokens.Profile) {
	var seen uint8
	d.object(func(k []byte) {
		var bit uint8
		switch string(k) {
		case "name":
			bit, p.Name = 1, d.str()
		case "given_name":
			bit, p.GivenName = 2, d.str()
		case "family_name":
			bit, p.FamilyName = 4, d.str()
		case "preferred_username":
			bit, p.PreferredUsername = 8, d.str()
		case "email":
			bit, p.Email = 16, d.str()
		case "email_verified":
			bit, p.EmailVerified = 32, d.bool()
		default:
			d.ok = false
		}
		if seen&bit != 0 {
			d.ok = false
		}
		seen |= bit
	})
}

func (d *grantScan) claims() *grantClaims {
	c := &grantClaims{}
	var seen uint16
	d.object(func(k []byte) {
		var bit uint16
		switch string(k) {
		case "iss":
			bit, c.Issuer = 1, d.str()
		case "sub":
			bit, c.Subject = 2, d.str()
		case "aud":
			bit, c.Audience = 4, d.strs()
		case "nonce":
			bit, c.Nonce = 8, d.str()
		case "rat":
			bit, c.RequestedAt = 16, d.int()
		case "auth_time":
			bit, c.AuthTime = 32, d.int()
		case "acr":
			bit, c.ACR = 64, d.str()
		case "amr":
			bit, c.AMR = 128, d.strs()
		case "ext":
			bit, c.Extra = 256, d.claimMap()
		case "fp":
			bit, c.FromProfile = 512, d.strs()
		default:
			d.ok = false
		}
		if seen&bit != 0 {
			d.ok = false
		}
		seen |= bit
	})
	return c
}

// fromGrant sets s from its grant form.
func (s *Session) fromGrant(g grantSession) {
	s.Subject, s.Username, s.Profile = g.Subject, g.Username, g.Profile
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
