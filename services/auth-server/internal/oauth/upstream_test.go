package oauth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/dev-idp/idptest"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestUpstreamDiscoveryHoldsNoLock: while one discovery is in flight (here
// held at a gate in front of the real dev IdP), another request is not
// queued behind it — its context ending ends its wait at once — and the
// requests of that moment are served by the one discovery.
func TestUpstreamDiscoveryHoldsNoLock(t *testing.T) {
	idp := idptest.Start(t, idptest.Options{PublicIssuerURL: "http://127.0.0.1:1"})
	target, _ := url.Parse(idp.Issuer)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var discoveries atomic.Int32
	entered, release := make(chan struct{}, 1), make(chan struct{})
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			discoveries.Add(1)
			select {
			case entered <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer gate.Close()
	cfg := config.Upstream{Issuer: idp.Issuer, ClientID: idptest.ClientID, ClientSecret: idp.ClientSecret, Scopes: []string{"openid"},
		DialAddr: strings.TrimPrefix(gate.URL, "http://")}
	u := NewUpstream(cfg, "http://127.0.0.1:1/oauth/callback", nil, func(string, time.Time, error) {})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first, third := make(chan error, 1), make(chan error, 1)
	go func() { first <- u.Ready(ctx) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first discovery never reached the IdP")
	}
	// A request whose context ends stops waiting while the discovery is
	// still held at the gate: nothing holds a lock across the network call.
	gone, stop := context.WithCancel(ctx)
	stop()
	second := make(chan error, 1)
	go func() { second <- u.Ready(gone) }()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errUpstreamUnreachable) {
			t.Errorf("cancelled request: %v, want the context's end as upstream unreachable", err)
		}
	case err := <-first:
		t.Fatalf("a cancelled request stayed queued until the discovery in flight ended (%v)", err)
	}
	go func() { third <- u.Ready(ctx) }()
	close(release)
	for _, ch := range []chan error{first, third} {
		if err := <-ch; err != nil {
			t.Errorf("discovery: %v", err)
		}
	}
	if n := discoveries.Load(); n != 1 {
		t.Errorf("%d discoveries, want 1 shared by the concurrent requests", n)
	}
	// Once discovered, the relying party is reused.
	if _, err := u.AuthURL(ctx, "s", "n", "verifier-0123456789012345678901234567890123456789", Freshness{}); err != nil || discoveries.Load() != 1 {
		t.Errorf("AuthURL after discovery: %v, %d discoveries", err, discoveries.Load())
	}
}

// TestUpstreamDiscoveryRetriesAfterFailure: a failed discovery is answered
// again, without a request to the provider, for the hold
// (discoveryRetryAfter); the first request after it tries again, and one
// that succeeds is kept — the provider back, no restart.
func TestUpstreamDiscoveryRetriesAfterFailure(t *testing.T) {
	var calls atomic.Int32
	var down atomic.Bool
	down.Store(true)
	idp := idptest.Start(t, idptest.Options{PublicIssuerURL: "http://127.0.0.1:1"})
	target, _ := url.Parse(idp.Issuer)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			calls.Add(1)
		}
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	cfg := config.Upstream{Issuer: idp.Issuer, ClientID: idptest.ClientID, ClientSecret: idp.ClientSecret, Scopes: []string{"openid"},
		DialAddr: strings.TrimPrefix(front.URL, "http://")}
	u := NewUpstream(cfg, "http://127.0.0.1:1/cb", nil, func(string, time.Time, error) {})
	for i := range 3 {
		if err := u.Ready(context.Background()); !errors.Is(err, errUpstreamUnreachable) {
			t.Fatalf("attempt %d: %v, want errUpstreamUnreachable", i, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d discovery requests within the hold, want 1 (the failure answered again)", n)
	}
	// The provider back: the first request after the hold discovers.
	down.Store(false)
	deadline := time.Now().Add(15 * time.Second)
	for u.Ready(context.Background()) != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := u.Ready(context.Background()); err != nil {
		t.Fatalf("provider back, after the hold: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d discovery requests, want 2 (one failed, one kept)", n)
	}
}

// signInShape runs AuthURL → the provider's /authorize → Exchange against a
// provider of shape (idptest.StartShape) on a loopback TLS server, which the
// client dials for every host name: the issuer can be https://accounts.google.com.
func signInShape(t *testing.T, issuer string, shape idptest.Shape) (*Identity, error) {
	t.Helper()
	s := startShapeUpstream(t, issuer, shape)
	return s.signIn(t)
}

// shapeUpstream is an Upstream whose provider is a StartShape one.
type shapeUpstream struct {
	p      *idptest.Shaped
	u      *Upstream
	client *http.Client
}

const shapeRedirect = "https://tollgate.example/oauth/callback"

// startShapeUpstream starts a provider of shape (TLS is set) and the
// Upstream towards it (not yet discovered).
func startShapeUpstream(t *testing.T, issuer string, shape idptest.Shape) *shapeUpstream {
	t.Helper()
	shape.TLS = true
	p := idptest.StartShape(t, shape, shapeRedirect)
	if issuer == "" {
		issuer = p.Issuer
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = p.TLSConfig()
	dialer := &net.Dialer{}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, p.Server.Listener.Addr().String())
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := NewUpstream(config.Upstream{Issuer: issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret, Scopes: []string{"openid", "email", "profile"}},
		shapeRedirect, client, func(string, time.Time, error) {})
	return &shapeUpstream{p: p, u: u, client: client}
}

// signIn runs AuthURL → the provider's /authorize → Exchange.
func (s *shapeUpstream) signIn(t *testing.T) (*Identity, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	verifier, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	authURL, err := s.u.AuthURL(ctx, "state-1", nonce, verifier, Freshness{})
	if err != nil {
		t.Fatalf("AuthURL: %v", err)
	}
	resp, err := s.client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Query().Get("code") == "" || !strings.HasPrefix(back.String(), shapeRedirect) {
		t.Fatalf("authorize answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return s.u.Exchange(ctx, back.Query().Get("code"), verifier, nonce)
}

// TestUpstreamShapeGoogle: Google's ID tokens may carry iss
// accounts.google.com without the scheme (OpenID Connect Core 1.0
// §15.6.2); the exception holds for https://accounts.google.com alone.
func TestUpstreamShapeGoogle(t *testing.T) {
	google := func(iss string) idptest.Shape {
		return idptest.Shape{TLS: true, BaseURL: "https://accounts.google.com", TokenIssuer: iss, Subject: "110169484474386276334",
			IDClaims:       map[string]any{"hd": "example.com", "email": "ada@example.com", "email_verified": true, "azp": idptest.ClientID},
			UserinfoClaims: map[string]any{"email": "ada@example.com", "email_verified": true, "name": "Ada Lovelace", "hd": "example.com"}}
	}
	for _, iss := range []string{"accounts.google.com", "https://accounts.google.com"} {
		id, err := signInShape(t, "https://accounts.google.com", google(iss))
		if err != nil {
			t.Fatalf("iss %s: %v", iss, err)
		}
		if id.Subject != "110169484474386276334" || !id.Profile.EmailVerified || id.Profile.Email != "ada@example.com" || id.Profile.Name != "Ada Lovelace" {
			t.Errorf("iss %s: identity %+v", iss, id)
		}
	}
	t.Run("refused", func(t *testing.T) {
		for name, shape := range map[string]idptest.Shape{
			// Another provider's token without the scheme.
			"login.example.com without scheme": {TLS: true, BaseURL: "https://login.example.com", TokenIssuer: "login.example.com"},
			// Google's schemeless iss is not accepted from another issuer.
			"accounts.google.com from another issuer": {TLS: true, BaseURL: "https://login.example.com", TokenIssuer: "accounts.google.com"},
			"http://accounts.google.com":              {TLS: true, BaseURL: "https://accounts.google.com", TokenIssuer: "http://accounts.google.com"},
		} {
			_, err := signInShape(t, shape.BaseURL, shape)
			if !errors.Is(err, oidc.ErrIssuerInvalid) {
				t.Errorf("%s: %v, want the issuer refused", name, err)
			}
		}
	})
}

// TestAppleUserName: the name in Sign in with Apple's user field fills an
// empty name only; its email is never taken, and a field of another shape
// (or a name part too long or with control characters) is ignored.
func TestAppleUserName(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		in, want tokens.Profile
	}{
		{`{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"mallory@example.com"}`, tokens.Profile{Email: "ada@example.com"},
			tokens.Profile{Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Email: "ada@example.com"}},
		{`{"name":{"firstName":"Ada"}}`, tokens.Profile{}, tokens.Profile{Name: "Ada", GivenName: "Ada"}},
		{`{"name":{"firstName":"Ada","lastName":"Lovelace"}}`, tokens.Profile{Name: "Ada King"}, tokens.Profile{Name: "Ada King", GivenName: "Ada", FamilyName: "Lovelace"}},
		{`{"name":{"firstName":"Ada","lastName":"Lovelace"}}`, tokens.Profile{GivenName: "Augusta"}, tokens.Profile{Name: "Ada Lovelace", GivenName: "Augusta"}},
		{`{"email":"mallory@example.com"}`, tokens.Profile{}, tokens.Profile{}},
		{`{"name":"Ada"}`, tokens.Profile{}, tokens.Profile{}},
		{`not json`, tokens.Profile{}, tokens.Profile{}},
		{`{"name":{"firstName":"Ada\u0000"}}`, tokens.Profile{}, tokens.Profile{}},
		{`{"name":{"firstName":"` + strings.Repeat("a", maxAppleNamePart+1) + `"}}`, tokens.Profile{}, tokens.Profile{}},
		{``, tokens.Profile{Name: "x"}, tokens.Profile{Name: "x"}},
	} {
		if got := withAppleName(tc.in, tc.raw); got != tc.want {
			t.Errorf("%.60s on %+v: %+v, want %+v", tc.raw, tc.in, got, tc.want)
		}
	}
}
