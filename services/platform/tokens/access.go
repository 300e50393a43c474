package tokens

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

// accessPayload is an access token's claims — jwt.Claims and AccessClaims
// merged — with its members in the order in which SignWith writes them.
// SignWith (go-jose's jwt builder) turns each claims value into a map
// (go-jose's json.Marshal, then a decode with json.Number), merges the
// maps and marshals the result, whose keys the encoder sorts. Marshalling
// this struct once with the same encoder writes the same bytes without
// the round trip, which cost ~8 KiB of a grant's allocation (profile in
// docs/benchmarks/auth-server-history.md, session "authtail-2").
//
// The members are sorted by name and carry the tags of the fields they
// come from; TestSignAccessTokenAsSignWith fills every field of both
// types by reflection, so a claim added to AccessClaims or Profile and
// not here fails it.
type accessPayload struct {
	Audience          jwt.Audience     `json:"aud,omitempty"`
	AuthTime          int64            `json:"auth_time,omitempty"`
	ClientID          string           `json:"client_id"`
	Email             string           `json:"email,omitempty"`
	EmailVerified     bool             `json:"email_verified,omitempty"`
	Expiry            *jwt.NumericDate `json:"exp,omitempty"`
	FamilyName        string           `json:"family_name,omitempty"`
	GivenName         string           `json:"given_name,omitempty"`
	GrantID           string           `json:"grant_id,omitempty"`
	IssuedAt          *jwt.NumericDate `json:"iat,omitempty"`
	Issuer            string           `json:"iss,omitempty"`
	ID                string           `json:"jti,omitempty"`
	Name              string           `json:"name,omitempty"`
	NotBefore         *jwt.NumericDate `json:"nbf,omitempty"`
	PreferredUsername string           `json:"preferred_username,omitempty"`
	Scope             string           `json:"scope,omitempty"`
	Subject           string           `json:"sub,omitempty"`
}

// SignAccessToken signs an access token (JOSE typ at+jwt) with the active
// key of alg: the same token, byte for byte, as
// SignWith(alg, AccessTokenType, std, priv) — RS256 signatures are
// deterministic, so the same string; ES256 ones are not, so the same
// header and payload —, with the claims marshalled once instead of
// through maps (accessPayload).
func (r *KeyRing) SignAccessToken(alg jose.SignatureAlgorithm, std jwt.Claims, priv AccessClaims) (string, error) {
	signer, err := r.signer(alg, AccessTokenType)
	if err != nil {
		return "", err
	}
	// The round trip SignWith makes turns a byte that is not UTF-8 into
	// U+FFFD written out (the first marshal escapes it as \ufffd, the
	// decode makes it the character): validUTF8 does the same first.
	aud := std.Audience
	if slices.ContainsFunc(aud, func(a string) bool { return !utf8.ValidString(a) }) {
		aud = make(jwt.Audience, len(std.Audience))
		for i, a := range std.Audience {
			aud[i] = validUTF8(a)
		}
	}
	p := accessPayload{
		Audience: aud, AuthTime: priv.AuthTime, ClientID: validUTF8(priv.ClientID),
		Email: validUTF8(priv.Email), EmailVerified: priv.EmailVerified, Expiry: std.Expiry,
		FamilyName: validUTF8(priv.FamilyName), GivenName: validUTF8(priv.GivenName),
		GrantID: validUTF8(priv.GrantID), IssuedAt: std.IssuedAt, Issuer: validUTF8(std.Issuer),
		ID: validUTF8(std.ID), Name: validUTF8(priv.Name), NotBefore: std.NotBefore,
		PreferredUsername: validUTF8(priv.PreferredUsername), Scope: validUTF8(priv.Scope),
		Subject: validUTF8(std.Subject),
	}
	payload, err := josejson.Marshal(&p)
	if err != nil {
		return "", err
	}
	sig, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return sig.CompactSerialize()
}

// validUTF8 returns s with every byte that does not start a valid UTF-8
// sequence replaced by U+FFFD, one for each byte, as go-jose's encoder
// escapes them; s itself, without allocating, when it is valid.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
