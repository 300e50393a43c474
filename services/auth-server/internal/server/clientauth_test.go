package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// clientReq is one request to a client-authenticating endpoint, with full
// control of the credentials and of X-Forwarded-For.
type clientReq struct {
	Path       string // default /oauth/token
	BasicUser  string // sent as is (already form-encoded); "" = no Basic
	BasicPass  string
	Form       url.Values
	ForwardFor string // X-Forwarded-For; "" = none
}

func (f *fleet) clientCall(c clientReq) tokenResponse {
	f.t.Helper()
	if c.Path == "" {
		c.Path = "/oauth/token"
	}
	req, _ := http.NewRequest(http.MethodPost, f.Base+c.Path, strings.NewReader(c.Form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.BasicUser != "" {
		req.SetBasicAuth(c.BasicUser, c.BasicPass)
	}
	if c.ForwardFor != "" {
		req.Header.Set("X-Forwarded-For", c.ForwardFor)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		f.t.Errorf("POST %s: %v", c.Path, err)
		return tokenResponse{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tr tokenResponse
	if c.Path != "/oauth/revoke" || len(b) > 0 {
		if err := json.Unmarshal(b, &tr); err != nil {
			f.t.Errorf("%s answered %d with a body that is not JSON: %q", c.Path, resp.StatusCode, b)
		}
	}
	tr.Status, tr.Header = resp.StatusCode, resp.Header
	return tr
}

// badRefresh is a refresh request whose grant fails (invalid_grant, 400)
// only after the client authenticated: 400 means "client accepted".
func badRefresh() url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"not-a-refresh-token"}}
}

func postCreds(c devClient, secret string, form url.Values) url.Values {
	out := url.Values{}
	for k, v := range form {
		out[k] = v
	}
	out.Set("client_id", c.ClientID)
	out.Set("client_secret", secret)
	return out
}

func assertLimited(t *testing.T, what string, r tokenResponse) {
	t.Helper()
	// 429 with temporarily_unavailable, the registered code (wireError).
	if r.Status != http.StatusTooManyRequests || r.Error != "temporarily_unavailable" {
		t.Errorf("%s: %d %q, want 429 temporarily_unavailable", what, r.Status, r.Error)
		return
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s: Retry-After %q", what, r.Header.Get("Retry-After"))
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("%s: Content-Type %q", what, r.Header.Get("Content-Type"))
	}
}

// An operator-supplied secret, stored as bcrypt, next to dev-init's
// generated (HMAC-hashed) ones.
const (
	opClientID = "ops-client"
	opSecret1  = "operator-chosen-secret-1"
	opSecret2  = "operator-chosen-secret-2"
)

// opClientYAML is the registry entry of the operator client (opClientID,
// client_secret_post) with secret hashed by bcrypt at cost.
func opClientYAML(t testing.TB, secret string, cost int) (yaml, hash string) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`- client_id: %s
  client_name: Operator client
  client_secret_hash: %q
  redirect_uris: ["https://ops.example/cb"]
  token_endpoint_auth_method: client_secret_post
  resources: ["BASE/mcp"]
`, opClientID, h), string(h)
}

// startOperatorFleet starts a fleet with the operator client, its secret
// opSecret1 hashed by bcrypt at cost (from 10 up a check lasts tens of
// milliseconds or more, so requests sent at once overlap it), and the loopback peer
// trusted as the proxy, so that X-Forwarded-For gives each party its own
// address; env is set over that.
func startOperatorFleet(t *testing.T, cost int, env map[string]string) (*fleet, devClient) {
	t.Helper()
	op, _ := opClientYAML(t, opSecret1, cost)
	all := map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32, ::1"}
	for k, v := range env {
		all[k] = v
	}
	return startFleetWith(t, all, op), devClient{ClientID: opClientID, ClientSecret: opSecret1}
}

// TestClientAuthCannotLockOut: the reproduction of the lock-out (200
// anonymous wrong-secret requests naming a client), failure back-off per
// (client, address), cached and rotated operator secrets, concurrency and
// a wrong-secret flood. The loopback peer is the trusted proxy, so
// X-Forwarded-For gives each party its own address.
func TestClientAuthCannotLockOut(t *testing.T) {
	op, opHash := opClientYAML(t, opSecret1, 6)
	f := startFleetWith(t, map[string]string{
		"TRUSTED_PROXIES": "127.0.0.1/32, ::1", "CLIENT_AUTH_FAILURE_LIMIT": "10",
		"CLIENTS_FILE_RELOAD_INTERVAL": "100ms",
	}, op)
	apps := f.Clients["gpt-apps-mcp"] // client_secret_post, dev-init (HMAC) secret
	ops := devClient{ClientID: opClientID, ClientSecret: opSecret1}
	const attacker, legit = "198.51.100.66", "203.0.113.10"

	t.Run("lock-out reproduction", func(t *testing.T) {
		var mu sync.Mutex
		counts := map[int]int{}
		var limited tokenResponse
		var wg sync.WaitGroup
		work := make(chan int)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					r := f.clientCall(clientReq{Form: postCreds(apps, "wrong-"+strconv.Itoa(i), badRefresh()), ForwardFor: attacker})
					mu.Lock()
					counts[r.Status]++
					if r.Status == http.StatusTooManyRequests {
						limited = r
					}
					mu.Unlock()
				}
			}()
		}
		for i := range 200 {
			work <- i
		}
		close(work)
		wg.Wait()
		// Ten failures are answered 401; beyond the budget 429 (a token may
		// refill during the run: one per 90 s).
		if counts[http.StatusUnauthorized] < 10 || counts[http.StatusUnauthorized] > 12 || counts[http.StatusTooManyRequests] < 188 {
			t.Errorf("answers to 200 wrong secrets: %v, want 10 (≤12) × 401 and the rest 429", counts)
		}
		assertLimited(t, "wrong secret in back-off", limited)
		// The real client succeeds from its own address and from the
		// attacker's: a correct secret is always checked.
		for _, addr := range []string{legit, attacker} {
			a := newAuthRequest(apps)
			code := f.authorize(a)
			form := postCreds(apps, apps.ClientSecret, url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}})
			if r := f.clientCall(clientReq{Form: form, ForwardFor: addr}); r.Status != http.StatusOK || r.AccessToken == "" {
				t.Errorf("real client from %s after the flood: %d %s %s", addr, r.Status, r.Error, r.Description)
			}
		}
		// Another address still gets plain 401s for wrong secrets.
		if r := f.clientCall(clientReq{Form: postCreds(apps, "wrong", badRefresh()), ForwardFor: "198.51.100.67"}); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
			t.Errorf("wrong secret from a fresh address: %d %s, want 401 invalid_client", r.Status, r.Error)
		}
	})

	t.Run("operator secret: back-off, cache, never a wrong secret", func(t *testing.T) {
		const addr, other, guesser = "198.51.100.80", "198.51.100.81", "198.51.100.83"
		// Verified once from addr: cached for addr and for any address.
		if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: addr}); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("operator client, right secret: %d %s %s", r.Status, r.Error, r.Description)
		}
		spend := func(from string) {
			t.Helper()
			for i := range 10 {
				if r := f.clientCall(clientReq{Form: postCreds(ops, "wrong-"+strconv.Itoa(i), badRefresh()), ForwardFor: from}); r.Status != http.StatusUnauthorized {
					t.Fatalf("wrong operator secret %d from %s: %d %s", i, from, r.Status, r.Error)
				}
			}
		}
		spend(addr)
		// Budget spent: wrong secrets are not checked (429), the secret
		// proved from this address still passes.
		assertLimited(t, "wrong operator secret in back-off", f.clientCall(clientReq{Form: postCreds(ops, "wrong", badRefresh()), ForwardFor: addr}))
		if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: addr}); r.Error != "invalid_grant" {
			t.Errorf("operator secret proved from this address, in back-off: %d %s", r.Status, r.Error)
		}
		// A not-backed-off address is served from the cache of a secret
		// proved elsewhere.
		if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: other}); r.Error != "invalid_grant" {
			t.Errorf("operator secret proved elsewhere, from a fresh address: %d %s", r.Status, r.Error)
		}
		// A guesser that spent its own budget learns nothing from the
		// cache: the right secret, proved only from other addresses, is
		// refused there exactly as its wrong guesses are (brk41: it was
		// accepted, so a brute force of a weak secret in use went at the
		// address limit's pace, not 10 per window).
		spend(guesser)
		wrong := f.clientCall(clientReq{Form: postCreds(ops, "wrong-again", badRefresh()), ForwardFor: guesser})
		right := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: guesser})
		assertLimited(t, "wrong guess in back-off", wrong)
		assertLimited(t, "right guess in back-off, proved only elsewhere", right)
		if right.Status != wrong.Status || right.Error != wrong.Error || right.Description != wrong.Description {
			t.Errorf("right and wrong guesses in back-off differ: %d %s %q against %d %s %q", right.Status, right.Error, right.Description, wrong.Status, wrong.Error, wrong.Description)
		}
		// A wrong secret is never accepted, cached or not, from any address.
		for _, a := range []string{addr, other, "198.51.100.82"} {
			for _, s := range []string{opSecret1 + "x", strings.ToUpper(opSecret1), ""} {
				if r := f.clientCall(clientReq{Form: postCreds(ops, s, badRefresh()), ForwardFor: a}); r.Status != http.StatusUnauthorized && r.Status != http.StatusTooManyRequests {
					t.Errorf("wrong secret %q from %s: %d %s", s, a, r.Status, r.Error)
				}
			}
		}
	})

	t.Run("one failure budget whatever the client id's spelling", func(t *testing.T) {
		// The budget is keyed on the URL-decoded client id (RFC 6749
		// §2.3.1): another spelling of the same id in Basic gets no fresh
		// budget of guesses (brk41: without the decoding in
		// claimedClientID every other test here still passed).
		const addr = "198.51.100.77"
		for i := range 10 {
			if r := f.clientCall(clientReq{BasicUser: "local-test", BasicPass: "wrong-" + strconv.Itoa(i), Form: badRefresh(), ForwardFor: addr}); r.Status != http.StatusUnauthorized {
				t.Fatalf("wrong secret %d: %d %s", i, r.Status, r.Error)
			}
		}
		for _, u := range []string{"local-test", "local%2Dtest", "local%2dtest", "%6Cocal-test"} {
			assertLimited(t, "wrong secret as "+u+" after the budget was spent", f.clientCall(clientReq{BasicUser: u, BasicPass: "wrong", Form: badRefresh(), ForwardFor: addr}))
		}
	})

	t.Run("concurrent right and wrong secrets", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addr := fmt.Sprintf("192.0.2.%d", 10+g)
				for i := range 6 {
					c, secret := apps, apps.ClientSecret
					if (g+i)%2 == 0 {
						c, secret = ops, opSecret1
					}
					if r := f.clientCall(clientReq{Form: postCreds(c, secret, badRefresh()), ForwardFor: addr}); r.Error != "invalid_grant" {
						t.Errorf("%s right secret: %d %s %s", c.ClientID, r.Status, r.Error, r.Description)
					}
					// Refused: checked (401) or, with the bcrypt slots full, not checked (503).
					if r := f.clientCall(clientReq{Form: postCreds(c, secret+"-no", badRefresh()), ForwardFor: addr}); r.Status != http.StatusUnauthorized && r.Status != http.StatusServiceUnavailable {
						t.Errorf("%s wrong secret: %d %s", c.ClientID, r.Status, r.Error)
					}
				}
			}()
		}
		wg.Wait()
	})

	t.Run("wrong-secret flood leaves the real client served", func(t *testing.T) {
		// 120 wrong bcrypt secrets from 120 addresses (no back-off helps):
		// slow checks are bounded, the excess fails fast with 503, and the
		// real clients (a fast hash, a cached bcrypt secret) keep working.
		var wg sync.WaitGroup
		var mu sync.Mutex
		flood := map[int]int{}
		work := make(chan int)
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					r := f.clientCall(clientReq{Form: postCreds(ops, "flood-"+strconv.Itoa(i), badRefresh()), ForwardFor: fmt.Sprintf("10.9.%d.%d", i/200, i%200+1)})
					mu.Lock()
					flood[r.Status]++
					mu.Unlock()
					if r.Status == http.StatusServiceUnavailable && (r.Error != "temporarily_unavailable" || r.Header.Get("Retry-After") == "") {
						t.Errorf("busy answer: %s, Retry-After %q", r.Error, r.Header.Get("Retry-After"))
					}
				}
			}()
		}
		real := make(chan tokenResponse, 40)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				real <- f.clientCall(clientReq{Form: postCreds(apps, apps.ClientSecret, badRefresh()), ForwardFor: legit})
				real <- f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: "203.0.113." + strconv.Itoa(20+i)})
			}
		}()
		for i := range 120 {
			work <- i
		}
		close(work)
		wg.Wait()
		close(real)
		for r := range real {
			if r.Error != "invalid_grant" {
				t.Errorf("real client during the flood: %d %s %s", r.Status, r.Error, r.Description)
			}
		}
		if flood[http.StatusOK]+flood[http.StatusBadRequest] > 0 {
			t.Errorf("a wrong secret was accepted during the flood: %v", flood)
		}
		t.Logf("flood answers: %v", flood)
	})

	t.Run("rotation takes effect at once", func(t *testing.T) {
		reg := filepath.Join(f.Dir, "clients.yaml")
		b, err := os.ReadFile(reg)
		if err != nil {
			t.Fatal(err)
		}
		newHash, _ := bcrypt.GenerateFromPassword([]byte(opSecret2), 6)
		if !strings.Contains(string(b), opHash) {
			t.Fatal("registry does not hold the operator hash")
		}
		writeFile(t, reg, strings.Replace(string(b), opHash, string(newHash), 1))
		ok := false
		for range 100 {
			if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret2, badRefresh()), ForwardFor: "203.0.113.50"}); r.Error == "invalid_grant" {
				ok = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !ok {
			t.Fatal("the rotated secret was not accepted within 10s of the registry change")
		}
		// The old secret was verified (cached) before; it is refused now.
		if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: "203.0.113.50"}); r.Status != http.StatusUnauthorized {
			t.Errorf("old secret after rotation: %d %s", r.Status, r.Error)
		}
	})
}

// TestClientAddressAndBuckets: without trusted proxies X-Forwarded-For is
// ignored; behind a trusted proxy the right-most untrusted entry is the
// address; after authentication the bucket is the decoded client id; one
// authentication method per request.
func TestClientAddressAndBuckets(t *testing.T) {
	t.Run("spoofed X-Forwarded-For from an untrusted peer", func(t *testing.T) {
		f := startFleet(t, map[string]string{"RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE": "3"})
		var last tokenResponse
		for i := range 4 {
			last = f.clientCall(clientReq{Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"nobody"}},
				ForwardFor: fmt.Sprintf("198.51.100.%d", i+1)})
		}
		assertLimited(t, "4th request with a new spoofed address", last)
	})

	f := startFleet(t, map[string]string{
		"TRUSTED_PROXIES": "127.0.0.0/8", "RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE": "3", "RATE_LIMIT_TOKEN_PER_MINUTE": "4",
	})
	local := f.Clients["local-test"] // client_secret_basic

	t.Run("trusted proxy: right-most untrusted entry", func(t *testing.T) {
		anon := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"nobody"}}
		for i := range 3 {
			// The client rewrites the left part; the proxy's entry stays.
			if r := f.clientCall(clientReq{Form: anon, ForwardFor: fmt.Sprintf("10.0.0.%d, 198.51.100.5", i)}); r.Status == http.StatusTooManyRequests {
				t.Fatalf("request %d limited early", i)
			}
		}
		assertLimited(t, "same right-most untrusted address", f.clientCall(clientReq{Form: anon, ForwardFor: "1.1.1.1, 198.51.100.5, 127.0.0.9"}))
		if r := f.clientCall(clientReq{Form: anon, ForwardFor: "198.51.100.6"}); r.Status == http.StatusTooManyRequests {
			t.Error("another address shares the bucket")
		}
	})

	t.Run("IPv6: one /64 is one address", func(t *testing.T) {
		// An IPv6 client usually holds a whole /64: keyed on the /128 it
		// would have 2^64 budgets (and failure back-offs).
		anon := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"nobody"}}
		for i := range 3 {
			if r := f.clientCall(clientReq{Form: anon, ForwardFor: fmt.Sprintf("2001:db8:1:2::%x", i+1)}); r.Status == http.StatusTooManyRequests {
				t.Fatalf("request %d limited early", i)
			}
		}
		assertLimited(t, "4th address of the same /64", f.clientCall(clientReq{Form: anon, ForwardFor: "[2001:db8:1:2:ffff:ffff:ffff:ffff]:443"}))
		if r := f.clientCall(clientReq{Form: anon, ForwardFor: "2001:db8:1:3::1"}); r.Status == http.StatusTooManyRequests {
			t.Error("another /64 shares the bucket")
		}
	})

	t.Run("percent-encoded client ids share one bucket", func(t *testing.T) {
		users := []string{"local%2Dtest", "local-test", "local%2dtest", "local-test"}
		for i, u := range users {
			// A new address each time: only the client bucket (4/min) counts.
			r := f.clientCall(clientReq{BasicUser: u, BasicPass: url.QueryEscape(local.ClientSecret), Form: badRefresh(), ForwardFor: fmt.Sprintf("203.0.113.%d", 100+i)})
			if r.Error != "invalid_grant" {
				t.Fatalf("%s: %d %s %s", u, r.Status, r.Error, r.Description)
			}
		}
		r := f.clientCall(clientReq{BasicUser: "local%2Dtest", BasicPass: url.QueryEscape(local.ClientSecret), Form: badRefresh(), ForwardFor: "203.0.113.120"})
		assertLimited(t, "5th request of local-test under another spelling", r)
		// The limit is after authentication: a wrong secret naming the
		// client is not limited by the client's bucket…
		if r := f.clientCall(clientReq{BasicUser: "local-test", BasicPass: "wrong", Form: badRefresh(), ForwardFor: "203.0.113.121"}); r.Status != http.StatusUnauthorized {
			t.Errorf("wrong secret: %d %s, want 401", r.Status, r.Error)
		}
		// …and another client has its own.
		apps := f.Clients["gpt-apps-mcp"]
		if r := f.clientCall(clientReq{Form: postCreds(apps, apps.ClientSecret, badRefresh()), ForwardFor: "203.0.113.122"}); r.Error != "invalid_grant" {
			t.Errorf("another client: %d %s", r.Status, r.Error)
		}
	})

	t.Run("revocation: per-client limit and failure back-off answer 429", func(t *testing.T) {
		apps := f.Clients["gpt-apps-mcp"]
		revoke := func(secret, addr string) tokenResponse {
			return f.clientCall(clientReq{Path: "/oauth/revoke", Form: postCreds(apps, secret, url.Values{"token": {"unknown"}}), ForwardFor: addr})
		}
		for i := range 4 {
			if r := revoke(apps.ClientSecret, fmt.Sprintf("203.0.113.%d", 130+i)); r.Status != http.StatusOK {
				t.Fatalf("revocation %d: %d %s", i, r.Status, r.Error)
			}
		}
		// RFC 7009 answers 200 for an unknown token; a refused client is
		// still 429 with an OAuth body.
		assertLimited(t, "5th revocation of the client", revoke(apps.ClientSecret, "203.0.113.140"))
	})

	t.Run("a public client's bucket is not spent by others", func(t *testing.T) {
		// A public client proves nothing (RFC 6749 §2.1): its client_id is
		// a claim, so anyone naming it from another address must not spend
		// the bucket its real users need.
		pub := f.Clients["test-public"]
		for i := range 5 {
			r := f.clientCall(clientReq{Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {pub.ClientID}},
				ForwardFor: fmt.Sprintf("198.51.100.%d", 150+i)})
			if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
				t.Fatalf("anonymous request %d naming the public client: %d %s", i, r.Status, r.Error)
			}
		}
		a := newAuthRequest(pub)
		code := f.authorize(a)
		r := f.clientCall(clientReq{Form: url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {pub.ClientID},
			"redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}, ForwardFor: "203.0.113.170"})
		if r.Status != http.StatusOK || r.AccessToken == "" {
			t.Fatalf("the public client's real user after others named it: %d %s %s", r.Status, r.Error, r.Description)
		}
		// Its own address still has a per-client budget (4/min here).
		for range 4 {
			f.clientCall(clientReq{Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {pub.ClientID}}, ForwardFor: "203.0.113.171"})
		}
		assertLimited(t, "5th request of the public client from one address", f.clientCall(clientReq{Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {pub.ClientID}}, ForwardFor: "203.0.113.171"}))
	})

	t.Run("one authentication method per request", func(t *testing.T) {
		apps := f.Clients["gpt-apps-mcp"]
		for name, c := range map[string]clientReq{
			"Basic plus another client's body credentials": {BasicUser: "local-test", BasicPass: url.QueryEscape(local.ClientSecret),
				Form: postCreds(apps, apps.ClientSecret, badRefresh())},
			"Basic plus a body secret for the same client": {BasicUser: "local-test", BasicPass: url.QueryEscape(local.ClientSecret),
				Form: postCreds(local, local.ClientSecret, badRefresh())},
			"body client_id differs from the Basic user": {BasicUser: "local-test", BasicPass: url.QueryEscape(local.ClientSecret),
				Form: func() url.Values { v := badRefresh(); v.Set("client_id", "gpt-apps-mcp"); return v }()},
			"revoke, mixed": {Path: "/oauth/revoke", BasicUser: "local-test", BasicPass: url.QueryEscape(local.ClientSecret),
				Form: postCreds(apps, apps.ClientSecret, url.Values{"token": {"x"}})},
		} {
			c.ForwardFor = "203.0.113.200"
			if name == "revoke, mixed" {
				c.ForwardFor = "203.0.113.201"
			}
			if r := f.clientCall(c); r.Status != http.StatusBadRequest || r.Error != "invalid_request" {
				t.Errorf("%s: %d %s, want 400 invalid_request", name, r.Status, r.Error)
			}
		}
	})
}
