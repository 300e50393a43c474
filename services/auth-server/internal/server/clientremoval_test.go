package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// connector serves what mcp-gateway and actions-api put in front of their
// routes, built from the same parts: a verifier fetching the auth-server's
// key set over gRPC and following the revocation records in the
// auth-server's Redis (revocation.Follow, as their Run does); 200 when the
// bearer token verifies, else 401 with the invalid_token challenge and
// the reason.
func connector(t *testing.T, f *fleet, audiences ...string) string {
	t.Helper()
	rdb, err := redisx.New(pconfig.Redis{URL: f.Redis.URL(), KeyPrefix: "tollgate:", // the auth-server's default
		CommandTimeout: time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	set, err := revocation.Follow(ctx, rdb, pconfig.Revocation{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: f.KeySource(), Audiences: audiences, Revocations: set})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := tokens.FromRequest(r)
		if err == nil {
			_, err = v.Verify(r.Context(), raw)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+tokens.ChallengeText(err.Error())+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// call sends token to the connector and returns the status and challenge.
func call(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header.Get("WWW-Authenticate")
}

// withoutClients rewrites the fleet's clients file without the clients
// ids, returning the file as it was.
func withoutClients(t *testing.T, f *fleet, ids ...string) []byte {
	t.Helper()
	path := filepath.Join(f.Dir, "clients.yaml")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		Clients []map[string]any `json:"clients"`
	}
	if err := yaml.Unmarshal(before, &reg); err != nil {
		t.Fatal(err)
	}
	reg.Clients = slices.DeleteFunc(reg.Clients, func(c map[string]any) bool { return slices.Contains(ids, c["client_id"].(string)) })
	out, err := yaml.Marshal(reg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(out))
	return before
}

// TestRemovedClientIsRefusedAtTheConnectors follows
// docs/operations/client-registry.md ("Changing clients") through the real
// auth-server: access tokens of two clients verify at a connector; the
// operator removes one client from the clients file and, once the
// auth-server's reload has run, the connector refuses its token with 401
// invalid_token "client removed" while the other client's token keeps
// working. A removal made while Redis is down is recorded when Redis is
// back (the reload retries it), and then refused too. A client added back
// gets tokens the connector accepts.
func TestRemovedClientIsRefusedAtTheConnectors(t *testing.T) {
	f := startFleet(t, map[string]string{"CLIENTS_FILE_RELOAD_INTERVAL": "100ms"})
	pub, apps := f.Clients["test-public"], f.Clients["gpt-apps-mcp"]
	pubTok := f.fullFlow(pub, newAuthRequest(pub)).AccessToken
	appsTok := f.fullFlow(apps, newAuthRequest(apps)).AccessToken
	url := connector(t, f, pub.Audience, apps.Audience)
	for name, tok := range map[string]string{"test-public": pubTok, "gpt-apps-mcp": appsTok} {
		if st, ch := call(t, url, tok); st != http.StatusOK {
			t.Fatalf("%s's token before any removal: %d %s", name, st, ch)
		}
	}
	refused := func(what, tok string) {
		t.Helper()
		testharness.Eventually(t, 20*time.Second, what, func() (bool, string) {
			st, ch := call(t, url, tok)
			return st == http.StatusUnauthorized && strings.Contains(ch, `error="invalid_token"`) && strings.Contains(ch, "client removed"),
				fmt.Sprintf("%d %s", st, ch)
		})
	}

	original := withoutClients(t, f, "test-public")
	refused("test-public's token refused at the connector after its removal", pubTok)
	removedBy := time.Now() // test-public's removal is recorded at or before this
	if st, ch := call(t, url, appsTok); st != http.StatusOK {
		t.Errorf("gpt-apps-mcp's token after another client's removal: %d %s, want 200", st, ch)
	}

	// Redis down at the reload: the removal is not lost.
	f.Redis.Stop()
	withoutClients(t, f, "test-public", "gpt-apps-mcp")
	testharness.Eventually(t, 20*time.Second, "the auth-server tried to record gpt-apps-mcp's removal", func() (bool, string) {
		return strings.Contains(f.AS.Logs.String(), "clients removed from the registry are not recorded yet"), "no such log line"
	})
	if st, ch := call(t, url, appsTok); st != http.StatusOK {
		t.Errorf("gpt-apps-mcp's token while its removal is not recorded: %d %s, want 200 (the window)", st, ch)
	}
	res, err := http.Get(f.Admin() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !regexp.MustCompile(`(?m)^tollgate_revocation_client_removal_failures_total [1-9]`).Match(metrics) {
		t.Errorf("admin /metrics does not count the failed attempt: want tollgate_revocation_client_removal_failures_total ≥ 1")
	}
	f.Redis.Start()
	refused("gpt-apps-mcp's token refused once Redis is back", appsTok)

	// Added back: new tokens are accepted, the old ones stay refused.
	writeFile(t, filepath.Join(f.Dir, "clients.yaml"), string(original))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	testharness.Eventually(t, 20*time.Second, "the auth-server knows test-public again", func() (bool, string) {
		res, err := noRedirect.Get(newAuthRequest(pub).URL(f.Base))
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode != http.StatusBadRequest, fmt.Sprint(res.StatusCode)
	})
	// iat has whole seconds: a token issued in the second of the removal
	// is refused (docs/operations/client-registry.md), so the new token
	// is asked for in a later second.
	time.Sleep(time.Until(removedBy.Truncate(time.Second).Add(time.Second)))
	again := f.fullFlow(pub, newAuthRequest(pub)).AccessToken
	if st, ch := call(t, url, again); st != http.StatusOK {
		t.Errorf("test-public's token issued after it was added back: %d %s, want 200", st, ch)
	}
	if st, _ := call(t, url, pubTok); st != http.StatusUnauthorized {
		t.Errorf("test-public's token issued before its removal, after it was added back: %d, want 401", st)
	}
}
