package conformance

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sdkExpectedFailures are TestTypeScriptSDKClient runs known to fail, as
// expectedFailures for the suite.
var sdkExpectedFailures = map[string]knownFailure{}

// TestTypeScriptSDKClient connects the official MCP TypeScript SDK
// (sdkclient.mjs, pinned in package-lock.json) to /mcp (and to /sse) with nothing but the
// MCP URL and, where pre-registered, a client id: the SDK finds the
// authorization server through the 401 and the protected resource
// metadata, registers or uses its client id, signs in (the harness's
// browser), lists the tools and calls one with the token. The conformance suite has
// no scenario for a protected MCP server; this is the resource-server half.
func TestTypeScriptSDKClient(t *testing.T) {
	dir := t.TempDir()
	// The script resolves the SDK from the node_modules beside it.
	src, err := os.ReadFile("sdkclient.mjs")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "sdkclient.mjs")
	if err := os.WriteFile(script, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(suiteDir, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	type run struct {
		name string
		port int
		args []string
		// refused: the run must fail, with this text in its error.
		refused string
	}
	runs := []func(t *testing.T) run{
		// The legacy HTTP+SSE transport at /sse: the 401 names the /sse
		// metadata (RFC 9728 §3.3), whose resource the auth-server accepts.
		func(t *testing.T) run {
			return run{"dynamic-registration-sse", mustFreePort(t), []string{"--sse"}, ""}
		},
		// The SDK registers itself (RFC 7591). Like the SDK by default it
		// sends no state: PKCE is the CSRF protection (OAuth 2.1 §4.1.1).
		func(t *testing.T) run {
			return run{"dynamic-registration", mustFreePort(t), nil, ""}
		},
		func(t *testing.T) run {
			return run{"dynamic-registration-with-state", mustFreePort(t), []string{"--state"}, ""}
		},
		func(t *testing.T) run {
			return run{"pre-registered-public", mustFreePort(t), []string{"--client-id", publicID}, ""}
		},
		// The SDK picks client_secret_basic from the metadata.
		func(t *testing.T) run {
			return run{"pre-registered-confidential", mustFreePort(t), []string{"--client-id", confidentialID, "--client-secret", confidentialSecret}, ""}
		},
		// The refusal the SDK must surface: a wrong secret at the token
		// endpoint is invalid_client (RFC 6749 §5.2).
		func(t *testing.T) run {
			return run{"pre-registered-confidential-wrong-secret", mustFreePort(t), []string{"--client-id", confidentialID, "--client-secret", "not-" + confidentialSecret}, "error=invalid_client"}
		},
	}
	seen := map[string]bool{}
	for _, mk := range runs {
		r := mk(t)
		t.Run(r.name, func(t *testing.T) {
			endpoint := fleet.Origin + "/mcp"
			if slices.Contains(r.args, "--sse") {
				endpoint = fleet.Origin + "/sse"
			}
			args := append([]string{script, endpoint, strconv.Itoa(r.port)}, r.args...)
			output, signInErr, exitErr := runNode(t, args, func(line string) (string, bool) {
				return strings.CutPrefix(line, "AUTHORIZE ")
			}, callbackURL(r.port))
			key := "typescript-sdk/" + r.name
			seen[key] = true
			var reason string
			switch {
			case signInErr != nil:
				reason = "sign-in: " + signInErr.Error()
			case exitErr != nil:
				reason = exitErr.Error()
				if i := strings.Index(output, "sdkclient: "); i >= 0 {
					reason += ": " + output[i:]
				}
			case !strings.Contains(output, "TOOLS [") || !strings.Contains(output, "AUTHORIZE ") || !strings.Contains(output, "CALLED "):
				reason = "no sign-in, no tools/list result or no tool call"
			}
			if r.refused != "" {
				if !strings.Contains(reason, r.refused) {
					t.Errorf("%s: want a failure with %q, got %q\noutput:\n%s", key, r.refused, reason, output)
				}
				return
			}
			verdict(t, key, sdkExpectedFailures, reason != "", reason, output)
			if i := strings.Index(output, "TOOLS "); i >= 0 {
				t.Log(strings.TrimSpace(output[i:]))
			}
		})
	}
	for key := range sdkExpectedFailures {
		if !seen[key] {
			t.Errorf("sdkExpectedFailures lists %q, which no run reported", key)
		}
	}
}

func mustFreePort(t *testing.T) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
