package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/devfleet"
)

// inspectorCLI is the MCP Inspector's launcher (npm
// @modelcontextprotocol/inspector, pinned in package-lock.json); --cli runs
// its command-line client.
func inspectorCLI() string {
	return filepath.Join(suiteDir, "@modelcontextprotocol", "inspector", "clients", "launcher", "build", "index.js")
}

// inspector runs the Inspector CLI with args in a throw-away home (its
// catalog and OAuth state), plays the browser when it asks the user to
// navigate to the authorization URL, and returns stdout and stderr.
func inspector(t *testing.T, callback string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, node(), append([]string{inspectorCLI(), "--cli"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"MCP_CATALOG_PATH="+filepath.Join(home, "mcp.json"), "NO_COLOR=1",
		// Without a TTY the CLI signs in only when told it may "open a
		// browser"; there is none here (the attempt fails and it waits for
		// the callback), and this test plays it from the printed URL.
		"MCP_AUTO_OPEN_ENABLED=true", "BROWSER=true")
	var stdout lockedBuffer
	cmd.Stdout = &stdout
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		stderr    strings.Builder
		wg        sync.WaitGroup
		signInErr error
	)
	sc := bufio.NewScanner(stderrPipe)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		stderr.WriteString(line + "\n")
		if i := strings.Index(line, "/oauth/authorize?"); i >= 0 && callback != "" {
			u := line[strings.LastIndex(line[:i], "http"):]
			if j := strings.IndexAny(u, " \t"); j >= 0 {
				u = u[:j]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := signIn(ctx, u, callback); err != nil {
					signInErr = err
					cancel()
				}
			}()
		}
	}
	_, _ = io.Copy(io.Discard, stderrPipe)
	wg.Wait()
	err = cmd.Wait()
	if signInErr != nil {
		err = fmt.Errorf("sign-in: %w (inspector: %v)", signInErr, err)
	}
	return stdout.String(), stderr.String(), err
}

// toolNames reads the tool names out of tools/list's result as the
// Inspector CLI prints it with --format json (the "tools" array, wherever
// its envelope puts it).
func toolNames(t *testing.T, out string) []string {
	t.Helper()
	var doc any
	i := strings.Index(out, "{")
	if i < 0 || json.Unmarshal([]byte(out[i:]), &doc) != nil {
		t.Fatalf("tools/list output is not JSON:\n%s", out)
	}
	var names []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if tools, ok := x["tools"].([]any); ok {
				for _, tl := range tools {
					if m, ok := tl.(map[string]any); ok {
						if n, ok := m["name"].(string); ok {
							names = append(names, n)
						}
					}
				}
				return
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	if len(names) == 0 {
		t.Logf("tools/list output:\n%s", out)
	}
	return names
}

// TestMCPInspectorCLI drives the MCP Inspector's CLI against /mcp as the
// connection guide shows it: with a bearer token from the real sign-in
// (what `make token` prints), and signing in by itself — discovery from the
// 401, dynamic client registration (on under make dev), PKCE, its loopback
// callback listener — with this test playing the user's browser. Both list
// the tools.
func TestMCPInspectorCLI(t *testing.T) {
	if _, err := os.Stat(inspectorCLI()); err != nil {
		t.Fatalf("the pinned MCP Inspector is not installed (%v); run `make conformance-deps`", err)
	}
	mcpURL := fleet.Origin + "/mcp"
	creds := devfleet.DevCredentials{Origin: fleet.Origin, User: fleet.Creds.User, Clients: []devfleet.DevClient{{
		ClientID: confidentialID, ClientSecret: confidentialSecret, RedirectURIs: []string{callbackURL(confidentialPort)},
		Audience: mcpURL, AuthMethod: "client_secret_basic", RequirePKCE: true,
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := devfleet.SignIn(ctx, devfleet.SignInOptions{Creds: creds, ClientID: confidentialID, Resource: mcpURL})
	if err != nil {
		t.Fatalf("sign-in for the bearer token: %v", err)
	}

	t.Run("bearer", func(t *testing.T) {
		out, stderr, err := inspector(t, "", mcpURL, "--transport", "http", "--method", "tools/list",
			"--header", "Authorization: Bearer "+tr.AccessToken, "--format", "json")
		if err != nil {
			t.Fatalf("inspector: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		if names := toolNames(t, out); !strings.Contains(strings.Join(names, " "), "health") {
			t.Errorf("tools %v: want the health tools", names)
		}
	})

	t.Run("oauth-dcr", func(t *testing.T) {
		// The Inspector binds its callback port itself (--callback-url): a
		// port another process took since it was picked is run again on a
		// new one.
		var out, stderr string
		var err error
		onFreePort(t, mustFreePort(t), freePort, func(port int) bool {
			callback := fmt.Sprintf("http://127.0.0.1:%d/oauth/callback", port)
			out, stderr, err = inspector(t, callback, mcpURL, "--transport", "http", "--method", "tools/list",
				"--callback-url", callback, "--format", "json")
			return err != nil && portInUse(out+stderr)
		})
		if err != nil {
			t.Fatalf("inspector: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		if !strings.Contains(stderr, "/oauth/authorize?") {
			t.Errorf("the Inspector did not sign in through the authorization endpoint:\n%s", stderr)
		}
		if names := toolNames(t, out); !strings.Contains(strings.Join(names, " "), "health") {
			t.Errorf("tools %v: want the health tools", names)
		}
	})
}
