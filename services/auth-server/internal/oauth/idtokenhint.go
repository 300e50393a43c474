package oauth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"github.com/ory/fosite"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// publishedKeyDecoder verifies our ID tokens presented back to us —
// id_token_hint, which fosite's OpenID Connect handler decodes at the
// authorization endpoint (OpenID Connect Core §3.1.2.1) — with the
// published RSA key their kid names. fosite's signer verifies with the
// active key only, so from step 3 of a key rotation
// (docs/operations/key-rotation.md: the new key active, the old one still
// published) every ID token a client got before was refused as a hint,
// "decoding id token from id_token_hint parameter failed", after the user
// had signed in. A kid that names no published RSA key is refused as
// before, as is any algorithm but RS256 (ID tokens are RS256).
//
// Decode takes only an ID token of ours (idTokenOfOurs: typ JWT, iss
// issuer) wherever a hint is decoded: at the authorization endpoint
// (idTokenHintSubject), and where fosite decodes one again — its OpenID
// Connect request validator when the code is issued, its ID token
// strategy at the code exchange — for a request stored with its hint (a
// pending sign-in, consent or code stored before requests were parked
// without it).
type publishedKeyDecoder struct {
	fjwt.Signer
	ring   *tokens.KeyRing
	issuer string
}

// publishedRSAKey is the published RSA key kid names, nil when none does.
func publishedRSAKey(ring *tokens.KeyRing, kid string) *rsa.PublicKey {
	set := ring.PublicJWKS()
	for _, k := range set.Key(kid) {
		if pk, ok := k.Key.(*rsa.PublicKey); ok && k.Algorithm == "RS256" {
			return pk
		}
	}
	return nil
}

// Decode verifies token's signature (RS256, a published key) and that it
// is an ID token of ours (idTokenOfOurs). An expired token is returned
// with fosite's *fjwt.ValidationError saying so (an expired ID token is a
// valid hint); a token that is not an ID token of ours is returned with a
// plain error, never a ValidationError, so that no caller takes it for
// one that is only expired.
func (d publishedKeyDecoder) Decode(_ context.Context, token string) (*fjwt.Token, error) {
	tok, err := fjwt.Parse(token, func(t *fjwt.Token) (any, error) {
		if string(t.Method) != "RS256" {
			return nil, fmt.Errorf("ID token algorithm %q: only RS256 is accepted", t.Method)
		}
		kid, _ := t.Header["kid"].(string)
		k := publishedRSAKey(d.ring, kid)
		if k == nil {
			return nil, fmt.Errorf("ID token key %q is not published", kid)
		}
		return k, nil
	})
	var ve *fjwt.ValidationError
	if err != nil && !(errors.As(err, &ve) && ve.Errors&^(fjwt.ValidationErrorExpired|fjwt.ValidationErrorIssuedAt|fjwt.ValidationErrorNotValidYet) == 0) {
		return tok, err
	}
	if tok == nil {
		return nil, errors.New("not a JWT")
	}
	if why := idTokenOfOurs(tok, d.issuer); why != "" {
		return tok, errors.New(why)
	}
	return tok, err
}

// idTokenOfOurs says why tok, a JWT signed by a published key, is not an
// ID token this server issued ("" when it is one): its JOSE header typ
// must be "JWT" and its iss this server's issuer.
//
// The key ring signs access tokens too, with typ at+jwt (RFC 9068 §2.1,
// which has it so that one kind of token is not taken for another, RFC
// 8725 §3.11): such a token names a subject and carries our signature,
// but it is no ID token, so it is refused as a hint by its typ. Every ID
// token this server issues has typ "JWT" (fosite's signer sets it), so a
// token without typ is refused too: nothing this server issued as an ID
// token lacks it. A token of another issuer signed with a key we publish
// (the same keys mounted under another PUBLIC_ISSUER_URL) is refused by
// its iss, which OpenID Connect Core §3.1.3.7 has a relying party check
// the same way.
func idTokenOfOurs(tok *fjwt.Token, issuer string) string {
	if typ, _ := tok.Header["typ"].(string); !strings.EqualFold(typ, idTokenType) {
		// RFC 7515 §4.1.9: typ compares without regard to case.
		return fmt.Sprintf("JOSE header typ %q is not %q: not an ID token", typ, idTokenType)
	}
	if iss, _ := tok.Claims["iss"].(string); iss != issuer {
		return fmt.Sprintf("iss %q is not this server's issuer", iss)
	}
	return ""
}

func (d publishedKeyDecoder) Validate(ctx context.Context, token string) (string, error) {
	if _, err := d.Decode(ctx, token); err != nil {
		return "", err
	}
	return d.GetSignature(ctx, token)
}

// idTokenHintRefused is the authorization error for an id_token_hint that
// is no ID token of this server.
const idTokenHintRefused = "id_token_hint is not an ID token signed by this server with a published key (OpenID Connect Core section 3.1.2.1)"

// idTokenHintApplies reports whether ar's id_token_hint is checked: only
// in an OpenID Connect request, one whose scope (after the defaults, when
// the request named none) has openid. id_token_hint is a parameter of
// OpenID Connect Core §3.1.2.1, and without openid the request is plain
// OAuth 2.0, where it means nothing (RFC 6749 §3.1: unrecognized request
// parameters are ignored); fosite's OpenID Connect handler ignores it
// then too, so a hint refused here stopped a request that would have
// succeeded.
func idTokenHintApplies(ar fosite.AuthorizeRequester) bool {
	return ar.GetRequestedScopes().Has("openid")
}

// idTokenHintOtherUser is the authorization error (login_required) when
// the signed-in user is not the id_token_hint's subject.
const idTokenHintOtherUser = "the signed-in user is not the one id_token_hint names (OpenID Connect Core section 3.1.2.1)"

// idTokenHintSubject is the subject of hint when hint is an ID token this
// server issued: a JWT signed (RS256) by a published key, whose JOSE
// header typ is "JWT" and whose iss is this server's issuer
// (publishedKeyDecoder.Decode, idTokenOfOurs), with a subject; expired is
// fine (OpenID Connect Core §3.1.2.1 accepts an expired ID token as a
// hint, "an ID Token previously issued by the Authorization Server"). ok
// is false for anything else, and why is then said for the log (never to
// the client: the error description is fixed, idTokenHintRefused). The
// subject is what the authorization request keeps of the hint while the
// user signs in (pending.HintSubject), and is matched with the signed-in
// user's after the sign-in (callback).
func (s *Server) idTokenHintSubject(ctx context.Context, hint string) (sub string, ok bool, why string) {
	tok, err := publishedKeyDecoder{ring: s.ring, issuer: s.issuer}.Decode(ctx, hint)
	var ve *fjwt.ValidationError
	if err != nil && !(errors.As(err, &ve) && ve.Has(fjwt.ValidationErrorExpired) && ve.Errors&^(fjwt.ValidationErrorExpired|fjwt.ValidationErrorIssuedAt|fjwt.ValidationErrorNotValidYet) == 0) {
		return "", false, err.Error()
	}
	sub, _ = tok.Claims["sub"].(string)
	if sub == "" {
		return "", false, "no sub"
	}
	return sub, true, ""
}

// idTokenType is the JOSE header typ of every ID token this server issues
// (fosite's jwt.JWTHeaderTypeValue, RFC 7519 §5.1), and the only one an
// id_token_hint may have.
const idTokenType = fjwt.JWTHeaderTypeValue
