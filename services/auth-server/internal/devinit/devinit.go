// Package devinit prepares the local state `make dev` needs, once: a signing
// key, the three development clients (secrets stored hashed in the registry
// file, in the clear only in clients.json for scripts), the upstream client
// secret shared with the dev IdP, and the dev IdP's user file. Existing
// files are kept, so credentials survive restarts.
package devinit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/platform/devfleet"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// DefaultUser is the documented dev IdP account.
const (
	DefaultUsername = "dev"
	DefaultPassword = "tollgate-dev"
)

// Main runs `auth-server dev-init -dir DIR -origin URL`.
func Main(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dev-init", flag.ContinueOnError)
	dir := fs.String("dir", "var/dev", "directory for dev state")
	origin := fs.String("origin", "http://localhost:4000", "public origin of the local fleet")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Init(*dir, *origin, out)
}

type client struct {
	ClientID         string   `json:"client_id"`
	ClientName       string   `json:"client_name"`
	ClientSecretHash string   `json:"client_secret_hash,omitempty"`
	RedirectURIs     []string `json:"redirect_uris"`
	GrantTypes       []string `json:"grant_types"`
	Scopes           []string `json:"scopes,omitempty"`
	Resources        []string `json:"resources"`
	AuthMethod       string   `json:"token_endpoint_auth_method"`
	RequirePKCE      bool     `json:"require_pkce"`
	SkipConsent      bool     `json:"skip_consent"`
}

// Init writes whatever of the dev state is missing under dir.
func Init(dir, origin string, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := tokens.EnsureDevKey(filepath.Join(dir, "keys")); err != nil {
		return fmt.Errorf("dev signing key: %w", err)
	}
	if _, err := ensureFile(filepath.Join(dir, "upstream-client-secret"), func() ([]byte, error) {
		return []byte(rand.Text()), nil
	}); err != nil {
		return err
	}
	if _, err := ensureFile(filepath.Join(dir, "users.yaml"), func() ([]byte, error) {
		return []byte(fmt.Sprintf(`# Users of the dev upstream IdP (development only).
users:
  - username: %s
    password: %s
    sub: dev-user-0001
    name: Dev User
    given_name: Dev
    family_name: User
    email: dev@example.com
    email_verified: true
`, DefaultUsername, DefaultPassword)), nil
	}); err != nil {
		return err
	}
	registry := filepath.Join(dir, "clients.yaml")
	creds := filepath.Join(dir, "clients.json")
	// Secrets already handed out (clients.json) are kept; the registry is
	// rewritten from the specs below whenever it would differ, so a new
	// origin (PUBLIC_URL) or a changed dev client takes effect on the next
	// start without invalidating credentials that scripts or a ChatGPT
	// configuration already hold.
	secrets := map[string]string{}
	var old devfleet.DevCredentials
	if b, err := os.ReadFile(creds); err == nil {
		if json.Unmarshal(b, &old) == nil {
			for _, c := range old.Clients {
				if len(c.ClientSecret) >= 52 {
					secrets[c.ClientID] = c.ClientSecret
				}
			}
		}
	}
	// The generated secrets are 256+ random bits: stored as keyed fast
	// hashes (clients.HMACPrefix) under the key the auth-server derives
	// from the same signing keys when CLIENT_SECRET_HMAC_KEY is unset.
	ring, err := tokens.LoadKeyDir(filepath.Join(dir, "keys"), "")
	if err != nil {
		return fmt.Errorf("dev signing key: %w", err)
	}
	key, _, err := clients.DevSecretKeys(ring)
	if err != nil {
		return err
	}
	hasher, err := clients.NewSecretHasher(clients.SecretHasherOptions{Key: key})
	if err != nil {
		return err
	}
	var reg struct {
		Clients []client `json:"clients"`
	}
	// clients.json is read by `make dev`'s banner, `tollgate-dev token` and
	// the e2e harness: write it with their type, so the contract has one
	// definition.
	var cj devfleet.DevCredentials
	cj.Origin = origin
	cj.User.Username, cj.User.Password = DefaultUsername, DefaultPassword
	added := addedRedirects(registry, old.Origin)
	var ids []string
	for _, s := range specs(origin) {
		secret, ok := secrets[s.Client.ClientID]
		if !ok {
			secret = rand.Text() + rand.Text()
		}
		hash, err := hasher.Hash(context.Background(), []byte(secret))
		if err != nil {
			return err
		}
		c := s.Client
		for _, u := range added[c.ClientID] {
			if !slices.Contains(c.RedirectURIs, u) {
				c.RedirectURIs = append(c.RedirectURIs, u)
			}
		}
		c.ClientSecretHash = string(hash)
		c.GrantTypes = []string{"authorization_code", "refresh_token"}
		// No scopes listed: a dev client may ask for every supported
		// scope, those of capabilities added later included.
		reg.Clients = append(reg.Clients, c)
		cj.Clients = append(cj.Clients, devfleet.DevClient{ClientID: c.ClientID, ClientSecret: secret, RedirectURIs: c.RedirectURIs,
			Audience: s.Audience, AuthMethod: c.AuthMethod, RequirePKCE: c.RequirePKCE})
		ids = append(ids, c.ClientID)
	}
	y, err := yaml.Marshal(reg)
	if err != nil {
		return err
	}
	header := "# Development client registry, generated by `auth-server dev-init` for " + origin + ".\n" +
		"# Rewritten at every start from the dev-init specs; secrets and redirect_uris you add are kept\n" +
		"# (e.g. a GPT's callback URL), other edits are lost.\n" +
		"# Secrets are stored as keyed HMAC-SHA256 hashes; the plaintext is only in clients.json.\n"
	j, err := json.MarshalIndent(cj, "", "  ")
	if err != nil {
		return err
	}
	changed := false
	for _, f := range []struct {
		path string
		b    []byte
	}{{registry, append([]byte(header), y...)}, {creds, append(j, '\n')}} {
		if old, err := os.ReadFile(f.path); err == nil && string(old) == string(f.b) {
			continue
		}
		if err := os.WriteFile(f.path, f.b, 0o600); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		fmt.Fprintf(out, "dev-init: wrote %s and %s for %s (%s)\n", registry, creds, origin, strings.Join(ids, ", "))
	}
	return nil
}

// addedRedirects are the redirect URIs of the existing registry that a
// developer added (a real GPT's callback, say): not in the specs of the
// origin it was written for, by client id.
func addedRedirects(registry, oldOrigin string) map[string][]string {
	b, err := os.ReadFile(registry)
	if err != nil {
		return nil
	}
	var reg struct {
		Clients []client `json:"clients"`
	}
	if yaml.Unmarshal(b, &reg) != nil {
		return nil
	}
	generated := map[string][]string{}
	if oldOrigin != "" {
		for _, s := range specs(oldOrigin) {
			generated[s.Client.ClientID] = s.Client.RedirectURIs
		}
	}
	added := map[string][]string{}
	for _, c := range reg.Clients {
		for _, u := range c.RedirectURIs {
			if !slices.Contains(generated[c.ClientID], u) {
				added[c.ClientID] = append(added[c.ClientID], u)
			}
		}
	}
	return added
}

// spec is one development client and the audience its tokens get by default.
type spec struct {
	Client   client
	Audience string
}

// specs are the development clients for a public origin:
//
//   - local-test: confidential (client_secret_basic), PKCE required, both
//     resources; loopback and origin test callbacks. `tollgate-dev token`
//     signs in with it.
//   - gpt-actions: confidential (client_secret_post), PKCE allowed but not
//     required — a GPT Action's OAuth sends no code_challenge, and a client
//     that holds a secret is protected against code interception by its
//     authentication (OAuth 2.1 §7.5.1 lets a confidential client use other
//     means; state is then required, see oauth.authorize). Requiring PKCE
//     made a GPT's sign-in fail with a generic error inside ChatGPT.
//   - gpt-apps-mcp: confidential (client_secret_post), PKCE required, the
//     MCP resource; ChatGPT's connector callback.
func specs(origin string) []spec {
	mcp, actions := origin+"/mcp", origin+"/actions"
	return []spec{
		{client{ClientID: "local-test", ClientName: "Local test client",
			RedirectURIs: []string{"http://127.0.0.1:8976/callback", origin + "/oauth/test-callback"},
			AuthMethod:   "client_secret_basic", Resources: []string{mcp, actions}, RequirePKCE: true, SkipConsent: true}, mcp},
		{client{ClientID: "gpt-actions", ClientName: "GPT Actions (development)",
			RedirectURIs: []string{"https://chat.openai.com/aip/g-dev/oauth/callback", "https://chatgpt.com/aip/g-dev/oauth/callback"},
			AuthMethod:   "client_secret_post", Resources: []string{actions}, RequirePKCE: false, SkipConsent: true}, actions},
		{client{ClientID: "gpt-apps-mcp", ClientName: "ChatGPT Apps (development)",
			RedirectURIs: []string{"https://chatgpt.com/connector_platform_oauth_redirect"},
			AuthMethod:   "client_secret_post", Resources: []string{mcp}, RequirePKCE: true, SkipConsent: true}, mcp},
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func ensureFile(path string, make func() ([]byte, error)) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	b, err := make()
	if err != nil {
		return false, err
	}
	return true, os.WriteFile(path, b, 0o600)
}
