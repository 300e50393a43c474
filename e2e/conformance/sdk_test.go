package conformance

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
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
		// callback is the listening socket of the script's callback
		// server, handed over as fd 3 (--callback-fd): bound here, so no
		// other process can take the port before the script serves it.
		callback *os.File
		port     int
		args     []string
		// refused: the run must fail, with this text in its error.
		refused string
	}
	newRun := func(t *testing.T, name string, args []string, refused string) run {
		f, port := callbackListener(t)
		return run{name: name, callback: f, port: port, args: args, refused: refused}
	}
	runs := []func(t *testing.T) run{
		// The legacy HTTP+SSE transport at /sse: the 401 names the /sse
		// metadata (RFC 9728 §3.3), whose resource the auth-server accepts.
		func(t *testing.T) run {
			return newRun(t, "dynamic-registration-sse", []string{"--sse"}, "")
		},
		// The SDK registers itself (RFC 7591). Like the SDK by default it
		// sends no state: PKCE is the CSRF protection (OAuth 2.1 §4.1.1).
		func(t *testing.T) run {
			return newRun(t, "dynamic-registration", nil, "")
		},
		func(t *testing.T) run {
			return newRun(t, "dynamic-registration-with-state", []string{"--state"}, "")
		},
		func(t *testing.T) run {
			return newRun(t, "pre-registered-public", []string{"--client-id", publicID}, "")
		},
		// MCP 2025-11-25 Scope Challenge Handling: a tool whose scope the
		// first sign-in left out (connections.revoke, destructive) is
		// answered 403 insufficient_scope, and the SDK authorizes again
		// with the challenge's wider scope, then calls it again. A
		// pre-registered client: one the SDK registers names the first
		// sign-in's scope in its registration (RFC 7591 scope), which
		// bounds what it may ask for later.
		func(t *testing.T) run {
			return newRun(t, "pre-registered-public-step-up", []string{"--client-id", publicID, "--step-up"}, "")
		},
		// The SDK picks client_secret_basic from the metadata.
		func(t *testing.T) run {
			return newRun(t, "pre-registered-confidential", []string{"--client-id", confidentialID, "--client-secret", confidentialSecret}, "")
		},
		// The refusal the SDK must surface: a wrong secret at the token
		// endpoint is invalid_client (RFC 6749 §5.2).
		func(t *testing.T) run {
			return newRun(t, "pre-registered-confidential-wrong-secret", []string{"--client-id", confidentialID, "--client-secret", "not-" + confidentialSecret}, "error=invalid_client")
		},
	}
	seen := map[string]bool{}
	for _, mk := range runs {
		r := mk(t)
		r.args = append([]string{"--callback-fd", "3"}, r.args...)
		t.Run(r.name, func(t *testing.T) {
			endpoint := fleet.Origin + "/mcp"
			if slices.Contains(r.args, "--sse") {
				endpoint = fleet.Origin + "/sse"
			}
			args := append([]string{script, endpoint, strconv.Itoa(r.port)}, r.args...)
			output, signInErr, exitErr := runNode(t, args, func(line string) (string, bool) {
				return strings.CutPrefix(line, "AUTHORIZE ")
			}, callbackURL(r.port), r.callback)
			r.callback.Close() // the script had its own descriptor
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
			if reason == "" && slices.Contains(r.args, "--step-up") {
				reason = stepUpProblem(output)
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

// callbackListener binds a loopback port for a callback server that a
// child process serves: the listening socket, as a file to hand over, and
// its port. The file is closed when the test ends (the child has its own
// descriptor by then).
func callbackListener(t *testing.T) (*os.File, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // f is a descriptor of its own for the same socket
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().(*net.TCPAddr).Port
}

func mustFreePort(t *testing.T) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stepUpProblem is what a --step-up run's output lacks ("" if nothing): a
// second authorization request whose scope is the first's plus
// connections.revoke (the challenge's: what the token had and what the tool
// needs), a token granting it, and the call answered.
func stepUpProblem(output string) string {
	var scopes []string
	for _, line := range strings.Split(output, "\n") {
		if u, ok := strings.CutPrefix(line, "AUTHORIZE "); ok {
			parsed, err := url.Parse(strings.TrimSpace(u))
			if err != nil {
				return "unparsable authorization URL: " + u
			}
			scopes = append(scopes, parsed.Query().Get("scope"))
		}
	}
	if len(scopes) != 2 {
		return fmt.Sprintf("%d authorization requests, want 2 (sign-in, step-up)", len(scopes))
	}
	first, second := strings.Fields(scopes[0]), strings.Fields(scopes[1])
	if slices.Contains(first, "connections.revoke") || !slices.Contains(second, "connections.revoke") {
		return fmt.Sprintf("step-up asked for %q after %q, want connections.revoke added", scopes[1], scopes[0])
	}
	for _, s := range first {
		if !slices.Contains(second, s) {
			return fmt.Sprintf("step-up asked for %q, which drops %s of %q", scopes[1], s, scopes[0])
		}
	}
	i := strings.Index(output, "STEPPED-UP ")
	if i < 0 || !strings.Contains(strings.SplitN(output[i:], "\n", 2)[0], "connections.revoke") {
		return "no token granting connections.revoke after the step-up"
	}
	if !regexp.MustCompile(`CALLED connections[._]revoke`).MatchString(output) {
		return "connections.revoke was not answered after the step-up"
	}
	return ""
}
