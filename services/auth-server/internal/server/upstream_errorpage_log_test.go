package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestUpstreamErrorPageIsNotLogged: a provider endpoint that answers the
// back channel with an error status and a body that is no OAuth error (a
// gateway's or framework's error page, which may echo the request: the
// code and client secret of a token request, the access token and the
// user's data of a userinfo call) fails the sign-in, and "upstream login
// failed" says which status without the body. golang.org/x/oauth2 appends
// it ("cannot fetch token: 502 …\nResponse: <body>") and zitadel/oidc too
// ("http status not ok: 502 … <body>"); logSafe cut only the decoding
// error's. A proxy on UPSTREAM_DIAL_ADDR stands in for the gateway.
func TestUpstreamErrorPageIsNotLogged(t *testing.T) {
	const echo = "echoed: client_secret=s3cr3t-from-the-request ada.private@example.com"
	// A 502 at the token or userinfo endpoint is an outage
	// (temporarily_unavailable, TestUpstreamRefusalShapes,
	// TestUpstreamOutageAfterTheCode); a 500 at userinfo fails the sign-in.
	for name, c := range map[string]struct {
		status int
		code   string
	}{
		"/token":        {http.StatusBadGateway, "temporarily_unavailable"},
		"/userinfo":     {http.StatusBadGateway, "temporarily_unavailable"},
		"/userinfo 500": {http.StatusInternalServerError, "server_error"},
	} {
		endpoint, _, _ := strings.Cut(name, " ")
		t.Run(name, func(t *testing.T) {
			f := newFleet(t, nil, "", true)
			p := idptest.StartShape(t, idptest.Shape{UserinfoClaims: fullProfile}, f.Base+"/oauth/callback")
			target, _ := url.Parse(p.Server.URL)
			rp := httputil.NewSingleHostReverseProxy(target)
			gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, endpoint) {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "text/plain")
					w.WriteHeader(c.status)
					_, _ = io.WriteString(w, echo)
					return
				}
				rp.ServeHTTP(w, r)
			}))
			t.Cleanup(gw.Close)
			f.env["UPSTREAM_ISSUER_URL"] = p.Issuer
			f.env["UPSTREAM_CLIENT_ID"] = p.ClientID
			f.env["UPSTREAM_CLIENT_SECRET"] = p.ClientSecret
			f.env["UPSTREAM_DIAL_ADDR"] = gw.Listener.Addr().String()
			f.start()
			f.refusedWith(t, c.code)
			logs := f.AS.Logs.String()
			if !strings.Contains(logs, "upstream login failed") || !strings.Contains(logs, strconv.Itoa(c.status)) || !strings.Contains(logs, "response body not logged") {
				t.Fatalf("want the failure logged with its status and without its body:\n%s", logs)
			}
			for _, leaked := range []string{"s3cr3t-from-the-request", "ada.private@example.com", "echoed"} {
				if strings.Contains(logs, leaked) {
					t.Errorf("the log holds %q from the provider's error page", leaked)
				}
			}
		})
	}
}
