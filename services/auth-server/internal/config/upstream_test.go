package config

import (
	"strings"
	"testing"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// TestUpstreamIssuerKeptAsWritten: UPSTREAM_ISSUER_URL keeps a trailing
// slash (Auth0's issuer has one; iss is compared character for character,
// OpenID Connect Discovery 1.0 §4.3).
func TestUpstreamIssuerKeptAsWritten(t *testing.T) {
	env := base()
	env["UPSTREAM_ISSUER_URL"] = "https://acme.eu.auth0.com/"
	c, err := Load(pconfig.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream.Issuer != "https://acme.eu.auth0.com/" {
		t.Errorf("issuer %q, want it as written", c.Upstream.Issuer)
	}
}

// TestUpstreamAllowedTenants: an Entra ID multi-tenant issuer needs the
// tenants whose users may sign in (GUIDs, or * alone); any other issuer
// takes none.
func TestUpstreamAllowedTenants(t *testing.T) {
	const guid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	for _, tc := range []struct {
		issuer, tenants, problem string
	}{
		{"https://login.microsoftonline.com/common/v2.0", guid, ""},
		{"https://login.microsoftonline.com/organizations/v2.0", guid + ",9188040d-6c67-4c5b-b112-36a304b66dad", ""},
		{"https://login.microsoftonline.com/common/v2.0", "*", ""},
		{"https://login.microsoftonline.com/common/v2.0/", "", "UPSTREAM_ALLOWED_TENANTS: required"},
		{"https://login.microsoftonline.com/" + guid + "/v2.0", "", ""},
		{"https://login.microsoftonline.com/common/v2.0", "", "UPSTREAM_ALLOWED_TENANTS: required with the multi-tenant issuer"},
		{"https://login.microsoftonline.com/organizations/v2.0", "contoso.onmicrosoft.com", `UPSTREAM_ALLOWED_TENANTS: "contoso.onmicrosoft.com" is not a tenant id`},
		{"https://login.microsoftonline.com/common/v2.0", "72F988BF-86F1-41AF-91AB-2D7CD011DB47", "is not a tenant id"},
		{"https://login.microsoftonline.com/common/v2.0", "*," + guid, "* (any tenant) stands alone"},
		{"https://login.microsoftonline.com/" + guid + "/v2.0", guid, "UPSTREAM_ALLOWED_TENANTS: only for a multi-tenant Entra ID issuer"},
	} {
		env := base()
		env["UPSTREAM_ISSUER_URL"] = tc.issuer
		env["UPSTREAM_ALLOWED_TENANTS"] = tc.tenants
		_, err := Load(pconfig.MapEnv(env))
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s %q: %v", tc.issuer, tc.tenants, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s %q: %v, want %q", tc.issuer, tc.tenants, err, tc.problem)
		}
	}
	if tpl, ok := EntraMultiTenant("https://login.microsoftonline.com/organizations/v2.0"); !ok || tpl != "https://login.microsoftonline.com/{tenantid}/v2.0" {
		t.Errorf("template %q %v", tpl, ok)
	}
}

// TestUpstreamResponseMode: query (default) or form_post; form_post needs a
// PUBLIC_ISSUER_URL where the login cookie can be SameSite=None; Secure.
func TestUpstreamResponseMode(t *testing.T) {
	for _, tc := range []struct {
		issuer, mode, want, problem string
	}{
		{"http://localhost:4000", "", ResponseModeQuery, ""},
		{"http://localhost:4000", "query", ResponseModeQuery, ""},
		{"http://localhost:4000", "form_post", ResponseModeFormPost, ""},
		{"http://127.0.0.1:4000", "form_post", ResponseModeFormPost, ""},
		{"https://tollgate.example.com", "form_post", ResponseModeFormPost, ""},
		{"http://tollgate.example.com", "form_post", "", `UPSTREAM_RESPONSE_MODE: form_post needs an https PUBLIC_ISSUER_URL (or a loopback one), not "http://tollgate.example.com"`},
		{"http://localhost:4000", "fragment", "", `UPSTREAM_RESPONSE_MODE: "fragment" is neither query nor form_post`},
		{"http://localhost:4000", "FORM_POST", "", "is neither query nor form_post"},
	} {
		env := base()
		env["PUBLIC_ISSUER_URL"] = tc.issuer
		env["UPSTREAM_RESPONSE_MODE"] = tc.mode
		c, err := Load(pconfig.MapEnv(env))
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s %q: %v", tc.issuer, tc.mode, err)
		case tc.problem == "" && c.Upstream.ResponseMode != tc.want:
			t.Errorf("%s %q: mode %q, want %q", tc.issuer, tc.mode, c.Upstream.ResponseMode, tc.want)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s %q: %v, want %q", tc.issuer, tc.mode, err, tc.problem)
		}
	}
}
