package api_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/actions-api/internal/api"
	"github.com/tollgate/tollgate/services/actions-api/internal/config"
)

// TestPublicURLIsAnOrigin: ACTIONS_PUBLIC_URL (and the export's -base-url)
// is the origin the OpenAPI document's servers names, and a GPT calls
// servers + path. The actions-api serves its paths (/actions/…, /health,
// /privacy, the RFC 9728 metadata) at the root of its host, so a URL with
// a path — https://api.example.com/tollgate, or …/actions, which made
// /actions/actions/… — named operations nothing serves. It is refused at
// start-up, naming the setting; an origin with a trailing slash is taken
// and published without it (docs/reference/actions.md, "Public URL").
func TestPublicURLIsAnOrigin(t *testing.T) {
	base := map[string]string{
		"ACTIONS_AUDIENCE":  "https://api.example.com/actions",
		"PUBLIC_ISSUER_URL": "https://gateway.example.com", "AUTH_GRPC_ADDR": "a:1", "CORE_GRPC_ADDR": "c:1",
		"REDIS_URL": "redis://127.0.0.1:1/0",
	}
	for _, raw := range []string{
		"https://api.example.com/tollgate",
		"https://api.example.com/tollgate/",
		"https://api.example.com/actions",
		"https://api.example.com/%2F",
		"https://user:pw@api.example.com",
		"https://api.example.com?",
	} {
		_, err := config.Load(configEnv(base, map[string]string{"ACTIONS_PUBLIC_URL": raw}))
		want := `ACTIONS_PUBLIC_URL: "` + raw + `" must be an origin (scheme://host[:port]) without a path or credentials`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ACTIONS_PUBLIC_URL=%s: %v, want %q", raw, err, want)
		}
		if err := api.Export([]string{"-base-url", raw}, &syncBuffer{}, &syncBuffer{}); err == nil || !strings.Contains(err.Error(), `-base-url: "`+raw+`" must be an origin`) {
			t.Errorf("actions-api openapi -base-url %s: %v", raw, err)
		}
	}
	for raw, want := range map[string]string{
		"https://api.example.com/":     "https://api.example.com",
		"https://api.example.com:8443": "https://api.example.com:8443",
	} {
		cfg, err := config.Load(configEnv(base, map[string]string{"ACTIONS_PUBLIC_URL": raw}))
		if err != nil || cfg.PublicURL != want {
			t.Errorf("ACTIONS_PUBLIC_URL=%s: %q (%v), want %q", raw, cfg.PublicURL, err, want)
		}
	}
	// ACTIONS_OAUTH_BASE_URL is an origin too: the document names
	// <it>/oauth/authorize and <it>/oauth/token, routed at the root only.
	for _, raw := range []string{"https://api.example.com/tollgate", "https://api.example.com/oauth"} {
		_, err := config.Load(configEnv(base, map[string]string{"ACTIONS_PUBLIC_URL": "https://api.example.com", "ACTIONS_OAUTH_BASE_URL": raw}))
		if want := `ACTIONS_OAUTH_BASE_URL: "` + raw + `" must be an origin (scheme://host[:port]) without a path or credentials: the auth-server's`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ACTIONS_OAUTH_BASE_URL=%s: %v, want %q", raw, err, want)
		}
		// It names why for the OAuth URLs, not the Actions API's own
		// paths (review6).
		if err != nil && strings.Contains(err.Error(), "give it a host of its own") {
			t.Errorf("ACTIONS_OAUTH_BASE_URL=%s: %v, says the Actions API's reason", raw, err)
		}
		// The export refuses what the service refuses.
		var stdout syncBuffer
		err = api.Export([]string{"-base-url", "https://api.example.com", "-oauth-base-url", raw}, &stdout, &syncBuffer{})
		if want := `-oauth-base-url: "` + raw + `" must be an origin (scheme://host[:port]) without a path or credentials: the auth-server's`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("actions-api openapi -oauth-base-url %s: %v, want %q", raw, err, want)
		}
		if stdout.String() != "" {
			t.Errorf("actions-api openapi -oauth-base-url %s wrote a document: %.80s", raw, stdout.String())
		}
	}
	if cfg, err := config.Load(configEnv(base, map[string]string{"ACTIONS_PUBLIC_URL": "https://api.example.com", "ACTIONS_OAUTH_BASE_URL": "https://api.example.com/"})); err != nil || cfg.OAuthBaseURL != "https://api.example.com" {
		t.Errorf("ACTIONS_OAUTH_BASE_URL=https://api.example.com/: %q (%v)", cfg.OAuthBaseURL, err)
	}
	// Production still says https first, and the path as well.
	_, err := config.Load(configEnv(base, map[string]string{"TOLLGATE_ENV": "production", "REDIS_CHECK_DURABLE": "false", "ACTIONS_PUBLIC_URL": "http://api.example.com/x"}))
	if err == nil || !strings.Contains(err.Error(), "must use https in production") || !strings.Contains(err.Error(), "must be an origin") {
		t.Errorf("production ACTIONS_PUBLIC_URL=http://api.example.com/x: %v", err)
	}

	// The service refuses to start with one.
	env := map[string]string{
		"ACTIONS_PUBLIC_URL": "http://localhost:4000/tollgate", "ACTIONS_AUDIENCE": audience, "PUBLIC_ISSUER_URL": issuerURL,
		"AUTH_GRPC_ADDR": "127.0.0.1:1", "CORE_GRPC_ADDR": "127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1/0",
		"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
	}
	if err := api.Run(t.Context(), configEnv(env, nil), &syncBuffer{}, nil); err == nil || !strings.Contains(err.Error(), `ACTIONS_PUBLIC_URL: "http://localhost:4000/tollgate" must be an origin`) {
		t.Errorf("Run with a path in ACTIONS_PUBLIC_URL: %v", err)
	}

	// Served: servers is the origin given (its trailing slash dropped), and
	// every operation of the document is answered at servers + path —
	// kin-openapi routes each request of f.do by that servers URL.
	f := start(t, map[string]string{"ACTIONS_PUBLIC_URL": "http://$HTTP_ADDR/"})
	if got := f.doc.Servers; len(got) != 1 || got[0].URL != f.base {
		t.Fatalf("servers = %v, want [%s]", got, f.base)
	}
	if r := f.do(t, "GET", "/health", nil); r.status != 200 {
		t.Errorf("GET %s/health: %d %s", f.base, r.status, r.body)
	}
	if f.validated != 1 {
		t.Errorf("%d responses routed by the document's servers URL, want 1", f.validated)
	}
}

// TestExportReportsOnlyTheFlagsGiven: -oauth-base-url defaults to
// -base-url, and a bad or missing -base-url is one problem, named once.
// The default was checked again as if given, so `actions-api openapi`
// without flags said "-base-url: required" and "-oauth-base-url:
// required", and a -base-url with a path was refused twice, the second
// time under a flag the operator had not set and with the auth-server's
// reason (found following docs/reference/actions.md, "Exporting the
// document").
func TestExportReportsOnlyTheFlagsGiven(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-base-url: required"},
		{[]string{"-base-url", "https://api.example.com/tollgate"}, `-base-url: "https://api.example.com/tollgate" must be an origin`},
		{[]string{"-base-url", "ftp://api.example.com"}, `-base-url: "ftp://api.example.com" is not an absolute http(s) URL`},
	} {
		var stdout syncBuffer
		err := api.Export(tc.args, &stdout, &syncBuffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("actions-api openapi %q: %v, want %q", tc.args, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "-oauth-base-url") || strings.Contains(err.Error(), "problems") {
			t.Errorf("actions-api openapi %q names more than the flag given:\n%v", tc.args, err)
		}
		if stdout.String() != "" {
			t.Errorf("actions-api openapi %q wrote a document: %.80s", tc.args, stdout.String())
		}
	}
	// Both given and both wrong: both named.
	err := api.Export([]string{"-base-url", "https://api.example.com/x", "-oauth-base-url", "https://auth.example.com/y"}, &syncBuffer{}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), `-base-url: "https://api.example.com/x"`) || !strings.Contains(err.Error(), `-oauth-base-url: "https://auth.example.com/y"`) {
		t.Errorf("actions-api openapi with two bad origins: %v", err)
	}
	// The default is -base-url as normalized: no trailing slash in the OAuth URLs.
	var stdout syncBuffer
	if err := api.Export([]string{"-base-url", "https://api.example.com/"}, &stdout, &syncBuffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), `"authorizationUrl":"https://api.example.com/oauth/authorize"`) {
		t.Errorf("-oauth-base-url's default is not -base-url:\n%.600s", stdout.String())
	}
}
