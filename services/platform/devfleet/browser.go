package devfleet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// Browser plays the user's browser during account linking: it follows
// redirects with cookies, fills the upstream IdP's login form and approves
// consent pages, and stops at the client's redirect URI without requesting
// it (ChatGPT's callback is not reachable from tests).
type Browser struct {
	client   *http.Client
	Username string
	Password string
	// Deny makes the browser press the deny button of a consent page.
	Deny bool
	// Visited lists every URL requested, for assertions and failure reports.
	Visited []string
}

// NewBrowser returns a browser that signs in as username.
func NewBrowser(username, password string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{
		Username: username, Password: password,
		client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// UseTransport sends the browser's requests through rt (a test reaching a
// PUBLIC_URL host on the local ingress, say).
func (b *Browser) UseTransport(rt http.RoundTripper) { b.client.Transport = rt }

// Authorize opens authorizeURL and walks the flow until the browser is sent
// to redirectURI; it returns that final URL (with code or error, state, iss).
func (b *Browser) Authorize(ctx context.Context, authorizeURL, redirectURI string) (*url.URL, error) {
	next, method, form := authorizeURL, http.MethodGet, url.Values(nil)
	for step := 0; step < 20; step++ {
		if strings.HasPrefix(next, redirectURI) {
			return url.Parse(next)
		}
		b.Visited = append(b.Visited, method+" "+next)
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, next, body)
		if err != nil {
			return nil, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", originOf(req.URL))
		}
		resp, err := b.client.Do(req)
		if err != nil {
			return nil, err
		}
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				return nil, err
			}
			next, method, form = loc.String(), http.MethodGet, nil
		case resp.StatusCode == http.StatusOK && strings.Contains(resp.Header.Get("Content-Type"), "text/html"):
			action, values, err := b.fill(string(page))
			if err != nil {
				return nil, fmt.Errorf("page %s: %w", req.URL, err)
			}
			target, err := req.URL.Parse(action)
			if err != nil {
				return nil, err
			}
			next, method, form = target.String(), http.MethodPost, values
		default:
			return nil, fmt.Errorf("%s %s answered %d: %.500s", method, req.URL, resp.StatusCode, page)
		}
	}
	return nil, fmt.Errorf("too many steps: %v", b.Visited)
}

func originOf(u *url.URL) string { return u.Scheme + "://" + u.Host }

// fill finds the page's form and returns its action and the values a user
// would submit: credentials on a login form, approve (or deny) on consent.
func (b *Browser) fill(page string) (string, url.Values, error) {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return "", nil, err
	}
	var formNode *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if formNode == nil && n.Type == html.ElementNode && n.Data == "form" {
			formNode = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if formNode == nil {
		return "", nil, fmt.Errorf("no form on the page: %.300s", page)
	}
	values := url.Values{}
	var buttons []map[string]string
	var collect func(*html.Node)
	collect = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "input" || n.Data == "button") {
			a := attrs(n)
			switch {
			case n.Data == "button" || a["type"] == "submit":
				buttons = append(buttons, a)
			case a["name"] == "":
			case a["type"] == "password":
				values.Set(a["name"], b.Password)
			case a["name"] == "username" || a["name"] == "login" || a["type"] == "email":
				values.Set(a["name"], b.Username)
			default:
				values.Set(a["name"], a["value"])
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			collect(c)
		}
	}
	collect(formNode)
	want := "approve"
	if b.Deny {
		want = "deny"
	}
	for _, btn := range buttons {
		if btn["name"] != "" && (strings.Contains(strings.ToLower(btn["value"]), want) || strings.Contains(strings.ToLower(btn["name"]), want)) {
			values.Set(btn["name"], btn["value"])
			break
		}
	}
	return attrs(formNode)["action"], values, nil
}

func attrs(n *html.Node) map[string]string {
	m := map[string]string{}
	for _, a := range n.Attr {
		m[a.Key] = a.Val
	}
	return m
}
