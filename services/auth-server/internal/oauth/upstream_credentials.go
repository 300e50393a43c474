package oauth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is defined as the SHA-1 thumbprint (RFC 7515 §4.1.7); an identifier, not a signature.
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"golang.org/x/oauth2"

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

// Sign in with Apple's client secret (UPSTREAM_APPLE_TEAM_ID). Apple
// accepts one valid for up to six months ("Creating a client secret",
// Sign in with Apple REST API), which operators used to sign by hand and
// renew; a secret is a bearer credential until it expires, so the
// auth-server mints its own, valid appleSecretTTL, keeps it, and mints the
// next once less than appleSecretRenew is left: one signature per half
// hour at most, and every secret sent has at least half an hour to run
// (room for clock skew with Apple), none is ever older than an hour.
const (
	appleSecretTTL   = time.Hour
	appleSecretRenew = appleSecretTTL / 2
)

// appleSecret mints and caches the client secret: an ES256 JWT, header kid
// UPSTREAM_CLIENT_KEY_ID, claims iss the team id, sub the client id (the
// Services ID), aud the provider's issuer (https://appleid.apple.com for
// Apple: taken from discovery, not written in the code), iat and exp. It
// differs from a private_key_jwt assertion (RFC 7523) in every claim but
// sub and in its use: it is the client_secret of client_secret_post
// (RFC 6749 §2.3.1), reusable until it expires, not a one-time assertion.
type appleSecret struct {
	signer   *assertionSigner
	teamID   string
	clientID string

	mu    sync.Mutex
	value string
	aud   string
	exp   time.Time
}

func newAppleSecret(cfg config.Upstream) (*appleSecret, error) {
	s, err := newAssertionSigner(cfg)
	if err != nil {
		return nil, err
	}
	return &appleSecret{signer: s, teamID: cfg.AppleTeamID, clientID: cfg.ClientID}, nil
}

// secret returns the client secret for the issuer aud, minting a new one
// when the kept one has less than appleSecretRenew to run.
func (a *appleSecret) secret(aud string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.signer.now()
	if a.value != "" && a.aud == aud && now.Add(appleSecretRenew).Before(a.exp) {
		return a.value, nil
	}
	exp := now.Add(appleSecretTTL)
	v, err := a.signer.sign(map[string]any{
		"iss": a.teamID, "sub": a.clientID, "aud": aud, "iat": now.Unix(), "exp": exp.Unix(),
	})
	if err != nil {
		return "", err
	}
	a.value, a.aud, a.exp = v, aud, exp
	return v, nil
}

// clientAuth returns the code exchange's client authentication, when it is
// not the client secret the relying party holds: a private_key_jwt
// assertion for the token endpoint, or Sign in with Apple's client secret
// in the form.
func (u *Upstream) clientAuth(party rp.RelyingParty) ([]rp.CodeExchangeOpt, error) {
	switch {
	case u.apple != nil:
		s, err := u.apple.secret(party.Issuer())
		if err != nil {
			return nil, fmt.Errorf("Sign in with Apple client secret: %w", err)
		}
		return []rp.CodeExchangeOpt{func() []oauth2.AuthCodeOption {
			return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("client_secret", s)}
		}}, nil
	case u.assertions != nil:
		a, err := u.assertions.assertion(party.OAuthConfig().Endpoint.TokenURL)
		if err != nil {
			return nil, fmt.Errorf("client assertion: %w", err)
		}
		return []rp.CodeExchangeOpt{rp.WithClientAssertionJWT(a)}, nil
	}
	return nil, nil
}
