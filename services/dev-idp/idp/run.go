// Package idp is Tollgate's development upstream OpenID Provider, built on
// zitadel/oidc's op package: discovery, JWKS, the authorization code flow
// with PKCE (S256), a username/password login form, RS256 ID tokens and
// userinfo, for users listed in a YAML file. It backs `make dev` and the
// tests of the auth-server's upstream bridge, and refuses to run in
// production.
//
// Other modules' tests start it in-process with Run on 127.0.0.1:0: leave
// DEVIDP_ISSUER_URL unset and the issuer becomes http://<bound address>,
// reported through onListen under the name "http".
package idp

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/tollgate/tollgate/services/platform/app"
)

// loginPath serves the sign-in form; clients' LoginURL points here.
const loginPath = "/login"

// Run starts the dev IdP and blocks until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return err
	}
	users, err := LoadUsers(cfg.UsersFile)
	if err != nil {
		return err
	}
	key, err := newSigningKey()
	if err != nil {
		return err
	}
	base, err := app.NewBase(ctx, cfg.Common, stderr)
	if err != nil {
		return err
	}
	srv, err := app.NewHTTP(ctx, "http", cfg.HTTPAddr, nil)
	if err != nil {
		base.Close()
		return err
	}
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = issuerFor(srv.Addr())
	}
	h, err := newHandler(cfg, issuer, users, key, base)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		base.Close()
		return err
	}
	srv.Server().Handler = h
	base.Ready.Add("identity", func(context.Context) error { return nil })
	base.Log.Info("dev IdP ready (development only)", "issuer", issuer, "users", users.Len(), "clients", len(cfg.clients()), "kid", key.id)
	return base.Serve(ctx, onListen, srv)
}

// issuerFor names a bound address as an http issuer.
func issuerFor(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

// newHandler builds the OpenID Provider and the login page on one mux.
func newHandler(cfg Config, issuer string, users *Users, key *signingKey, base *app.Base) (http.Handler, error) {
	store := &storage{
		clients: map[string]*client{}, users: users, key: key, now: timeNow,
		loginTTL: cfg.LoginTTL, codeTTL: cfg.CodeTTL, tokenTTL: cfg.TokenTTL,
		sessionAge: cfg.SessionAge, omitAuthTime: cfg.OmitAuthTime,
		requests: map[string]*authRequest{}, codes: map[string]string{}, tokens: map[string]*accessToken{},
	}
	for _, spec := range cfg.clients() {
		store.clients[spec.ClientID] = &client{spec: spec, loginURL: issuer + loginPath, idTTL: cfg.TokenTTL}
	}
	opCfg := &op.Config{
		CodeMethodS256:     true,
		AuthMethodPost:     true,
		SupportedUILocales: []language.Tag{language.English},
		SupportedScopes:    []string{"openid", "profile", "email"},
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "amr", "at_hash", "c_hash", "azp",
			"name", "given_name", "family_name", "preferred_username", "email", "email_verified"},
	}
	if _, err := rand.Read(opCfg.CryptoKey[:]); err != nil {
		return nil, err
	}
	opCfg.CryptoKeyId = key.id
	provider, err := op.NewProvider(opCfg, store, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, fmt.Errorf("openid provider: %w", err)
	}
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_devidp_logins_total",
		Help: "Sign-in form submissions of the dev IdP by result.",
	}, []string{"result"})
	if err := base.Metrics.Register(results); err != nil {
		return nil, err
	}
	callback := op.AuthCallbackURL(provider)
	lg := &login{store: store, users: users, issuer: issuer, log: base.Log, results: results,
		callback: func(id string) string { return callback(op.ContextWithIssuer(context.Background(), issuer), id) }}
	mux := http.NewServeMux()
	mux.Handle(loginPath, lg)
	mux.Handle("/", provider)
	return mux, nil
}
