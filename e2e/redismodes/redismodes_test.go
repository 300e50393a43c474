// Package redismodes runs the fleet on a real Redis Sentinel setup and a
// real Redis Cluster (services/platform/testharness): the account-linking
// and tools/call flow in each mode, then a failover under steady token
// refreshes and tool calls. The standalone mode is the e2e package's own
// fleet. Each mode starts one fleet; the whole package is a few fleet
// starts long.
package redismodes

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/e2e/harness"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

var (
	sentinel *testharness.RedisSentinel
	cluster  *testharness.RedisCluster
)

func TestMain(m *testing.M) {
	setups, err := testharness.StartRedisSetups()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redismodes:", err)
		os.Exit(1)
	}
	for _, s := range setups {
		switch v := s.(type) {
		case *testharness.RedisSentinel:
			sentinel = v
		case *testharness.RedisCluster:
			cluster = v
		}
	}
	code := m.Run()
	setups.Close()
	os.Exit(code)
}

// startFleet runs the fleet on url in mode, with rate limits out of the
// way of the steady load, its keys under prefix: the run's own
// (testharness.KeyPrefix), as the Sentinel and Cluster setups are shared by
// every run of the test in the process (go test -count=2), which met the
// keys of the run before under a fixed "e2e-<mode>:".
func startFleet(t *testing.T, mode, url, prefix string) *harness.Fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f, err := harness.StartWith(ctx, harness.Options{
		ExternalRedis: map[string]string{"REDIS_MODE": mode, "REDIS_URL": url, "REDIS_KEY_PREFIX": prefix},
		Env: map[string]string{
			"RATE_LIMIT_TOKEN_PER_MINUTE": "100000", "RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE": "100000",
			"RATE_LIMIT_PER_MINUTE": "100000",
		},
	})
	if err != nil {
		t.Fatalf("fleet on %s Redis: %v", mode, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fleet log:\n%s", f.Logs)
		}
		f.Stop()
	})
	return f
}

// user is one linked ChatGPT Apps user: its tokens and MCP session.
type user struct {
	f       *harness.Fleet
	conf    *oauth2.Config
	tok     *oauth2.Token
	session string
}

// link runs the account-linking flow through the local ingress (the
// client's authorization request, the dev IdP's login, the callback and the
// code exchange with PKCE) for the ChatGPT Apps client.
func link(t *testing.T, f *harness.Fleet) *user {
	t.Helper()
	c, ok := f.Client("gpt-apps-mcp")
	if !ok {
		t.Fatal("no gpt-apps-mcp dev client")
	}
	conf := &oauth2.Config{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: c.RedirectURIs[0],
		Scopes:   []string{"openid", "profile", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: f.Origin + "/oauth/authorize", TokenURL: f.Origin + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st-redis", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", c.Audience))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := harness.NewBrowser(f.Creds.User.Username, f.Creds.User.Password)
	cb, err := b.Authorize(ctx, authURL, c.RedirectURIs[0])
	if err != nil {
		t.Fatalf("authorize: %v\nvisited: %v", err, b.Visited)
	}
	tok, err := conf.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", c.Audience))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return &user{f: f, conf: conf, tok: tok}
}

// refresh rotates the user's refresh token.
func (u *user) refresh() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := u.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: u.tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	u.tok = tok
	return nil
}

func (u *user) post(body string) (*http.Response, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", u.f.Origin+"/mcp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if u.session != "" {
		req.Header.Set("Mcp-Session-Id", u.session)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e-redis","version":"1"}}}`

// open starts an MCP session.
func (u *user) open() error {
	u.session = ""
	resp, body, err := u.post(initialize)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") == "" {
		return fmt.Errorf("initialize: %d %.200s", resp.StatusCode, body)
	}
	u.session = resp.Header.Get("Mcp-Session-Id")
	resp, body, err = u.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if err != nil {
		return err
	}
	if resp.StatusCode != 202 && resp.StatusCode != 200 {
		return fmt.Errorf("notifications/initialized: %d %.200s", resp.StatusCode, body)
	}
	return nil
}

// callProfile calls the identity.profile tool; a session the gateway no
// longer knows (404) is opened again, as an MCP client does.
func (u *user) callProfile() error {
	if u.session == "" {
		if err := u.open(); err != nil {
			return err
		}
	}
	resp, body, err := u.post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}`)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		u.session = ""
		return fmt.Errorf("tools/call: session gone (404)")
	}
	if resp.StatusCode != 200 || !strings.Contains(body, "dev-user-0001") || strings.Contains(body, `"isError":true`) {
		return fmt.Errorf("tools/call: %d %.300s", resp.StatusCode, body)
	}
	return nil
}

// flow is the account-linking and tools/call flow, with a refresh.
func flow(t *testing.T, f *harness.Fleet) *user {
	t.Helper()
	u := link(t, f)
	if err := u.open(); err != nil {
		t.Fatal(err)
	}
	if err := u.callProfile(); err != nil {
		t.Fatal(err)
	}
	old := u.tok.RefreshToken
	if err := u.refresh(); err != nil {
		t.Fatal(err)
	}
	if u.tok.RefreshToken == old {
		t.Error("refresh did not rotate the refresh token")
	}
	if err := u.callProfile(); err != nil {
		t.Fatalf("tools/call with the refreshed token: %v", err)
	}
	return u
}

// failover runs refreshes and tool calls in a steady loop, kills a master
// after a few good rounds, and waits until rounds succeed again, without
// restarting anything of the fleet. It reports the window (first to last
// failed round) and fails only when the fleet does not recover at all,
// when errors appear before the kill, or when they go on after recovery.
// The bounds are generous limits on a stuck test, not timing assertions.
func failover(t *testing.T, u *user, kill func() (string, error)) {
	t.Helper()
	const before, after = 10, 20
	var (
		killedAt, firstErr, lastErr time.Time
		ok, failed, okAfter         int
		errs                        = map[string]int{}
	)
	deadline := time.Now().Add(3 * time.Minute)
	for round := 0; ; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %d rounds ok, %d failed, %d ok since the last failure; errors: %v", ok, failed, okAfter, errs)
		}
		if round == before {
			addr, err := kill()
			if err != nil {
				t.Fatal(err)
			}
			killedAt = time.Now()
			t.Logf("killed master %s", addr)
		}
		err := u.refresh()
		if err == nil {
			err = u.callProfile()
		}
		now := time.Now()
		switch {
		case err == nil:
			ok++
			if !killedAt.IsZero() {
				okAfter++
			}
		case killedAt.IsZero():
			t.Fatalf("round %d failed before the kill: %v", round, err)
		default:
			failed++
			okAfter = 0
			if firstErr.IsZero() {
				firstErr = now
			}
			lastErr = now
			msg := err.Error()
			if len(msg) > 120 {
				msg = msg[:120]
			}
			errs[msg]++
		}
		if !killedAt.IsZero() && okAfter >= after {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	window := time.Duration(0)
	if failed > 0 {
		window = lastErr.Sub(killedAt)
	}
	t.Logf("failover: %d rounds ok, %d failed; errors from kill+%s to kill+%s (window %s); then %d rounds ok in a row",
		ok, failed, firstErr.Sub(killedAt).Round(time.Millisecond), lastErr.Sub(killedAt).Round(time.Millisecond), window.Round(time.Millisecond), okAfter)
	for e, n := range errs {
		t.Logf("  %d× %s", n, e)
	}
}

// grantID reads the grant_id claim of an access token (unverified: the
// test only needs to know which cluster node holds the grant).
func grantID(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		GrantID string `json:"grant_id"`
	}
	if err != nil || json.Unmarshal(b, &claims) != nil || claims.GrantID == "" {
		t.Fatalf("access token without grant_id: %v", err)
	}
	return claims.GrantID
}

// sizing logs the Redis memory (MEMORY USAGE) of the fleet's keys, under
// prefix, by kind: the figures of docs/operations/redis.md#sizing.
func sizing(t *testing.T, setup testharness.RedisSetup, prefix string) {
	cfg := setup.Config(t)
	cfg.KeyPrefix = prefix
	c, err := redisx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	kinds := map[string][]int64{}
	for _, k := range testharness.RedisKeys(t, c) {
		n, err := c.MemoryUsage(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		kind := strings.TrimPrefix(k, cfg.KeyPrefix)
		switch {
		case strings.HasPrefix(k, "rate:"):
			kind = "rate-limit bucket"
		case strings.HasPrefix(kind, "as:grant2:"), strings.HasPrefix(kind, "as:grant:"), strings.HasPrefix(kind, "as:code:"), strings.HasPrefix(kind, "mcp:session:"),
			strings.HasPrefix(kind, "mcp:events:"), strings.HasPrefix(kind, "as:consent:"):
			kind = strings.Join(strings.SplitN(kind, ":", 3)[:2], ":")
		}
		kinds[kind] = append(kinds[kind], n)
	}
	for kind, ns := range kinds {
		var sum int64
		for _, n := range ns {
			sum += n
		}
		t.Logf("%-24s %3d keys, %5d bytes each on average", kind, len(ns), sum/int64(len(ns)))
	}
	// The run linked one account once: one grant. More are another
	// run's, and its figures would be counted in this one's.
	if n := len(kinds["as:grant2"]); n != 1 {
		t.Errorf("%d grant records (as:grant2) under %q, want the run's one", n, prefix)
	}
}

func TestFleetOnSentinel(t *testing.T) {
	prefix := testharness.KeyPrefix(t)
	f := startFleet(t, sentinel.Mode(), sentinel.URL(), prefix)
	var u *user
	t.Run("account linking and tools/call", func(t *testing.T) { u = flow(t, f) })
	if u == nil || t.Failed() {
		return
	}
	t.Run("sizing", func(t *testing.T) { sizing(t, sentinel, prefix) })
	t.Run("master killed under load", func(t *testing.T) {
		failover(t, u, func() (string, error) {
			addr, err := sentinel.KillMaster()
			if err == nil {
				// The setup whole again for the next run (go test
				// -count=2): the node comes back as the new master's
				// replica. Without it the next run's kill left no
				// replica to promote.
				t.Cleanup(func() {
					if err := sentinel.Restart(addr); err != nil {
						t.Errorf("restart the killed master %s: %v", addr, err)
					}
				})
			}
			return addr, err
		})
	})
}

func TestFleetOnCluster(t *testing.T) {
	prefix := testharness.KeyPrefix(t)
	f := startFleet(t, cluster.Mode(), cluster.URL(), prefix)
	var u *user
	t.Run("account linking and tools/call", func(t *testing.T) { u = flow(t, f) })
	if u == nil || t.Failed() {
		return
	}
	t.Run("sizing", func(t *testing.T) { sizing(t, cluster, prefix) })
	t.Run("master killed under load", func(t *testing.T) {
		failover(t, u, func() (string, error) {
			// The master of the user's grant: every refresh needs it (its
			// slot is its hash tag's, whatever the prefix).
			addr, err := cluster.MasterOf(prefix + "as:grant2:{" + grantID(t, u.tok.AccessToken) + "}")
			if err != nil {
				return "", err
			}
			restart, err := cluster.KillNode(addr)
			if err == nil {
				// Whole again for the next run, as on Sentinel.
				t.Cleanup(func() {
					if err := restart(); err != nil {
						t.Errorf("restart the killed master %s: %v", addr, err)
					}
				})
			}
			return addr, err
		})
	})
}
