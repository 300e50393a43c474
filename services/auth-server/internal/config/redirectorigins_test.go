package config

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// TestTrustedRedirectOrigins: TRUSTED_REDIRECT_ORIGINS defaults to
// ChatGPT's origin; "none" trusts none; listed origins are kept in the
// form a redirect URI's origin is compared in (RedirectOrigin: lower case,
// IDN in xn-- form, no default port), once each.
func TestTrustedRedirectOrigins(t *testing.T) {
	for setting, want := range map[string][]string{
		"":     {"https://chatgpt.com"},
		"none": nil,
		"HTTPS://App.Example:443, https://app.example,https://bücher.example:8443,http://10.0.0.1:80": {
			"https://app.example", "https://xn--bcher-kva.example:8443", "http://10.0.0.1",
		},
	} {
		env := base()
		env["TRUSTED_REDIRECT_ORIGINS"] = setting
		c, err := Load(pconfig.MapEnv(env))
		if err != nil {
			t.Fatalf("%q: %v", setting, err)
		}
		if !slices.Equal(c.TrustedRedirectOrigins, want) {
			t.Errorf("%q: %q, want %q", setting, c.TrustedRedirectOrigins, want)
		}
	}
}

// TestTrustedRedirectOriginsRefusals: what is not an origin — a path, a
// wildcard, credentials, another scheme — is refused with the setting's
// name, as is "none" among origins, and plain http in production.
func TestTrustedRedirectOriginsRefusals(t *testing.T) {
	for setting, want := range map[string]string{
		"https://app.example/cb":       `TRUSTED_REDIRECT_ORIGINS: "https://app.example/cb" must be an origin only`,
		"https://*.example":            `TRUSTED_REDIRECT_ORIGINS: "https://*.example" is a wildcard`,
		"https://u@app.example":        `TRUSTED_REDIRECT_ORIGINS: "https://u@app.example" must be an origin only`,
		"app.example":                  `TRUSTED_REDIRECT_ORIGINS: "app.example" is not an http(s) origin`,
		"none,https://app.example":     `TRUSTED_REDIRECT_ORIGINS: none stands alone`,
		"ftp://app.example":            `TRUSTED_REDIRECT_ORIGINS: "ftp://app.example" is not an http(s) origin`,
		"https://chatgpt.com, none, x": `TRUSTED_REDIRECT_ORIGINS: none stands alone`,
	} {
		env := base()
		env["TRUSTED_REDIRECT_ORIGINS"] = setting
		_, err := Load(pconfig.MapEnv(env))
		var ce *pconfig.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v\nwant %q", setting, err, want)
		}
	}
	env := base()
	env["TOLLGATE_ENV"] = "production"
	env["TRUSTED_REDIRECT_ORIGINS"] = "http://app.example"
	if _, err := Load(pconfig.MapEnv(env)); err == nil || !strings.Contains(err.Error(), `TRUSTED_REDIRECT_ORIGINS: "http://app.example" must use https in production`) {
		t.Errorf("http in production: %v", err)
	}
}

// TestRedirectOrigin: a redirect URI's origin as it is compared.
func TestRedirectOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://chatgpt.com/connector_platform_oauth_redirect": "https://chatgpt.com",
		"https://ChatGPT.com:443/cb?x=1":                        "https://chatgpt.com",
		"https://chatgpt.com:8443/cb":                           "https://chatgpt.com:8443",
		"http://chatgpt.com/cb":                                 "http://chatgpt.com",
		"https://chatgpt.com.evil.example/cb":                   "https://chatgpt.com.evil.example",
		"https://bücher.example/cb":                             "https://xn--bcher-kva.example",
		"http://[::1]:80/cb":                                    "http://[::1]",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedirectOrigin(u); got != want {
			t.Errorf("RedirectOrigin(%s) = %s, want %s", in, got, want)
		}
	}
}
