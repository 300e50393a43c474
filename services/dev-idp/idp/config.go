package idp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
)

// Config is everything the dev IdP reads at start-up.
type Config struct {
	config.Common
	// HTTPAddr is the OpenID Provider's listener (HTTP_ADDR).
	HTTPAddr string
	// Issuer is the provider's issuer URL (DEVIDP_ISSUER_URL). Empty means
	// "http://" + the bound HTTP address, so tests can listen on port 0.
	Issuer string
	// Dir holds users.yaml and upstream-client-secret (DEVIDP_DIR), as
	// written by `auth-server dev-init`.
	Dir string
	// UsersFile is the user list (DEVIDP_USERS_FILE, default Dir/users.yaml).
	UsersFile string
	// TollgateRedirect is the auth-server's callback, PUBLIC_ISSUER_URL +
	// /oauth/callback; empty when PUBLIC_ISSUER_URL is unset.
	TollgateRedirect string
	// TollgateClientID is the auth-server's client id (UPSTREAM_CLIENT_ID).
	TollgateClientID string
	// TollgateSecret is the auth-server's client secret (UPSTREAM_CLIENT_SECRET
	// or UPSTREAM_CLIENT_SECRET_FILE, default Dir/upstream-client-secret).
	TollgateSecret string
	// Extra are additional clients (DEVIDP_CLIENTS or DEVIDP_CLIENTS_FILE,
	// a JSON array of ClientSpec).
	Extra []ClientSpec
	// LoginTTL bounds an authorization request from /authorize to the code
	// (DEVIDP_LOGIN_TTL), CodeTTL a code (DEVIDP_CODE_TTL), TokenTTL access
	// and ID tokens (DEVIDP_TOKEN_TTL).
	LoginTTL, CodeTTL, TokenTTL time.Duration
	// SessionAge simulates a single sign-on session that began this long
	// before each sign-in (DEVIDP_SESSION_AGE, default 0: every sign-in is
	// fresh). The ID token's auth_time is then now - SessionAge, unless the
	// request forces a fresh authentication: prompt=login, or max_age below
	// SessionAge (OpenID Connect Core 1.0 §3.1.2.1), as a real IdP with a
	// session would.
	SessionAge time.Duration
	// OmitAuthTime leaves auth_time out of ID tokens (DEVIDP_OMIT_AUTH_TIME),
	// like IdPs that send it only when asked.
	OmitAuthTime bool
}

// ClientSpec is one registered client of the dev IdP.
type ClientSpec struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
	// AuthMethod is client_secret_basic (default; client_secret_post is
	// accepted as well) or none (public client, PKCE only).
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
}

// productionRefusal is the whole error when TOLLGATE_ENV=production.
const productionRefusal = "the dev IdP is for development and tests only and refuses to start with TOLLGATE_ENV=production; configure a real upstream OpenID Provider for the auth-server instead"

// LoadConfig reads the configuration and returns it with every problem found.
func LoadConfig(getenv func(string) string) (Config, error) {
	s := config.NewSource(getenv)
	c := Config{Common: config.LoadCommon(s, "dev-idp")}
	if c.Production() {
		// Nothing else matters: refuse before reading secrets or files.
		return c, fmt.Errorf("%s", productionRefusal)
	}
	c.HTTPAddr = s.String("HTTP_ADDR", ":8080")
	c.Issuer = s.String("DEVIDP_ISSUER_URL", "")
	c.Dir = s.String("DEVIDP_DIR", "var/dev")
	c.UsersFile = s.String("DEVIDP_USERS_FILE", filepath.Join(c.Dir, "users.yaml"))
	c.TollgateClientID = s.String("UPSTREAM_CLIENT_ID", "tollgate")
	public := s.String("PUBLIC_ISSUER_URL", "")
	c.LoginTTL = s.Duration("DEVIDP_LOGIN_TTL", 10*time.Minute)
	c.CodeTTL = s.Duration("DEVIDP_CODE_TTL", time.Minute)
	c.TokenTTL = s.Duration("DEVIDP_TOKEN_TTL", time.Hour)
	c.SessionAge = s.Duration("DEVIDP_SESSION_AGE", 0)
	c.OmitAuthTime = s.Bool("DEVIDP_OMIT_AUTH_TIME", false)
	var p config.Problems
	if public != "" {
		c.TollgateRedirect = config.PublicURL(&p, "PUBLIC_ISSUER_URL", public, false) + "/oauth/callback"
		before := len(p)
		c.TollgateSecret = secretOrFile(s, &p, "UPSTREAM_CLIENT_SECRET", filepath.Join(c.Dir, "upstream-client-secret"))
		if c.TollgateSecret == "" && len(p) == before {
			p.Addf("UPSTREAM_CLIENT_SECRET: the auth-server's client secret is empty")
		}
	}
	if raw := s.Secret("DEVIDP_CLIENTS"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &c.Extra); err != nil {
			p.Addf("DEVIDP_CLIENTS: not a JSON array of clients ({client_id, client_secret, redirect_uris, token_endpoint_auth_method}): %v", err)
		}
	}
	p = append(s.Problems(), p...)
	c.Validate(&p)
	return c, p.Err()
}

// secretOrFile reads key or key_FILE; when neither is set it reads the file
// def (the one dev-init writes).
func secretOrFile(s *config.Source, p *config.Problems, key, def string) string {
	if s.String(key, "") != "" || s.String(key+"_FILE", "") != "" {
		return s.Secret(key)
	}
	b, err := os.ReadFile(def)
	if err != nil {
		p.Addf("%s: not set and %s is unreadable (%v); run `auth-server dev-init` or set %s(_FILE)", key, def, errors.Unwrap(err), key)
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Validate adds every problem of c to p.
func (c *Config) Validate(p *config.Problems) {
	c.Common.Validate(p)
	if c.HTTPAddr == "" {
		p.Addf("HTTP_ADDR: must not be empty")
	}
	if c.Issuer != "" {
		c.Issuer = config.PublicURL(p, "DEVIDP_ISSUER_URL", c.Issuer, false)
		if u, err := url.Parse(c.Issuer); err == nil && strings.Trim(u.Path, "/") != "" {
			p.Addf("DEVIDP_ISSUER_URL: %q must not have a path (the provider serves from the root)", c.Issuer)
		}
	}
	if c.TollgateRedirect == "" && len(c.Extra) == 0 {
		p.Addf("no client: set PUBLIC_ISSUER_URL (registers the auth-server as client %q) or DEVIDP_CLIENTS", c.TollgateClientID)
	}
	seen := map[string]bool{}
	if c.TollgateRedirect != "" {
		seen[c.TollgateClientID] = true
	}
	for i := range c.Extra {
		e := &c.Extra[i]
		at := fmt.Sprintf("DEVIDP_CLIENTS[%d]", i)
		if e.ClientID == "" {
			p.Addf("%s: client_id is required", at)
		} else if seen[e.ClientID] {
			p.Addf("%s: client_id %q is registered twice", at, e.ClientID)
		}
		seen[e.ClientID] = true
		if e.AuthMethod == "" {
			e.AuthMethod = "client_secret_basic"
		}
		switch e.AuthMethod {
		case "client_secret_basic", "client_secret_post":
			if e.ClientSecret == "" {
				p.Addf("%s: client_secret is required for %s", at, e.AuthMethod)
			}
		case "none":
			if e.ClientSecret != "" {
				p.Addf("%s: a public client (none) has no client_secret", at)
			}
		default:
			p.Addf("%s: token_endpoint_auth_method %q is not client_secret_basic, client_secret_post or none", at, e.AuthMethod)
		}
		if len(e.RedirectURIs) == 0 {
			p.Addf("%s: at least one redirect URI is required", at)
		}
		for _, r := range e.RedirectURIs {
			if u, err := url.Parse(r); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Fragment != "" {
				p.Addf("%s: redirect URI %q is not an absolute http(s) URL without fragment", at, r)
			}
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"DEVIDP_LOGIN_TTL", c.LoginTTL}, {"DEVIDP_CODE_TTL", c.CodeTTL}, {"DEVIDP_TOKEN_TTL", c.TokenTTL}} {
		if d.v <= 0 {
			p.Addf("%s: must be positive", d.key)
		}
	}
}

// clients returns every registered client.
func (c *Config) clients() []ClientSpec {
	var out []ClientSpec
	if c.TollgateRedirect != "" {
		out = append(out, ClientSpec{ClientID: c.TollgateClientID, ClientSecret: c.TollgateSecret,
			RedirectURIs: []string{c.TollgateRedirect}, AuthMethod: "client_secret_basic"})
	}
	return append(out, c.Extra...)
}
