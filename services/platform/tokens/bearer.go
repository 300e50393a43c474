package tokens

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/metadata"
)

// Errors of reading a bearer token from a request. The first two are client
// mistakes answered with 400 invalid_request; ErrNoToken is a 401 without an
// error code (RFC 6750 section 3.1), and so, in the fleet's services, are
// the other three: the request carries no token that could be verified.
// Each error's text is true of the request it describes, for a caller
// that repeats it.
var (
	ErrDuplicateAuthorization = errors.New("more than one Authorization header")
	ErrQueryToken             = errors.New("access_token in the query string is not accepted; use the Authorization header")
	ErrNoToken                = errors.New("no bearer token")
	// ErrNotBearer: a scheme other than Bearer ("Basic …"), or no scheme.
	ErrNotBearer = errors.New("authorization scheme is not Bearer")
	// ErrEmptyBearer: the Bearer scheme without a token ("Bearer",
	// "Bearer " — typically an unset variable in the client).
	ErrEmptyBearer = errors.New("the Bearer token is empty")
	// ErrMalformedBearer: a Bearer token with a space or a comma in it,
	// which RFC 6750 section 2.1's b64token cannot hold ("Bearer a b",
	// "Bearer a, Bearer b").
	ErrMalformedBearer = errors.New("the Authorization header is malformed (a Bearer token has no space or comma, RFC 6750 section 2.1)")
)

// FromRequest returns the bearer token of r. Exactly one Authorization
// header is allowed and a token in the query string is refused, never used.
// Its errors are the six above: ErrQueryToken, ErrNoToken (no
// Authorization header), ErrDuplicateAuthorization, ErrNotBearer (another
// scheme), ErrEmptyBearer and ErrMalformedBearer.
func FromRequest(r *http.Request) (string, error) {
	if r.URL.Query().Has("access_token") {
		return "", ErrQueryToken
	}
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", ErrDuplicateAuthorization
	}
	return parseBearer(values[0])
}

func parseBearer(v string) (string, error) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNotBearer
	}
	tok = strings.TrimSpace(tok)
	switch {
	case tok == "":
		return "", ErrEmptyBearer
	case strings.ContainsAny(tok, " ,"):
		return "", ErrMalformedBearer
	}
	return tok, nil
}

// metadataKey carries the caller's access token from a connector to
// capability-core, which verifies it again.
const metadataKey = "authorization"

// bearerPrefix starts the authorization metadata's value.
const bearerPrefix = "Bearer "

// WithToken returns ctx whose outgoing gRPC metadata carries raw.
func WithToken(ctx context.Context, raw string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, metadataKey, bearerPrefix+raw)
}

// WithBearer is WithToken(ctx, c.Raw) for verified claims, whose metadata
// value was built when the token was verified: a call forwards the
// ~900-byte token without building its string again.
func WithBearer(ctx context.Context, c *Claims) context.Context {
	v := c.bearer
	if v == "" { // claims not made by a Verifier
		v = bearerPrefix + c.Raw
	}
	return metadata.AppendToOutgoingContext(ctx, metadataKey, v)
}

// FromIncoming returns the bearer token of an incoming gRPC call.
// (metadata.FromIncomingContext would copy every key and value of the
// call's metadata to read this one.)
func FromIncoming(ctx context.Context) (string, error) {
	values := metadata.ValueFromIncomingContext(ctx, metadataKey)
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
		return parseBearer(values[0])
	default:
		return "", ErrDuplicateAuthorization
	}
}

type claimsKey struct{}

// NewContext returns ctx carrying verified claims.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the verified claims in ctx, if any.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// ChallengeText makes s safe as the error_description of a Bearer
// challenge (WWW-Authenticate): RFC 6750 §3 allows only printable ASCII
// other than '"' and '\' there (%x20-21 / %x23-5B / %x5D-7E), so every
// other character — quotes, backslashes, control characters such as a
// CR/LF that would end the header, any non-ASCII — becomes an apostrophe.
// The JSON body may carry s as is.
func ChallengeText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
}

// MaxReasonBytes is how many bytes of a refused token's reason a resource
// server repeats (RFC 6750 §3 error_description, in the challenge and the
// body): parts of the reason come from the token — an unknown kid of up to
// MaxKeyIDLength bytes, quoted — and a client's header or log line need
// not carry them whole.
const MaxReasonBytes = 120

// RefusalReason is the verifier's reason for refusing a token: err's
// message without ErrInvalidToken's prefix, cut to MaxReasonBytes on a
// UTF-8 character boundary and ended "..." when longer. The mcp-gateway and
// the Actions API both answer with it.
func RefusalReason(err error) string {
	reason := strings.TrimPrefix(err.Error(), ErrInvalidToken.Error()+": ")
	if len(reason) <= MaxReasonBytes {
		return reason
	}
	cut := MaxReasonBytes
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut] + "..."
}
