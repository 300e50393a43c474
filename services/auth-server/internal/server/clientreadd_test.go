package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestReaddedClientDoesNotRevive: a client removed from the clients file
// and added back does not bring back the grants its removal ended — the
// removal's record is kept for the refresh-token lifetime and the token
// endpoint refuses a refresh of a grant made (its authorization request)
// at or before it: 400 invalid_grant. A grant made after the client is
// back refreshes. review2: the old refresh token was served again and its
// new access token passed the connectors.
func TestReaddedClientDoesNotRevive(t *testing.T) {
	f := startFleet(t, map[string]string{"CLIENTS_FILE_RELOAD_INTERVAL": "100ms"})
	pub := f.Clients["test-public"]
	old := f.fullFlow(pub, newAuthRequest(pub))
	if old.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	original := withoutClients(t, f, "test-public")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	known := func(want bool) func() (bool, string) {
		return func() (bool, string) {
			res, err := noRedirect.Get(newAuthRequest(pub).URL(f.Base))
			if err != nil {
				return false, err.Error()
			}
			res.Body.Close()
			return (res.StatusCode != http.StatusBadRequest) == want, fmt.Sprint(res.StatusCode)
		}
	}
	testharness.Eventually(t, 20*time.Second, "the auth-server no longer knows test-public", known(false))
	// The removal is recorded at the swap and again 5 s later; the client
	// comes back after both.
	time.Sleep(6 * time.Second)
	writeFile(t, filepath.Join(f.Dir, "clients.yaml"), string(original))
	testharness.Eventually(t, 20*time.Second, "the auth-server knows test-public again", known(true))
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))

	resp, body := f.post("/oauth/token", pub, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old.RefreshToken}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"invalid_grant"`) || !strings.Contains(string(body), "removed") {
		t.Errorf("refresh of the grant made before test-public's removal, after it was added back: %d %s, want 400 invalid_grant naming the removal", resp.StatusCode, body)
	}
	again := f.fullFlow(pub, newAuthRequest(pub))
	if resp, body := f.post("/oauth/token", pub, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {again.RefreshToken}}); resp.StatusCode != http.StatusOK {
		t.Errorf("refresh of the grant made after test-public was added back: %d %s, want 200", resp.StatusCode, body)
	}
}
