package idp

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The login page: one form, posted to itself. The authorization request id
// and a random form token bound to it travel as hidden fields; a POST
// without the matching token, from another origin, or for a finished or
// expired request is refused, on a page with the message and no form (a
// form without the sign-in's id and token could only be refused again).
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — Tollgate dev IdP</title>
<style>
body{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem;color:#1b1b1f}
h1{font-size:1.25rem}label{display:block;margin:.75rem 0 .25rem}
input{width:100%;padding:.5rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1rem}
.error{color:#a4161a;border:1px solid #a4161a;padding:.5rem}.note{color:#555;font-size:.85rem}
</style>
</head>
<body>
<h1>Tollgate dev IdP</h1>
{{if .ID}}<p class="note">Development identity provider. Signing in to <strong>{{.ClientID}}</strong>.</p>{{end}}
{{if .Error}}<p class="error" role="alert" id="error">{{.Error}}</p>{{end}}
{{if .ID}}<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus value="{{.Username}}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>{{end}}
</body>
</html>
`))

type loginView struct {
	Action, ID, CSRF, ClientID, Username, Error string
}

// Messages of the login page, shown to the person signing in.
const (
	msgBadCredentials = "Wrong username or password."
	msgUnknownRequest = "This sign-in request is unknown, finished or expired. Start again from the application."
	msgBadForm        = "This sign-in form is not valid (missing or wrong form token, or posted from another site). Start again from the application."
)

type login struct {
	store    *storage
	users    *Users
	issuer   string
	callback func(id string) string
	log      *slog.Logger
	results  *prometheus.CounterVec
}

func (l *login) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" with the form's POST (Fetch, "append a request Origin
	// header"), which sameOrigin must refuse. same-origin sends the real
	// Origin (and Referer) to this origin only, so the login URL with its
	// authRequestID still leaks to no other site.
	h.Set("Referrer-Policy", "same-origin")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		l.show(w, r)
	case http.MethodPost:
		l.submit(w, r)
	default:
		h.Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (l *login) show(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	req, ok := l.store.pending(id)
	if !ok {
		l.render(w, http.StatusBadRequest, loginView{Error: msgUnknownRequest}, "")
		return
	}
	l.render(w, http.StatusOK, loginView{ID: id, CSRF: req.csrf, ClientID: req.req.ClientID}, req.req.RedirectURI)
}

func (l *login) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		l.refuse(w, http.StatusBadRequest, "bad_form", msgBadForm)
		return
	}
	if !l.sameOrigin(r) {
		l.refuse(w, http.StatusForbidden, "cross_origin", msgBadForm)
		return
	}
	id, csrf := r.PostForm.Get("authRequestID"), r.PostForm.Get("csrf")
	req, ok := l.store.pending(id)
	if !ok {
		l.refuse(w, http.StatusBadRequest, "unknown_request", msgUnknownRequest)
		return
	}
	if !l.store.checkCSRF(id, csrf) {
		l.refuse(w, http.StatusForbidden, "bad_csrf", msgBadForm)
		return
	}
	username := r.PostForm.Get("username")
	usr, ok := l.users.Authenticate(username, r.PostForm.Get("password"))
	if !ok {
		l.results.WithLabelValues("bad_credentials").Inc()
		l.log.Info("sign-in refused: wrong username or password", "username", username, "client_id", req.req.ClientID)
		l.render(w, http.StatusUnauthorized, loginView{ID: id, CSRF: req.csrf, ClientID: req.req.ClientID, Username: username, Error: msgBadCredentials}, req.req.RedirectURI)
		return
	}
	if err := l.store.completeLogin(id, csrf, usr.Subject); err != nil {
		if errors.Is(err, errBadCSRF) {
			l.refuse(w, http.StatusForbidden, "bad_csrf", msgBadForm)
		} else {
			l.refuse(w, http.StatusBadRequest, "unknown_request", msgUnknownRequest)
		}
		return
	}
	l.results.WithLabelValues("ok").Inc()
	l.log.Info("signed in", "sub", usr.Subject, "client_id", req.req.ClientID)
	http.Redirect(w, r, l.callback(id), http.StatusFound)
}

// sameOrigin refuses a POST whose Origin (or, lacking it, Referer) names
// another origin than the issuer, "null" included (a browser's opaque
// origin: a sandboxed frame, a data: URL). The page's Referrer-Policy,
// same-origin, makes a browser send its real Origin. Non-browser clients
// send neither header and are let through; the form token still binds
// their post to the page they fetched.
func (l *login) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if ref := r.Header.Get("Referer"); ref != "" {
			u, err := url.Parse(ref)
			if err != nil {
				return false
			}
			origin = u.Scheme + "://" + u.Host
		}
	}
	return origin == "" || strings.EqualFold(origin, l.issuer)
}

func (l *login) refuse(w http.ResponseWriter, status int, result, msg string) {
	l.results.WithLabelValues(result).Inc()
	l.render(w, status, loginView{Error: msg}, "")
}

// cspOrigin is an origin that can stand in a CSP source list as is; a
// host with RFC 3986 sub-delimiters (";", ",", "'") would end the
// directive or the policy.
var cspOrigin = regexp.MustCompile(`^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// pagePolicy is the login page's Content-Security-Policy. Its form-action
// is 'self' plus the origin of redirectURI, the relying party's redirect
// URI of this sign-in: CSP3 checks form-action on every redirect the
// form's answer follows (/login → /authorize/callback → redirectURI), so
// without it a browser blocks the last hop. An empty redirectURI (a page
// for no known sign-in) or one whose origin is not a plain
// scheme://host[:port] adds nothing.
func pagePolicy(redirectURI string) string {
	csp := "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	if u, err := url.Parse(redirectURI); err == nil && redirectURI != "" {
		if o := strings.ToLower(u.Scheme) + "://" + u.Host; cspOrigin.MatchString(o) {
			csp += " " + o
		}
	}
	return csp
}

// render writes the login page; redirectURI is the relying party's
// redirect URI of the sign-in it is for, or "" (see pagePolicy).
func (l *login) render(w http.ResponseWriter, status int, v loginView, redirectURI string) {
	v.Action = loginPath
	w.Header().Set("Content-Security-Policy", pagePolicy(redirectURI))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginPage.Execute(w, v); err != nil {
		l.log.Error("render login page", "err", err)
	}
}
