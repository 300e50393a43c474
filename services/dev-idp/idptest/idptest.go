// Package idptest starts the dev IdP in-process for other services' tests:
// real HTTP on 127.0.0.1:0, the issuer taken from the bound port, users and
// the upstream client secret written to a temporary directory the way
// `auth-server dev-init` writes them.
package idptest

import (
	"crypto/rand"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idp"
)

// The default account, as `auth-server dev-init` writes it.
const (
	Username = "dev"
	Password = "tollgate-dev"
	Subject  = "dev-user-0001"
	Email    = "dev@example.com"
	ClientID = "tollgate"
)

const defaultUsers = `users:
  - username: dev
    password: tollgate-dev
    sub: dev-user-0001
    name: Dev User
    given_name: Dev
    family_name: User
    email: dev@example.com
    email_verified: true
`

// Options configure a test IdP. The zero value is the dev account and the
// tollgate client redirecting to PublicIssuerURL + /oauth/callback.
type Options struct {
	// PublicIssuerURL is the auth-server's public origin (required unless
	// Env sets DEVIDP_CLIENTS).
	PublicIssuerURL string
	// UsersYAML replaces the default users.yaml.
	UsersYAML string
	// Env adds or overrides variables (DEVIDP_CLIENTS, DEVIDP_CODE_TTL, ...).
	Env map[string]string
	// Listener, when set, is the IdP's HTTP listener (testharness.Listener):
	// for a test that names the IdP's port before it starts (an issuer URL
	// in Env). Otherwise the IdP binds a free port itself.
	Listener net.Listener
}

// IdP is a running dev IdP.
type IdP struct {
	// Issuer is http://127.0.0.1:<port>; discovery is at
	// Issuer + /.well-known/openid-configuration.
	Issuer string
	// Admin is the admin listener's base URL (/healthz/ready, /metrics).
	Admin string
	// ClientSecret is the tollgate client's secret.
	ClientSecret string
	// Dir holds users.yaml and upstream-client-secret.
	Dir string
}

// Start runs a dev IdP until the test ends.
func Start(t testing.TB, o Options) *IdP {
	t.Helper()
	dir := t.TempDir()
	secret := rand.Text()
	users := o.UsersYAML
	if users == "" {
		users = defaultUsers
	}
	for name, content := range map[string]string{"users.yaml": users, "upstream-client-secret": secret + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"TOLLGATE_ENV": "development", "HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
		"DEVIDP_DIR": dir, "PUBLIC_ISSUER_URL": o.PublicIssuerURL, "SHUTDOWN_TIMEOUT": testharness.ShutdownTimeout,
	}
	var lns []net.Listener
	if o.Listener != nil {
		env["HTTP_ADDR"] = o.Listener.Addr().String()
		lns = append(lns, o.Listener)
	}
	for k, v := range o.Env {
		env[k] = v
	}
	svc := testharness.RunService(t, idp.Run, env, lns...)
	// RunService prints the IdP's log when the test fails.
	return &IdP{Issuer: "http://" + svc.Addr("http"), Admin: "http://" + svc.Addr("admin"), ClientSecret: secret, Dir: dir}
}
