package oauth

import (
	"net/http"
	"net/url"
	"strings"
)

// onIssuerHost sends an authorization request asked on the Actions host
// (ACTIONS_OAUTH_BASE_URL's) to the same request on the issuer: 302 Found
// (RFC 9110 §15.4.3; a GET stays a GET, as OAuth's own redirects are 302,
// RFC 6749 §4.1.1), the path /oauth/authorize and the query unchanged,
// before anything is stored or a cookie set.
//
// The login cookie that binds the sign-in to the browser is host-only
// (__Host-, loginCookie), and the upstream IdP always sends the browser
// back to <issuer>/oauth/callback. A sign-in started on the Actions
// origin a GPT Action is told to use (ACTIONS_OAUTH_BASE_URL, which GPT
// Actions require on the API's domain) set its cookie there, the callback
// on the issuer's host had none, and every such sign-in ended in "this
// sign-in was not started in this browser". Started on the issuer, the
// cookie is where the callback reads it. The token endpoint needs no
// cookie and answers on every host.
//
// Only that one configured host is redirected, and only when it is not
// the issuer's: a request on any other host is served where it is. A
// proxy that rewrites Host to a name of its own and is not one of
// TRUSTED_PROXIES hands on every request — the issuer's own included —
// with a host that is neither; redirecting every host but the issuer's
// sent such requests to the issuer, through the proxy, and so back to the
// redirect again. The target is always the configured issuer, never built
// from the request. The request's host is its Host header, as the ingress
// passes it on (Kubernetes Ingress controllers, the Gateway API and make
// dev's local ingress keep it), or X-Forwarded-Host when the request
// comes from one of TRUSTED_PROXIES (a proxy that rewrites Host says
// there which host the browser asked). An over-long query is left to the
// guard (414, never echoed in a Location).
func (s *Server) onIssuerHost(next http.Handler) http.Handler {
	from, ok := redirectedHost(s.issuer, s.cfg.ActionsOAuthBaseURL)
	if !ok {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if canonicalHost(from.scheme, s.requestHost(r)) != from.host || len(r.URL.RawQuery) > maxAuthorizeQuery {
			next.ServeHTTP(w, r)
			return
		}
		s.toIssuerAuthorize(w, http.StatusFound, r.URL.RawQuery)
	})
}

// toIssuerAuthorize answers status (a redirect) to the issuer's GET
// /oauth/authorize with query, not to be stored: where onIssuerHost and
// authorizePost send an authorization request, always the configured
// issuer, never a host the request names.
func (s *Server) toIssuerAuthorize(w http.ResponseWriter, status int, query string) {
	to := strings.TrimSuffix(s.issuer, "/") + "/oauth/authorize"
	if query != "" {
		to += "?" + query
	}
	noStore(w)
	w.Header().Set("Location", to)
	w.WriteHeader(status)
}

// schemeHost is a URL's scheme and its canonicalHost.
type schemeHost struct{ scheme, host string }

// redirectedHost is the host whose authorization requests are sent to the
// issuer: the Actions OAuth base URL's, when it is set and another than
// the issuer's.
func redirectedHost(issuer, actionsBase string) (schemeHost, bool) {
	iu, err := url.Parse(issuer)
	if err != nil || iu.Host == "" || actionsBase == "" {
		return schemeHost{}, false
	}
	au, err := url.Parse(actionsBase)
	if err != nil || au.Host == "" {
		return schemeHost{}, false
	}
	from := schemeHost{scheme: au.Scheme, host: canonicalHost(au.Scheme, au.Host)}
	if from.host == canonicalHost(iu.Scheme, iu.Host) {
		return schemeHost{}, false
	}
	return from, true
}

// requestHost is the host (and port) the client asked for: X-Forwarded-Host's
// first entry when the peer is a trusted proxy and sent one, else Host.
func (s *Server) requestHost(r *http.Request) string {
	if fh := r.Header.Get("X-Forwarded-Host"); fh != "" && s.addrs.PeerTrusted(r) {
		first, _, _ := strings.Cut(fh, ",")
		return strings.TrimSpace(first)
	}
	return r.Host
}

// canonicalHost is host:port in lower case without the scheme's default
// port, so "Gateway.example.com:443" is "gateway.example.com" for https.
func canonicalHost(scheme, hostport string) string {
	h := strings.ToLower(strings.TrimSuffix(hostport, "."))
	switch {
	case scheme == "https" && strings.HasSuffix(h, ":443"):
		h = strings.TrimSuffix(h, ":443")
	case scheme == "http" && strings.HasSuffix(h, ":80"):
		h = strings.TrimSuffix(h, ":80")
	}
	return strings.TrimSuffix(h, ".")
}
