package oauth

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/config"
)

// trustedRedirect reports whether an authorization error response for c
// may be sent to redirect automatically (RFC 9700 §4.11.2: "The
// authorization server SHOULD only automatically redirect the user agent
// if it trusts the redirection URI"; the MCP authorization spec
// repeats it, Security Considerations, Open Redirection). Trusted are:
//
//   - every redirect URI of a client the operator registered (the clients
//     file, dev-init): the operator vouched for it;
//   - a loopback redirect URI (localhost or a loopback IP literal; RFC 8252
//     §7.3, native apps, the MCP Inspector): it leads back to the user's
//     own device, where no one else's phishing page can be;
//   - a self-registered client's (dynamic registration, RFC 7591; a Client
//     ID Metadata Document) redirect URI whose origin is in
//     TRUSTED_REDIRECT_ORIGINS (default ChatGPT's, https://chatgpt.com).
//
// Any other — a self-registered client's, which anyone may make name any
// site — is not: its error responses are shown on a page of this server
// (errorInterstitial). A client that is not one of ours is never trusted.
func (s *Server) trustedRedirect(c fosite.Client, redirect *url.URL) bool {
	cc, ok := c.(*clients.Client)
	switch {
	case !ok || redirect == nil:
		return false
	case cc.Kind == clients.KindStatic:
		return true
	case clients.LoopbackRedirectHost(redirect.Hostname()):
		return true
	}
	return slices.Contains(s.cfg.TrustedRedirectOrigins, config.RedirectOrigin(redirect))
}

// interstitialText is what the page says went wrong, by error code (RFC
// 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6, RFC 8707 §2): a fixed
// sentence, never the error_description, which quotes values the request
// chose (a scope) and so would put the sender's words on this server's
// page. The description stays in the link, for the client.
var interstitialText = map[string]string{
	"invalid_request":            "The app's sign-in request was not valid.",
	"unauthorized_client":        "The app is not allowed to sign you in this way.",
	"access_denied":              "Access was not granted.",
	"unsupported_response_type":  "The app asked for a kind of sign-in this server does not offer.",
	"invalid_scope":              "The app asked for permissions this server does not grant it.",
	"invalid_target":             "The app asked for access to a service this server does not grant it.",
	"server_error":               "This server could not complete the sign-in.",
	"temporarily_unavailable":    "This server could not complete the sign-in now. Try again later.",
	"login_required":             "The app asked to sign you in without showing a page, and you are not signed in.",
	"consent_required":           "The app asked to sign you in without showing a page, and it needs your approval first.",
	"interaction_required":       "The app asked to sign you in without showing a page, and that was not possible.",
	"account_selection_required": "The app asked to sign you in without showing a page, and an account must be chosen first.",
}

// interstitialTemplate is the page an error response for an untrusted
// redirect URI is shown on: what went wrong (interstitialText), the host
// the link leads to, and the link (the error response URL, as it would
// have been redirected to). The client's self-chosen name is not shown:
// the host is what the user can check.
var interstitialTemplate = template.Must(template.New("interstitial").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in did not complete</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}code{background:#f2f2f2;padding:.1rem .3rem}
.warning{border-left:4px solid #b45309;background:#fef3c7;padding:.5rem .8rem}a.continue{display:inline-block;padding:.5rem 1.2rem;border:1px solid #1b1b1b;border-radius:.3rem;color:inherit;text-decoration:none}</style>
</head><body><h1>Sign-in did not complete</h1>
<p>{{.Text}}</p><p>Error code: <code>{{.Error}}</code></p>
<p class="warning">The app that sent you here registered itself with this server, which has not checked who runs <strong>{{.Host}}</strong>, the site it asked to send you back to. So you are not sent there automatically.</p>
<p>If you started from an app on <strong>{{.Host}}</strong>, continue to tell it what happened. Otherwise, close this page.</p>
<p><a class="continue" rel="noreferrer" href="{{.URL}}">Continue to {{.Host}}</a></p>
</body></html>`))

// errorInterstitial shows the error response u (to a redirect URI that is
// not trusted, trustedRedirect) on a page instead of redirecting to it:
// 200, since the page delivers the authorization response, as a form_post
// response mode's page does (OAuth 2.0 Form Post Response Mode §2), with
// the user's click in place of a script; the error is the response's, in
// the link and on the page (its code; the description only in the link:
// interstitialText). HTML whatever the Accept header: only a user
// agent follows an authorization response.
func (s *Server) errorInterstitial(w http.ResponseWriter, r *http.Request, c fosite.Client, u *url.URL, code string) {
	host := clients.ASCIIHost(u)
	clientID := ""
	if c != nil {
		clientID = c.GetID()
	}
	s.log.InfoContext(r.Context(), "authorization error shown, not redirected: the redirect URI is not trusted (TRUSTED_REDIRECT_ORIGINS)",
		"client_id", clientID, "redirect_host", host, "error", code)
	noStore(w)
	pageHeaders(w, "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	text, ok := interstitialText[code]
	if !ok {
		text = "The sign-in could not be completed."
	}
	_ = interstitialTemplate.Execute(w, map[string]string{
		"Error": code, "Text": text, "Host": host, "URL": u.String(),
	})
}
