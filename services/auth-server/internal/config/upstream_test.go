package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"strings"
	"testing"
	"time"

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
		// A browser lower-cases the host, and localhost. and *.localhost
		// are secure contexts too (W3C Secure Contexts §3.1).
		{"http://LOCALHOST:4000", "form_post", ResponseModeFormPost, ""},
		{"http://localhost.:4000", "form_post", ResponseModeFormPost, ""},
		{"http://tollgate.localhost:4000", "form_post", ResponseModeFormPost, ""},
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

// TestUpstreamClientKey: UPSTREAM_CLIENT_KEY_FILE (private_key_jwt) takes
// an RSA key of at least 2048 bits or a P-256 key, in PKCS#8 or PKCS#1
// PEM, instead of a client secret, never beside one.
func TestUpstreamClientKey(t *testing.T) {
	pemOf := func(key any) string {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsa2048)}))
	for _, tc := range []struct {
		name    string
		env     map[string]string
		problem string
	}{
		{"RSA", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(rsa2048), "UPSTREAM_CLIENT_KEY_ID": "k1"}, ""},
		{"RSA PKCS#1", map[string]string{"UPSTREAM_CLIENT_KEY": pkcs1}, ""},
		{"P-256 in production without a secret", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(p256), "TOLLGATE_ENV": "production"}, ""},
		{"RSA 1024", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(rsa1024)}, "UPSTREAM_CLIENT_KEY_FILE: an RSA key of 1024 bits; at least 2048"},
		{"P-384", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(p384)}, "UPSTREAM_CLIENT_KEY_FILE: an EC key on P-384; ES256 needs P-256"},
		{"Ed25519", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(ed)}, "RSA (RS256) or EC P-256 (ES256) is required"},
		{"not PEM", map[string]string{"UPSTREAM_CLIENT_KEY": "secret"}, "UPSTREAM_CLIENT_KEY_FILE: not a PEM private key"},
		{"beside a secret", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(p256), "UPSTREAM_CLIENT_SECRET": "s"}, "UPSTREAM_CLIENT_KEY_FILE and UPSTREAM_CLIENT_SECRET: set one"},
		{"kid without a key", map[string]string{"UPSTREAM_CLIENT_KEY_ID": "k1", "UPSTREAM_CLIENT_SECRET": "s"}, "UPSTREAM_CLIENT_KEY_ID: only with UPSTREAM_CLIENT_KEY_FILE"},
	} {
		env := base()
		maps.Copy(env, tc.env)
		c, err := Load(pconfig.MapEnv(env))
		switch {
		case tc.problem == "" && err != nil && !strings.Contains(err.Error(), "UPSTREAM_CLIENT"):
			// production asks for other settings too; only ours matter here
		case tc.problem == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.problem == "" && c.Upstream.ClientKey == "":
			t.Errorf("%s: no key kept", tc.name)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.problem)
		}
	}
}

// TestUpstreamClientCert: UPSTREAM_CLIENT_CERT_FILE (Entra ID certificate
// credentials) is a PEM certificate of UPSTREAM_CLIENT_KEY_FILE's public
// key; a certificate of another key, something not a certificate, or a
// certificate without a key is refused at start-up.
func TestUpstreamClientCert(t *testing.T) {
	certOf := func(key crypto.Signer) string {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tollgate"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	pemOf := func(key any) string {
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name    string
		env     map[string]string
		problem string
	}{
		{"RSA", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(rsaKey), "UPSTREAM_CLIENT_CERT": certOf(rsaKey)}, ""},
		{"P-256 with a chain after it", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(p256), "UPSTREAM_CLIENT_CERT": certOf(p256) + certOf(other)}, ""},
		{"another key's certificate", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(rsaKey), "UPSTREAM_CLIENT_CERT": certOf(other)},
			`UPSTREAM_CLIENT_CERT_FILE: the certificate (subject "CN=tollgate") is not UPSTREAM_CLIENT_KEY_FILE's: its public key differs`},
		{"a key, not a certificate", map[string]string{"UPSTREAM_CLIENT_KEY": pemOf(rsaKey), "UPSTREAM_CLIENT_CERT": pemOf(rsaKey)},
			"UPSTREAM_CLIENT_CERT_FILE: not a PEM certificate"},
		{"a certificate without a key", map[string]string{"UPSTREAM_CLIENT_SECRET": "s", "UPSTREAM_CLIENT_CERT": certOf(rsaKey)},
			"UPSTREAM_CLIENT_CERT_FILE: only with UPSTREAM_CLIENT_KEY_FILE"},
	} {
		env := base()
		maps.Copy(env, tc.env)
		c, err := Load(pconfig.MapEnv(env))
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.problem == "" && c.Upstream.ClientCert == "":
			t.Errorf("%s: no certificate kept", tc.name)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.problem)
		}
	}
}

// TestUpstreamAppleTeamID: UPSTREAM_APPLE_TEAM_ID (Sign in with Apple's
// client secret, minted by the auth-server) needs the Sign in with Apple
// key — EC P-256 — and its key id, and takes no certificate; the team id
// is ten characters A-Z, 0-9.
func TestUpstreamAppleTeamID(t *testing.T) {
	pemOf := func(key any) string {
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	apple := func(kv ...string) map[string]string {
		env := map[string]string{"UPSTREAM_APPLE_TEAM_ID": "A1B2C3D4E5", "UPSTREAM_CLIENT_KEY": pemOf(p256), "UPSTREAM_CLIENT_KEY_ID": "KEY1234567"}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		problem string
	}{
		{"key and key id", apple(), ""},
		{"in production", apple("TOLLGATE_ENV", "production"), ""},
		{"a team id in lower case", apple("UPSTREAM_APPLE_TEAM_ID", "a1b2c3d4e5"), `UPSTREAM_APPLE_TEAM_ID: "a1b2c3d4e5" is not an Apple team id`},
		{"a team id too short", apple("UPSTREAM_APPLE_TEAM_ID", "A1B2C3"), "is not an Apple team id (ten characters A-Z, 0-9)"},
		{"no key", apple("UPSTREAM_CLIENT_KEY", "", "UPSTREAM_CLIENT_SECRET", "s"), "UPSTREAM_APPLE_TEAM_ID: needs UPSTREAM_CLIENT_KEY_FILE, the Sign in with Apple private key"},
		{"no key id", apple("UPSTREAM_CLIENT_KEY_ID", ""), "UPSTREAM_APPLE_TEAM_ID: needs UPSTREAM_CLIENT_KEY_ID"},
		{"an RSA key", apple("UPSTREAM_CLIENT_KEY", pemOf(rsaKey)), "UPSTREAM_CLIENT_KEY_FILE: Sign in with Apple's client secret is signed ES256; an EC P-256 key is required, not RS256's key"},
		{"a certificate", apple("UPSTREAM_CLIENT_CERT", "x"), "UPSTREAM_CLIENT_CERT_FILE: not with UPSTREAM_APPLE_TEAM_ID"},
		{"a secret too", apple("UPSTREAM_CLIENT_SECRET", "s"), "UPSTREAM_CLIENT_KEY_FILE and UPSTREAM_CLIENT_SECRET: set one"},
	} {
		env := base()
		maps.Copy(env, tc.env)
		c, err := Load(pconfig.MapEnv(env))
		switch {
		case tc.problem == "" && err != nil && !strings.Contains(err.Error(), "UPSTREAM_CLIENT") && !strings.Contains(err.Error(), "UPSTREAM_APPLE"):
			// production asks for other settings too; only ours matter here
		case tc.problem == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.problem == "" && c.Upstream.AppleTeamID != "A1B2C3D4E5":
			t.Errorf("%s: team id %q", tc.name, c.Upstream.AppleTeamID)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.problem)
		}
	}
}

// TestUpstreamPreviousIssuers: UPSTREAM_PREVIOUS_ISSUERS lists former
// issuers of the current provider's users, each checked as
// UPSTREAM_ISSUER_URL is (an absolute http(s) URL, https in production,
// without query or fragment) and kept as written; the current issuer
// (whatever its trailing slash), a repeated one and a multi-tenant Entra
// ID issuer are refused, each named.
func TestUpstreamPreviousIssuers(t *testing.T) {
	for _, tc := range []struct {
		name, issuer, previous, problem string
		prod                            bool
	}{
		{"two, kept as written", "https://idp.example", "https://old.example/,https://older.example/realms/x", "", false},
		{"http in development", "http://localhost:4500", "http://localhost:4501", "", false},
		{"http in production", "https://idp.example", "http://old.example", `UPSTREAM_PREVIOUS_ISSUERS: "http://old.example" must use https in production`, true},
		{"not a URL", "https://idp.example", "old.example", `UPSTREAM_PREVIOUS_ISSUERS: "old.example" is not an absolute http(s) URL`, true},
		{"a comma inside a URL", "https://idp.example", "https://old.example/realms/a,b", `UPSTREAM_PREVIOUS_ISSUERS: "b" is not a URL: the list is comma-separated, and no issuer URL in it may hold a comma`, true},
		{"a query", "https://idp.example", "https://old.example/?tenant=1", `UPSTREAM_PREVIOUS_ISSUERS: "https://old.example/?tenant=1" must not have a query or fragment`, true},
		{"the current issuer", "https://idp.example/", "https://idp.example", `UPSTREAM_PREVIOUS_ISSUERS: "https://idp.example" is UPSTREAM_ISSUER_URL`, true},
		{"twice", "https://idp.example", "https://old.example,https://old.example/", `UPSTREAM_PREVIOUS_ISSUERS: "https://old.example/" is listed twice`, true},
		{"Entra multi-tenant", "https://idp.example", "https://login.microsoftonline.com/common/v2.0", `UPSTREAM_PREVIOUS_ISSUERS: "https://login.microsoftonline.com/common/v2.0" is a multi-tenant Entra ID issuer`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := base()
			env["UPSTREAM_ISSUER_URL"], env["UPSTREAM_PREVIOUS_ISSUERS"] = tc.issuer, tc.previous
			if tc.prod {
				env["TOLLGATE_ENV"] = "production"
			}
			c, err := Load(pconfig.MapEnv(env))
			if tc.problem == "" {
				// Production wants more than this test sets; only this
				// setting's problems count.
				if err != nil && strings.Contains(err.Error(), PreviousIssuersSetting) {
					t.Fatal(err)
				}
				if want := strings.Split(tc.previous, ","); err == nil && strings.Join(c.Upstream.PreviousIssuers, ",") != strings.Join(want, ",") {
					t.Errorf("previous issuers %q, want %q", c.Upstream.PreviousIssuers, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%v, want %q", err, tc.problem)
			}
		})
	}
	// An allowed Entra tenant's issuer is not a previous issuer too.
	const tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
	for _, tc := range []struct{ name, allowed, previous, problem string }{
		{"an allowed tenant", tenant, "https://login.microsoftonline.com/" + tenant + "/v2.0", "is the issuer of tenant " + tenant + ", allowed by UPSTREAM_ALLOWED_TENANTS"},
		{"an allowed tenant, trailing slash", tenant, "https://login.microsoftonline.com/" + tenant + "/v2.0/", "is the issuer of tenant " + tenant},
		{"any tenant allowed", "*", "https://login.microsoftonline.com/" + tenant + "/v2.0", "is the issuer of tenant " + tenant},
		{"a tenant not allowed", "00000000-0000-0000-0000-000000000001", "https://login.microsoftonline.com/" + tenant + "/v2.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := base()
			env["UPSTREAM_ISSUER_URL"], env["UPSTREAM_ALLOWED_TENANTS"], env["UPSTREAM_PREVIOUS_ISSUERS"] = "https://login.microsoftonline.com/common/v2.0", tc.allowed, tc.previous
			_, err := Load(pconfig.MapEnv(env))
			if tc.problem == "" {
				if err != nil && strings.Contains(err.Error(), PreviousIssuersSetting) {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%v, want %q", err, tc.problem)
			}
		})
	}
	c, err := Load(pconfig.MapEnv(base()))
	if err != nil || c.Upstream.PreviousIssuers != nil {
		t.Errorf("default: %q %v, want none", c.Upstream.PreviousIssuers, err)
	}
}
