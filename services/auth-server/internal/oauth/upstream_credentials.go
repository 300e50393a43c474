package oauth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is defined as the SHA-1 thumbprint (RFC 7515 §4.1.7); an identifier, not a signature.
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client/rp"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
)

// clientAssertionTTL is how long a private_key_jwt assertion is valid: one
// is made per token request.
const clientAssertionTTL = 2 * time.Minute

// assertionSigner signs the auth-server's private_key_jwt client
// assertions (OpenID Connect Core §9, RFC 7523 §2.2) with
// UPSTREAM_CLIENT_KEY, through go-jose: the header carries typ JWT, the
// kid UPSTREAM_CLIENT_KEY_ID when set and, with UPSTREAM_CLIENT_CERT, the
// certificate's thumbprints x5t#S256 (RFC 7515 §4.1.8) and x5t (§4.1.7),
// which Microsoft Entra ID's certificate credentials require instead of a
// kid ("Microsoft identity platform application authentication certificate
// credentials", Assertion format: Header). With a certificate an RSA key
// signs PS256, the algorithm that page names; without one RS256 as before.
// An EC P-256 key signs ES256 either way.
type assertionSigner struct {
	signer   jose.Signer
	clientID string
	now      func() time.Time
}

func newAssertionSigner(cfg config.Upstream) (*assertionSigner, error) {
	key, alg, err := config.UpstreamKey(cfg.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("UPSTREAM_CLIENT_KEY_FILE: %w", err)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if cfg.ClientKeyID != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), cfg.ClientKeyID)
	}
	if cfg.ClientCert != "" {
		cert, err := config.UpstreamClientCert(cfg.ClientCert, key.Public())
		if err != nil {
			return nil, fmt.Errorf("UPSTREAM_CLIENT_CERT_FILE: %w", err)
		}
		s256 := sha256.Sum256(cert.Raw)
		s1 := sha1.Sum(cert.Raw) //nolint:gosec // see the import
		opts = opts.WithHeader(jose.HeaderKey("x5t#S256"), base64.RawURLEncoding.EncodeToString(s256[:])).
			WithHeader(jose.HeaderKey("x5t"), base64.RawURLEncoding.EncodeToString(s1[:]))
		if _, ok := key.(*rsa.PrivateKey); ok {
			alg = string(jose.PS256)
		}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("UPSTREAM_CLIENT_KEY_FILE: %w", err)
	}
	return &assertionSigner{signer: s, clientID: cfg.ClientID, now: time.Now}, nil
}

// assertion signs a client assertion for the token endpoint tokenURL
// (RFC 7523 §3): iss and sub the client id, aud the token endpoint URL
// (Core §9: SHOULD; Okta and Entra ID require it, "aud: the token
// endpoint" in Microsoft's claims table), a random jti, iat now and exp
// clientAssertionTTL ahead. No nbf: it is OPTIONAL for Entra ID and RFC
// 7523, and a provider whose clock lags ours would refuse one.
func (a *assertionSigner) assertion(tokenURL string) (string, error) {
	now := a.now()
	return a.sign(map[string]any{
		"iss": a.clientID, "sub": a.clientID, "aud": tokenURL, "jti": rand.Text(),
		"iat": now.Unix(), "exp": now.Add(clientAssertionTTL).Unix(),
	})
}

func (a *assertionSigner) sign(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := a.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// clientAuth returns the code exchange's client authentication, when it is
// not the client secret the relying party holds: a private_key_jwt
// assertion for the token endpoint.
func (u *Upstream) clientAuth(party rp.RelyingParty) ([]rp.CodeExchangeOpt, error) {
	if u.assertions == nil {
		return nil, nil
	}
	a, err := u.assertions.assertion(party.OAuthConfig().Endpoint.TokenURL)
	if err != nil {
		return nil, fmt.Errorf("client assertion: %w", err)
	}
	return []rp.CodeExchangeOpt{rp.WithClientAssertionJWT(a)}, nil
}
