package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// libraryStandIn is a provider's endpoints failing the ways the upstream
// bridge classifies, over real HTTP.
func libraryStandIn(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/503":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "<html>maintenance for ada@example.com: http status not ok: 401</html>")
		case "/401":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "no")
		case "/400-invalid-grant":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
		case "/undecodable":
			_, _ = io.WriteString(w, "<html>ada@example.com: http status not ok: 401</html>")
		case "/bool":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"sub":"a","email":"ada@example.com","email_verified":"yes"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// libraryGet is zitadel/oidc's HTTP helper (discovery, userinfo, the JWKS)
// reading url into v: the library's own error.
func libraryGet(t *testing.T, client *http.Client, url string, v any) error {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = httphelper.HttpRequest(client, req, v)
	if err == nil {
		t.Fatalf("GET %s: the library reported no error", url)
	}
	return err
}

// idTokenSignatureError is the error of the ID token verifier's signature
// check (oidc.CheckSignature, as rp.CodeExchange runs it) with the key set
// upstreamKeys fetches from jwksURL.
func idTokenSignatureError(t *testing.T, client *http.Client, jwksURL string) error {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"iss":"https://idp.example","sub":"a"}`)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jws.CompactSerialize()
	keys := (&Upstream{keyLifetime: time.Hour, keyRefetch: time.Minute}).newKeys(client, jwksURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = oidc.CheckSignature(ctx, token, payload, &oidc.IDTokenClaims{}, []string{"RS256"}, keys)
	if err == nil {
		t.Fatal("the signature check reported no error")
	}
	return err
}

// TestLibraryErrorTexts: the zitadel/oidc failures the upstream bridge
// classifies, produced by the library itself against a stand-in provider
// over real HTTP — never written by hand — so a library upgrade that
// changes them fails here instead of silently turning an outage into a
// refusal or the reverse. Where the library gives a type it is read by
// type: a JSON decoding error (encoding/json's, wrapped), a failed fetch
// of the ID token's JWKS (upstreamKeys' keysFetchError — before, the text
// "oidc: failed to get keys: "). Where it gives only text, the one
// function that reads it is pinned here: an answer that is no OAuth error
// (libraryHTTPStatus: "http status not ok: <status> <body>") and a
// *_verified claim of another type (libraryVerifiedClaim: "… into Bool").
// A JWKS the provider's host refuses connections to is the JWKS's outage,
// not the token endpoint's: before, any network error of the exchange was
// "token endpoint" (the JWKS fetch came after it answered: the code is
// spent, so the sign-in must not be kept for a retry).
func TestLibraryErrorTexts(t *testing.T) {
	srv := libraryStandIn(t)
	client := srv.Client()

	// An answer that is no OAuth error: its status, from the library's
	// own error only — not from the body's "http status not ok: 401".
	var v map[string]any
	outage := libraryGet(t, client, srv.URL+"/503", &v)
	if status, ok := libraryHTTPStatus(outage); !ok || status != http.StatusServiceUnavailable {
		t.Errorf("libraryHTTPStatus(%q) = %d %v, want 503 true", outage, status, ok)
	}
	userinfo := fmt.Errorf("userinfo: %w", outage)
	if libraryStatus(userinfo) != http.StatusServiceUnavailable || !providerOutage(userinfo) {
		t.Errorf("userinfo 503: status %d outage %v, want 503 true", libraryStatus(userinfo), providerOutage(userinfo))
	}
	if got, want := upstreamLogText(userinfo), "userinfo: http status not ok: 503 (response body not logged)"; got != want {
		t.Errorf("upstreamLogText = %q, want %q", got, want)
	}
	refused := libraryGet(t, client, srv.URL+"/401", &v)
	if code, status := upstreamRefusal(fmt.Errorf("%w: %w", errCodeExchange, refused)); code != "" || status != http.StatusUnauthorized || !refusedCredentials(code, status) {
		t.Errorf("401 without a body: refusal %q %d, want \"\" 401 (refused credentials)", code, status)
	}

	// A 200 the library cannot decode: encoding/json's error, typed; the
	// body's text is neither a status nor logged.
	undecodable := libraryGet(t, client, srv.URL+"/undecodable", &v)
	var syntax *json.SyntaxError
	if !errors.As(undecodable, &syntax) {
		t.Errorf("undecodable 200: %q holds no *json.SyntaxError", undecodable)
	}
	if _, ok := libraryHTTPStatus(undecodable); ok || libraryStatus(undecodable) != 0 || providerOutage(undecodable) {
		t.Errorf("undecodable 200 read as a status answer: %q", undecodable)
	}
	if got := upstreamLogText(undecodable); strings.Contains(got, "ada@example.com") || !strings.Contains(got, "invalid character") {
		t.Errorf("undecodable 200 logged as %q: want the decoding error without the body", got)
	}

	// A *_verified claim that is neither a boolean nor "true"/"false".
	var info oidc.UserInfo
	claim := libraryGet(t, client, srv.URL+"/bool", &info)
	if !errors.Is(libraryVerifiedClaim(claim), errVerifiedClaim) {
		t.Errorf("email_verified \"yes\": %q not recognized as the library's refusal of the claim", claim)
	}

	// The ID token's JWKS answering 503: the JWKS's outage, typed; its
	// status is not the token endpoint's.
	jwks503 := idTokenSignatureError(t, client, srv.URL+"/503")
	var ke *keysFetchError
	if !errors.As(jwks503, &ke) {
		t.Fatalf("JWKS 503: %q holds no *keysFetchError", jwks503)
	}
	if code, status := upstreamRefusal(fmt.Errorf("%w: %w", errCodeExchange, jwks503)); code != "" || status != 0 {
		t.Errorf("JWKS 503 read as the token endpoint's refusal: %q %d", code, status)
	}
	if e := exchangeError(jwks503); !errors.Is(e, errUpstreamUnreachable) || errors.Is(e, errExchangeUnanswered) || !strings.Contains(e.Error(), "jwks") {
		t.Errorf("JWKS 503: %q, want the JWKS's outage, not the token endpoint's", e)
	}
	jwks404 := idTokenSignatureError(t, client, srv.URL+"/missing")
	if e := exchangeError(jwks404); errors.Is(e, errUpstreamUnreachable) || !errors.Is(e, errCodeExchange) {
		t.Errorf("JWKS 404: %q, want a failed exchange, no outage", e)
	}
	// The JWKS refusing connections: a network error, the JWKS's.
	jwksDown := idTokenSignatureError(t, client, "http://"+testharness.ClosedAddr(t)+"/jwks")
	if e := exchangeError(jwksDown); !errors.Is(e, errUpstreamUnreachable) || errors.Is(e, errExchangeUnanswered) || !strings.Contains(e.Error(), "jwks") {
		t.Errorf("JWKS refusing connections: %q, want the JWKS's outage, not the token endpoint's", e)
	}
}

// TestTokenEndpointOutage: a code exchange the token endpoint did not
// answer — connections refused, or 502/503/504 without an OAuth error,
// golang.org/x/oauth2's errors over real HTTP — is errExchangeUnanswered,
// which keeps the sign-in for a retry (keepForRetry); an answer, an OAuth
// error or another status, is not.
func TestTokenEndpointOutage(t *testing.T) {
	srv := libraryStandIn(t)
	exchange := func(tokenURL string) error {
		conf := &oauth2.Config{ClientID: "c", ClientSecret: "s", Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}}
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client()), 10*time.Second)
		defer cancel()
		_, err := conf.Exchange(ctx, "code")
		if err == nil {
			t.Fatalf("exchange at %s: no error", tokenURL)
		}
		return exchangeError(err)
	}
	for name, tc := range map[string]struct {
		url        string
		unanswered bool
	}{
		"connection refused": {"http://" + testharness.ClosedAddr(t) + "/token", true},
		"503 page":           {srv.URL + "/503", true},
		"401":                {srv.URL + "/401", false},
		"400 invalid_grant":  {srv.URL + "/400-invalid-grant", false},
		"404":                {srv.URL + "/missing", false},
	} {
		err := exchange(tc.url)
		if errors.Is(err, errExchangeUnanswered) != tc.unanswered || errors.Is(err, errUpstreamUnreachable) != tc.unanswered {
			t.Errorf("%s: %q: unanswered %v, want %v", name, err, errors.Is(err, errExchangeUnanswered), tc.unanswered)
		}
		if strings.Contains(upstreamLogText(err), "ada@example.com") {
			t.Errorf("%s: the body is logged: %q", name, upstreamLogText(err))
		}
	}
}
