package server_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestAnonymousFetchesDoNotDenyOperatorClients (brk47): the 16 fetch
// slots of the guarded fetcher were shared by anonymous callers' Client ID
// Metadata Documents and the operator's own private_key_jwt clients'
// jwks_uri sets. One address, well within RATE_LIMIT_TOKEN_PER_ADDRESS /
// RATE_LIMIT_AUTHORIZE (16 requests naming documents on a server that
// answers slowly, ~3 a second to keep them taken at the 5 s fetch
// timeout), takes every slot, and an operator-registered client whose set
// is not cached (first use, after the 1 h cache TTL, after a key roll, or
// once anonymous jwks_uri entries pushed it out of the 4 MiB cache) gets
// 401 invalid_client "too many fetches in flight" for as long as the
// anonymous traffic lasts. An operator's client must not be denied by
// what anonymous callers make the auth-server fetch: its jwks_uri fetch
// is not refused by the anonymous callers' bound.
//
// The operator's jwks_uri here is a TLS server the auth-server does not
// trust, so its fetch, when tried, fails "TLS failed" (the harness cannot
// make the guarded client trust a test CA); the assertion is that it is
// tried, not refused unsent because anonymous fetches hold the slots.
func TestAnonymousFetchesDoNotDenyOperatorClients(t *testing.T) {
	docs := fetchtest.New(t, nil, nil)
	operatorJWKS := httptest.NewTLSServer(http.HandlerFunc(fetchtest.EmptyJWKS))
	t.Cleanup(operatorJWKS.Close)

	reg, assertion := keyJWTClient(t, "pkj-operator", "http://127.0.0.1:8979/cb")
	reg = regexp.MustCompile(`(?m)^  jwks: .*$`).ReplaceAllString(reg, `  jwks_uri: "`+operatorJWKS.URL+`/jwks.json"`)
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, reg)

	// Anonymous callers: 16 authorization requests naming documents on a
	// server that does not answer, from 4 addresses (one address holds
	// at most 4 slots: TestMetadataFetchesPerAddress), taking every
	// anonymous slot.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			authorizeFrom(t, f, docs.URL, fmt.Sprintf("/slow/%d.json", i), fmt.Sprintf("203.0.113.%d", i%4))
		}()
	}
	docs.AwaitHeld(t, 16)

	c := devClient{ClientID: "pkj-operator", AuthMethod: "private_key_jwt"}
	r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_unknown.unknown"}, "client_id": {"pkj-operator"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion(f.Base+"/oauth/token", rand.Text())}})
	if strings.Contains(r.Description, "too many fetches in flight") {
		t.Errorf("operator client pkj-operator while one anonymous address holds 16 document fetches: %d %s %q;\n"+
			"want its jwks_uri fetched (here: \"TLS failed\"), not refused because anonymous callers hold every fetch slot", r.Status, r.Error, r.Description)
	}
	docs.Release()
	wg.Wait()
}
