package devfleet

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultVarDir is tollgate-dev's -var default, make dev's state directory
// (relative to the repository root).
const DefaultVarDir = "var"

// DevClient is one entry of var/dev/clients.json.
type DevClient struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
	Audience     string   `json:"audience"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	// RequirePKCE: the authorization request must carry an S256
	// code_challenge (false only for gpt-actions, as GPTs send none).
	RequirePKCE bool `json:"require_pkce"`
}

// DevCredentials is var/dev/clients.json: what scripts need to drive the
// local fleet.
type DevCredentials struct {
	Origin  string      `json:"origin"`
	Clients []DevClient `json:"clients"`
	User    struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"user"`
}

// Banner prints the URLs and dev credentials of a running fleet. root is
// tollgate-dev's -root as given (make dev's "."); varDir is the fleet's
// state directory; varFlag is tollgate-dev's -var as given ("var", make
// dev's, unless a second fleet was started beside it): the token commands
// it prints sign in to this fleet, not to make dev's. With -root "." they
// are run from the repository root, where make dev runs; with another
// root they name it (absolute: make -C <root>, <root>/var/bin/tollgate-dev
// token -root <root>), so they work from any directory.
func Banner(w io.Writer, f *Fleet, root, varDir, varFlag string) {
	o := f.Origin
	// The commands' paths: relative to the repository root with -root .,
	// else through the root, made absolute.
	makeCmd, devCmd := "make", "var/bin/tollgate-dev token"
	if filepath.Clean(root) != "." {
		abs, err := filepath.Abs(root)
		if err != nil {
			abs = root
		}
		makeCmd = "make -C " + shellQuote(abs)
		devCmd = shellQuote(filepath.Join(abs, "var", "bin", "tollgate-dev")) + " token -root " + shellQuote(abs)
	}
	// make token reads var/ (make dev's fleet); another fleet's state
	// directory is named to tollgate-dev token.
	makeDevs := filepath.Clean(varFlag) == DefaultVarDir // "./var", "var/" too
	tokenCmd, scopeArg := makeCmd+" token", func(scope string) string { return "SCOPE=" + strconv.Quote(scope) }
	if !makeDevs {
		tokenCmd = devCmd + " -var " + shellQuote(varFlag)
		scopeArg = func(scope string) string { return "--scope " + strconv.Quote(scope) }
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("")
	line("Tollgate is running at %s", o)
	if f.Local != o {
		line("  (PUBLIC_URL; the local ingress is %s — point the tunnel there)", f.Local)
	}
	line("  MCP (ChatGPT Apps):      %s/mcp   (legacy SSE: %s/sse)", o, o)
	line("  Actions schema:          %s/actions/openapi.json", o)
	line("  Health:                  %s/health", o)
	line("  OAuth authorize / token: %s/oauth/authorize  %s/oauth/token", o, o)
	line("  Discovery:               %s/.well-known/openid-configuration", o)
	var creds DevCredentials
	path := filepath.Join(varDir, "dev", "clients.json")
	if raw, err := os.ReadFile(path); err == nil && json.Unmarshal(raw, &creds) == nil {
		line("  Dev clients (also in %s):", path)
		for _, c := range creds.Clients {
			secret := c.ClientSecret
			if secret == "" {
				secret = "(public client)"
			}
			line("    %-14s secret %s  default audience %s", c.ClientID, secret, c.Audience)
		}
		if creds.User.Username != "" {
			line("  Dev IdP user:            %s / %s", creds.User.Username, creds.User.Password)
		}
	}
	line("  Settings (environment of make dev):")
	public := "unset (" + f.Local + ")"
	if f.Local != o {
		public = o
	}
	line("    PUBLIC_URL=%s  — issuer, resource URLs and allowed hosts/origins follow it", public)
	line("    DEV_ALLOWED_ORIGINS=%s  — browser origins besides the public one", strings.Join(f.o.AllowedOrigins, ","))
	line("    DCR_ENABLED=%s (POST %s/oauth/register)  CIMD_ENABLED=%s (Client ID Metadata Documents)", f.o.DCR(), o, f.o.CIMD())
	if v := f.o.CapabilityBackends(); v != "" {
		line("    CAPABILITY_BACKENDS=%s  — gRPC backends whose capabilities are exposed", v)
	} else {
		line("    CAPABILITY_BACKENDS unset (capability-core=%s)  — gRPC backends whose capabilities are exposed", addr(f.o.Ports.CoreGRPC))
	}
	if f.o.ExampleBackend {
		line("    EXAMPLE_BACKEND=1  — example-backend at %s: tools notes.list, notes.add, notes.delete; /actions/notes; scopes notes.read notes.write", addr(f.o.Ports.ExampleGRPC))
		line("      try: %s %s", tokenCmd, scopeArg("openid notes.read notes.write"))
	} else {
		line("    EXAMPLE_BACKEND unset  — EXAMPLE_BACKEND=1 also runs the notes example (docs/guides/bring-your-own-backend.md)")
	}
	if makeDevs {
		line("  Access token for curl: %s  (or %s --client local-test --resource mcp|actions)", tokenCmd, devCmd)
	} else {
		line("  Access token for curl: %s --client local-test --resource mcp|actions  (make token signs in to make dev's fleet, not this one)", tokenCmd)
	}
	line("Press Ctrl-C to stop.")
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprint(w, b.String())
}

// shellQuote returns s as one word of a POSIX shell: as it is when it holds
// only characters no shell treats specially, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
