package tokens

import (
	"errors"
	"fmt"
)

// Reasons a token is refused: a fixed vocabulary, the Reason of every
// Refusal. None holds any text of the token, so a reason can be logged and
// counted as is (the words a client reads in error_description are
// RefusalReason's, which may quote a kid).
const (
	// ReasonMalformed: not a JWS compact token, an algorithm other than
	// RS256 or ES256, a typ other than at+jwt, no kid or one longer than
	// MaxKeyIDLength.
	ReasonMalformed = "malformed"
	// ReasonUnknownKey: the key set holds no key under the token's kid for
	// its algorithm (Recheck: no longer holds the key that signed it).
	ReasonUnknownKey = "unknown_key"
	// ReasonBadSignature: the key named by the kid did not sign the token.
	ReasonBadSignature = "bad_signature"
	// ReasonInvalidClaims: exp, iat, sub or client_id missing, a claim
	// that is not of its type (RFC 7519 §4.1: an exp that is no
	// NumericDate; the token's signature verified, so no key-set refetch
	// is made for it), or a registered claim go-jose refuses.
	ReasonInvalidClaims = "invalid_claims"
	// ReasonExpired: exp plus the leeway has passed.
	ReasonExpired = "expired"
	// ReasonNotYetValid: nbf or iat is later than now plus the leeway.
	ReasonNotYetValid = "not_yet_valid"
	// ReasonWrongIssuer: iss is not the key set's issuer.
	ReasonWrongIssuer = "wrong_issuer"
	// ReasonWrongAudience: aud names none of the verifier's audiences
	// (RFC 8707: a token for another resource).
	ReasonWrongAudience = "wrong_audience"
	// ReasonRevoked: the token's grant was revoked (VerifierOptions.Revocations).
	ReasonRevoked = "revoked"
	// ReasonClientRemoved: the token's client was removed from the
	// auth-server's clients file after the token was issued.
	ReasonClientRemoved = "client_removed"
	// ReasonInsufficientScope is not a verifier's: a resource server
	// refuses a verified token that lacks a scope the request needs
	// (Claims.MissingScopes; RFC 6750 §3.1 insufficient_scope) and logs it
	// with this reason.
	ReasonInsufficientScope = "insufficient_scope"
)

// Refusal is the error of a token that Verify or Recheck refuses. It
// wraps ErrInvalidToken (errors.Is), and its message is ErrInvalidToken's
// followed by the reason in words ("invalid token: token expired"), which
// RefusalReason gives clients; Reason is the same refusal as a code.
//
// When the token's signature verified with a published key and the token
// was refused after that, the refusal carries its claims (Verified): who
// the token was issued to, for logs. Verify still returns nil claims with
// every error, so no caller can take a refused token for an accepted one.
type Refusal struct {
	// Reason is one of the Reason* constants.
	Reason string
	words  string
	claims *Claims
}

// Error is "invalid token: " and the reason in words.
func (e *Refusal) Error() string { return ErrInvalidToken.Error() + ": " + e.words }

// Unwrap returns ErrInvalidToken.
func (e *Refusal) Unwrap() error { return ErrInvalidToken }

// Verified returns the claims of the refused token if its signature
// verified with a key of the key set in use (refused for ReasonExpired,
// ReasonNotYetValid, ReasonWrongIssuer, ReasonWrongAudience,
// ReasonInvalidClaims after the signature — but not a claim of the wrong
// type, when no claims could be read —, ReasonRevoked,
// ReasonClientRemoved, and Recheck's ReasonUnknownKey), else nil: an
// unverified token's claims are whatever its sender wrote, and must not
// be repeated anywhere. The claims say who the token was issued to
// (GrantID, ClientID) for a log line; they never admit a request, and
// Raw, the token itself, is never to be logged.
func (e *Refusal) Verified() *Claims { return e.claims }

// RefusalCode is err's Reason when err is or wraps a *Refusal, and ""
// otherwise: an error that refuses no token — ErrKeysUnavailable (the
// verifier could not check the token: an outage, answered 503), or an
// error of no verifier, such as FromRequest's. A caller writes no refusal
// line for "" (logging.RefusalLog.Log writes none).
func RefusalCode(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// RefusedClaims is the verified claims of err's Refusal (Refusal.Verified),
// or nil when err is no Refusal or the token's signature did not verify.
func RefusedClaims(err error) *Claims {
	var r *Refusal
	if errors.As(err, &r) {
		return r.claims
	}
	return nil
}

// refuse returns the Refusal of a token for reason, with the words of
// format and args, and c, the token's claims when its signature verified
// (else nil).
func refuse(reason string, c *Claims, format string, args ...any) error {
	return &Refusal{Reason: reason, words: fmt.Sprintf(format, args...), claims: c}
}
