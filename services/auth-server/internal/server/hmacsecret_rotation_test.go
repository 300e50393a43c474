package server_test

// Attacks on the rotation of TOKEN_HMAC_SECRET (docs/operations/key-rotation.md,
// "Codes and refresh tokens") through real auth-servers sharing one real
// redis-server, real HTTP and the real dev IdP login: what
// TestHMACSecretRotationAcrossReplicas and TestCodeAcrossHMACSecretRotation
// do not cover — dynamic registrations' client secrets across the three
// steps, concurrent refreshes and code redemptions split between
// replicas of different current secrets, a token of a secret a replica does not know,
// revocation and introspection of a rotated secret's tokens, a token
// forged with the secret, and the settings' refusals and spellings at
// start-up (a _FILE's newline, the rotated list's empty items, an
// environment value's newline).

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const (
	hmacBreakA = "hmac-break-secret-A-0123456789abcdef01234567"
	hmacBreakB = "hmac-break-secret-B-fedcba9876543210fedcba98"
)

// registerConfidential registers a client_secret_post client at f (RFC
// 7591) and returns it.
func registerConfidential(t *testing.T, f *fleet) devClient {
	t.Helper()
	redirect := "http://127.0.0.1:8977/hmacbreak-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	id, _ := reg["client_id"].(string)
	secret, _ := reg["client_secret"].(string)
	if st != http.StatusCreated || id == "" || secret == "" || reg["client_secret_expires_at"] != float64(0) {
		t.Fatalf("register: %d %v", st, reg)
	}
	return devClient{ClientID: id, ClientSecret: secret, RedirectURIs: []string{redirect}, AuthMethod: "client_secret_post"}
}

// authenticates reports whether f accepts c's client secret: a refresh
// with an unknown token is answered 400 invalid_grant once the client is
// authenticated, 401 invalid_client when its secret is refused.
func authenticates(t *testing.T, f *fleet, c devClient) bool {
	t.Helper()
	tr := f.refresh(c, "ory_rt_unknown.unknown")
	switch {
	case tr.Status == http.StatusBadRequest && tr.Error == "invalid_grant":
		return true
	case tr.Status == http.StatusUnauthorized && tr.Error == "invalid_client":
		return false
	}
	t.Fatalf("client %s: %d %s: %s (want 400 invalid_grant or 401 invalid_client)", c.ClientID, tr.Status, tr.Error, tr.Description)
	return false
}

// TestDCRClientSecretsAcrossHMACSecretRotation: with CLIENT_SECRET_HMAC_KEY
// unset, a dynamic registration's client secret is hashed with a key
// derived from the current TOKEN_HMAC_SECRET, and the secret never
// expires (client_secret_expires_at is 0). Through the rotation's steps:
// a registration made under the old secret authenticates at replicas of
// step 1 and step 2, one made at a step-2 replica at a step-1 replica.
// Step 3 (the old secret dropped): a registration that authenticated at
// a step-2 replica since step 2 authenticates (its hash was rewritten
// under the new secret's key); one not used since is refused (401
// invalid_client) — the guide says so — and once used at a replica that
// still accepts the old secret, it authenticates after the drop too.
//
// Broken on purpose to see it fail: without the rewrite (rehashDynamic
// not called), the registration used at the step-2 replica is refused
// at step 3.
// CLIENT_SECRET_HMAC_KEY set afterwards keeps every registration made
// before authenticating (the derived keys still verify). No secret
// appears in any log line.
func TestDCRClientSecretsAcrossHMACSecretRotation(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA})
	old := registerConfidential(t, f)
	idle := registerConfidential(t, f) // not used after step 2
	if !authenticates(t, f, old) || !authenticates(t, f, idle) {
		t.Fatal("a registration at the replica that made it is refused")
	}

	step1 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakB})
	step2 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA})
	if !authenticates(t, f, old) || !authenticates(t, step1, old) || !authenticates(t, step2, old) {
		t.Fatal("a registration made under the old secret is refused during steps 1–2")
	}
	fresh := registerConfidential(t, step2)
	if !authenticates(t, step1, fresh) || !authenticates(t, step2, fresh) {
		t.Fatal("a registration made at a step-2 replica is refused at a step-1 or step-2 replica")
	}
	// The registration's whole flow, not only its authentication, at the
	// step-1 replica with the step-2 replica's client: consent, code,
	// refresh at the other replica.
	a := newAuthRequest(fresh)
	a.Scope = "openid"
	tr := approvedTokens(t, step1, fresh, a, "a step-2 registration at a step-1 replica")
	if tr.RefreshToken == "" {
		t.Fatal("a step-2 registration at a step-1 replica: no refresh token")
	}
	if r := step2.refresh(fresh, tr.RefreshToken); r.Status != http.StatusOK {
		t.Fatalf("its refresh at the step-2 replica: %d %s: %s", r.Status, r.Error, r.Description)
	}

	// Step 3: the old secret removed. A registration used at a step-2
	// replica since step 2 authenticates; one not used since is refused —
	// the guide's step 3 says so.
	dropped := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": ""})
	if !authenticates(t, dropped, old) {
		t.Error("with the old secret dropped, a registration made under it and used at a step-2 replica since is refused")
	}
	if authenticates(t, dropped, idle) {
		t.Error("with the old secret dropped, a registration not used since step 2 still authenticates: update the guide's step 3")
	}
	if !authenticates(t, dropped, fresh) {
		t.Error("a registration made under the new secret is refused once the old secret is dropped")
	}
	// The old secret kept accepted: the idle registration works, and its
	// use rewrote its hash — it works once the old secret is dropped.
	kept := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA})
	if !authenticates(t, kept, idle) || !authenticates(t, kept, fresh) {
		t.Error("the old secret kept accepted: a registration is refused")
	}
	if !authenticates(t, dropped, idle) {
		t.Error("a registration used once at a replica of the new secret (the old one accepted) is refused once the old secret is dropped")
	}

	// CLIENT_SECRET_HMAC_KEY set afterwards: the derived keys still
	// verify (TestSecretsExplicitKeySetOverDerived follows the rewrite).
	explicit := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA,
		"CLIENT_SECRET_HMAC_KEY": "hmac-break-client-key-0123456789abcdef0123"})
	if !authenticates(t, explicit, old) || !authenticates(t, explicit, idle) || !authenticates(t, explicit, fresh) {
		t.Error("CLIENT_SECRET_HMAC_KEY set after registrations: a registration hashed with a derived key is refused: update the docs")
	}
	// In development, dev-init's clients are keyed with the signing keys'
	// derived key, which TOKEN_HMAC_SECRET replaces
	// (docs/operations/client-registry.md).
	if authenticates(t, f, f.Clients["local-test"]) {
		t.Error("dev-init's local-test authenticates with TOKEN_HMAC_SECRET set: update docs/operations/client-registry.md")
	}

	for _, g := range []*fleet{f, step1, step2, dropped, kept, explicit} {
		logs := g.AS.Logs.String()
		for _, s := range []string{hmacBreakA, hmacBreakB, old.ClientSecret, idle.ClientSecret, fresh.ClientSecret} {
			if strings.Contains(logs, s) {
				t.Errorf("a secret in the logs of %s", g.Base)
			}
		}
	}
}

// TestRefreshesSplitAcrossSecretsConverge: one refresh token sent 20 times
// at once, half to a replica of step 1 (old secret current) and half to a
// replica of step 2 (new secret current) — a client retrying through a
// load balancer while step 2 rolls. The two replicas derive different
// successors; the rule must still leave exactly one live refresh token:
// every 200 carries the same one, every other answer is 400
// invalid_grant (or 503 from the signing queue), nothing is revoked, the
// grant's record names that token, and it refreshes at either replica.
// After the grace window the first token again revokes the grant (reuse).
func TestRefreshesSplitAcrossSecretsConverge(t *testing.T) {
	extra, cs := standardsClients(t)
	f := startFleetWith(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakB}, extra)
	step2 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA})
	// A bcrypt-hashed client: dev-init's clients are keyed with the signing
	// keys' derived key, which TOKEN_HMAC_SECRET replaces.
	c := cs["test-nopkce"]
	for round := range 3 {
		tr := f.fullFlow(c, newAuthRequest(c))
		id := grantIDOf(t, tr.AccessToken)
		rt := tr.RefreshToken
		out := make([]tokenResponse, 20)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range out {
			pod := f
			if i%2 == 1 {
				pod = step2
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				out[i] = pod.refresh(c, rt)
			}()
		}
		close(start)
		wg.Wait()
		winner, served := "", 0
		for i, r := range out {
			switch {
			case r.Status == http.StatusOK:
				if r.RefreshToken == "" || r.AccessToken == "" {
					t.Fatalf("round %d: 200 without tokens: %+v", round, r)
				}
				if winner != "" && r.RefreshToken != winner {
					t.Fatalf("round %d: two live branches: answer %d has another refresh token than an earlier 200", round, i)
				}
				winner = r.RefreshToken
				served++
			case r.Status == http.StatusBadRequest && r.Error == "invalid_grant",
				r.Status == http.StatusServiceUnavailable && r.Error == "temporarily_unavailable":
				if r.RefreshToken != "" || r.AccessToken != "" {
					t.Fatalf("round %d: a refusal carries tokens: %+v", round, r)
				}
			default:
				t.Fatalf("round %d: answer %d: %d %s: %s", round, i, r.Status, r.Error, r.Description)
			}
		}
		if winner == "" {
			t.Fatalf("round %d: none of 20 refreshes served", round)
		}
		t.Logf("round %d: %d of 20 served", round, served)
		g := readGrant(t, f, id)
		if !g.exists || g.rt != macOf(winner) || g.prev != macOf(rt) {
			t.Fatalf("round %d: grant record %q: want current = the served token, previous = the presented one", round, g.raw)
		}
		if revokedInFleet(t, f, id) {
			t.Fatalf("round %d: a split retry revoked the grant", round)
		}
		// The served token refreshes at the replica that did not serve it,
		// too.
		next := step2.refresh(c, winner)
		if next.Status != http.StatusOK {
			t.Fatalf("round %d: the served token at the step-2 replica: %d %s: %s", round, next.Status, next.Error, next.Description)
		}
		if r := f.refresh(c, next.RefreshToken); r.Status != http.StatusOK {
			t.Fatalf("round %d: its successor at the step-1 replica: %d %s: %s", round, r.Status, r.Error, r.Description)
		} else {
			winner = r.RefreshToken
		}
		// After the grace window the first token is reuse: at the replica
		// whose successor is not current, too, the grant is revoked.
		endWindow(t, f, id)
		pod := f
		if round%2 == 1 {
			pod = step2
		}
		if r := pod.refresh(c, rt); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("round %d: reuse after the window: %d %s, want 400 invalid_grant", round, r.Status, r.Error)
		}
		assertRevoked(t, f, c, id, []string{rt, winner}, nil)
	}
}

// TestRotatedSecretTokenAtReplicaWithoutIt: a replica that does not know a
// grant's secret (a single-step rotation, or the old secret dropped too
// early) answers its refresh token and code with 400 invalid_grant, never
// a 5xx, and changes nothing: the grant is not revoked, its record is
// unchanged, and a replica that accepts the secret then serves both.
// Revocation (RFC 7009) of that refresh token at the replica without the
// secret answers 200 and revokes nothing (it is not authentic there);
// introspection calls it inactive there and active at a replica with the
// secret, where revocation then revokes the grant.
func TestRotatedSecretTokenAtReplicaWithoutIt(t *testing.T) {
	extra, cs := standardsClients(t)
	f := startFleetWith(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA}, extra)
	c := cs["test-nopkce"] // bcrypt-hashed: its secret does not depend on the HMAC secret
	tr := f.fullFlow(c, newAuthRequest(c))
	id := grantIDOf(t, tr.AccessToken)
	a := newAuthRequest(c)
	code := f.authorize(a)
	before := readGrant(t, f, id)

	onlyB := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB})
	for i := range 3 {
		if r := onlyB.refresh(c, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" || r.AccessToken != "" {
			t.Fatalf("refresh %d of an unknown secret's token: %d %s: %s", i, r.Status, r.Error, r.Description)
		}
		if r := onlyB.exchange(c, a, code); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" || r.AccessToken != "" {
			t.Fatalf("code %d of an unknown secret: %d %s: %s", i, r.Status, r.Error, r.Description)
		}
	}
	if st, _, m := introspect(t, onlyB, c, tr.RefreshToken); st != http.StatusOK || m["active"] != false {
		t.Errorf("introspection of an unknown secret's refresh token: %d %v, want inactive", st, m)
	}
	resp, body := onlyB.post("/oauth/revoke", c, url.Values{"token": {tr.RefreshToken}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("revocation of an unknown secret's refresh token: %d %s, want 200 (RFC 7009 §2.2)", resp.StatusCode, body)
	}
	if after := readGrant(t, f, id); after.raw != before.raw || revokedInFleet(t, f, id) {
		t.Fatalf("the refusals changed the grant: %q, revoked %v", after.raw, revokedInFleet(t, f, id))
	}

	withA := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA})
	if st, _, m := introspect(t, withA, c, tr.RefreshToken); st != http.StatusOK || m["active"] != true {
		t.Errorf("introspection at a replica that accepts the secret: %d %v, want active", st, m)
	}
	ex := withA.exchange(c, a, code)
	if ex.Status != http.StatusOK || ex.RefreshToken == "" {
		t.Fatalf("the code at a replica that accepts its secret, after the refusals: %d %s: %s", ex.Status, ex.Error, ex.Description)
	}
	r := withA.refresh(c, tr.RefreshToken)
	if r.Status != http.StatusOK || r.RefreshToken == "" {
		t.Fatalf("the refresh token at a replica that accepts its secret, after the refusals: %d %s: %s", r.Status, r.Error, r.Description)
	}
	// Its successor is the new secret's: the replica that knows only the
	// new secret serves it.
	r = onlyB.refresh(c, r.RefreshToken)
	if r.Status != http.StatusOK {
		t.Fatalf("the successor at the new-secret-only replica: %d %s: %s", r.Status, r.Error, r.Description)
	}
	// Revoking, at that replica, the refresh token of the grant the old
	// secret's code made revokes that grant.
	cid := grantIDOf(t, ex.AccessToken)
	if resp, body := withA.post("/oauth/revoke", c, url.Values{"token": {ex.RefreshToken}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation at a replica that accepts the secret: %d %s", resp.StatusCode, body)
	}
	assertRevoked(t, f, c, cid, []string{ex.RefreshToken}, []string{ex.AccessToken})
}

// TestForgedRefreshTokenWithTheSecretRevokes: what a leaked (current or
// still accepted) TOKEN_HMAC_SECRET gives an attacker who knows a grant
// id (access tokens and audit lines carry it): a refresh token naming
// that grant with a MAC under the secret is authentic, neither the
// grant's current nor its previous token, so the rotation rule takes it
// for reuse and revokes the grant — why key-rotation.md says not to keep
// a leaked secret accepted. It does not give a live token: the forged
// token is refused and the grant's own refresh token is refused after.
// The forged MAC is made with the rotated secret's first 32 bytes only:
// the rest of a secret does not key the HMAC (key-rotation.md).
func TestForgedRefreshTokenWithTheSecretRevokes(t *testing.T) {
	extra, cs := standardsClients(t)
	f := startFleetWith(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA}, extra)
	c := cs["test-nopkce"]
	tr := f.fullFlow(c, newAuthRequest(c))
	id := grantIDOf(t, tr.AccessToken)
	key := append([]byte{byte(len(id))}, id...)
	key = append(key, make([]byte, 32)...)
	m := hmac.New(sha512.New512_256, []byte(hmacBreakA)[:32]) // fosite's key: the secret's first 32 bytes
	m.Write(key)
	forged := "ory_rt_" + base64.RawURLEncoding.EncodeToString(key) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if r := f.refresh(c, forged); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" || r.AccessToken != "" {
		t.Fatalf("forged refresh token: %d %s: %s", r.Status, r.Error, r.Description)
	}
	assertRevoked(t, f, c, id, []string{tr.RefreshToken}, []string{tr.AccessToken})
}

// TestHMACSecretSettingsAtStartup: the operator's mistakes with the token
// HMAC settings, through the real start-up (server.Run) and, where
// accepted, real replicas on one Redis.
//
//   - Refused, naming the setting and never a secret's value (neither in
//     the error nor in anything written while starting): a current or
//     rotated secret under 32 bytes, TOKEN_HMAC_SECRET and its _FILE both
//     set, a _FILE that cannot be read or is empty (TOKEN_HMAC_SECRET_FILE,
//     CLIENT_SECRET_HMAC_KEY_FILE).
//   - Accepted as the same secret: a _FILE ending in "\n" or "\r\n" (the
//     form mounted Secrets usually take) is the secret without it; a
//     rotated list with empty items, a trailing comma or spaces around
//     items is its non-empty items: a replica configured so serves the
//     codes and refresh tokens of a replica with the plain value.
func TestHMACSecretSettingsAtStartup(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA})
	short := "hmac-break-short-secret-31bytes"
	if len(short) != 31 {
		t.Fatalf("short secret of %d bytes", len(short))
	}
	unreadable := filepath.Join(t.TempDir(), "missing")
	empty := writeSecret(t, "\n")
	for _, tc := range []struct {
		name, want string
		env        map[string]string
	}{
		{"short current", "TOKEN_HMAC_SECRET: must be at least 32 bytes", map[string]string{"TOKEN_HMAC_SECRET": short}},
		{"short rotated", "TOKEN_HMAC_SECRETS_ROTATED: every secret must be at least 32 bytes",
			map[string]string{"TOKEN_HMAC_SECRETS_ROTATED": hmacBreakB + "," + short}},
		{"both set", "TOKEN_HMAC_SECRET and TOKEN_HMAC_SECRET_FILE are both set; set one",
			map[string]string{"TOKEN_HMAC_SECRET_FILE": writeSecret(t, hmacBreakB+"\n")}},
		{"file unreadable", "TOKEN_HMAC_SECRET_FILE: cannot read", map[string]string{"TOKEN_HMAC_SECRET": "", "TOKEN_HMAC_SECRET_FILE": unreadable}},
		// A Secret made by a command that failed mounts an empty file:
		// refused, not read as "not set". For the client secret key "not
		// set" started the server on a key derived from TOKEN_HMAC_SECRET,
		// under which no hash of the static registry verifies.
		{"file empty", "TOKEN_HMAC_SECRET_FILE: " + strconv.Quote(empty) + " is empty",
			map[string]string{"TOKEN_HMAC_SECRET": "", "TOKEN_HMAC_SECRET_FILE": empty}},
		{"client secret key file empty", "CLIENT_SECRET_HMAC_KEY_FILE: " + strconv.Quote(empty) + " is empty",
			map[string]string{"CLIENT_SECRET_HMAC_KEY_FILE": empty}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			startRefused(t, f, tc.env, tc.want, hmacBreakA, hmacBreakB, short)
		})
	}

	c := f.Clients["test-public"]
	for name, env := range map[string]map[string]string{
		"file with LF":   {"TOKEN_HMAC_SECRET": "", "TOKEN_HMAC_SECRET_FILE": writeSecret(t, hmacBreakA+"\n")},
		"file with CRLF": {"TOKEN_HMAC_SECRET": "", "TOKEN_HMAC_SECRET_FILE": writeSecret(t, hmacBreakA+"\r\n")},
		"rotated list with empty items and spaces": {"TOKEN_HMAC_SECRET": hmacBreakB,
			"TOKEN_HMAC_SECRETS_ROTATED": " ,, " + hmacBreakA + " ,  ," + hmacBreakB + ","},
	} {
		t.Run(name, func(t *testing.T) {
			g := f.replica(env)
			// A code and a refresh token of f (the plain value) at g, and
			// g's refresh token back at f.
			a := newAuthRequest(c)
			tr := g.exchange(c, a, f.authorize(a))
			if tr.Status != http.StatusOK || tr.RefreshToken == "" {
				t.Fatalf("f's code at g: %d %s: %s", tr.Status, tr.Error, tr.Description)
			}
			first := f.fullFlow(c, newAuthRequest(c))
			r := g.refresh(c, first.RefreshToken)
			if r.Status != http.StatusOK {
				t.Fatalf("f's refresh token at g: %d %s: %s", r.Status, r.Error, r.Description)
			}
			if env["TOKEN_HMAC_SECRET"] == "" { // g's current secret is f's
				if r := f.refresh(c, r.RefreshToken); r.Status != http.StatusOK {
					t.Fatalf("g's refresh token at f: %d %s: %s", r.Status, r.Error, r.Description)
				}
			}
		})
	}
}

// writeSecret writes content to a new file and returns its path.
func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token-hmac-secret")
	writeFile(t, p, content)
	return p
}

// TestHMACSecretEnvNewlineAcrossRotation: TOKEN_HMAC_SECRET given in the
// environment with a trailing newline — as a Kubernetes secretKeyRef of a
// value written from a file gives it — is the secret without it, as
// TOKEN_HMAC_SECRETS_ROTATED's trimmed items and _FILE give it. Moved to
// the rotated list in step 2 it is the same value: codes and refresh
// tokens survive, and so do the client secrets of registrations made
// under it (key-rotation.md). Registrations hashed while the value was
// used with its newline: TestSecretsHMACSecretEnvNewline.
func TestHMACSecretEnvNewlineAcrossRotation(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA + "\n"})
	env := registerConfidential(t, f)
	c := f.Clients["test-public"]
	tr := f.fullFlow(c, newAuthRequest(c))
	viaFile := f.replica(map[string]string{"TOKEN_HMAC_SECRET": "", "TOKEN_HMAC_SECRET_FILE": writeSecret(t, hmacBreakA+"\n")})
	file := registerConfidential(t, viaFile)

	step2 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA + "\n"})
	if r := step2.refresh(c, tr.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("a refresh token of the secret with a newline after step 2: %d %s: %s", r.Status, r.Error, r.Description)
	}
	if !authenticates(t, step2, env) {
		t.Error("a registration under TOKEN_HMAC_SECRET with a trailing newline is refused after step 2")
	}
	if !authenticates(t, step2, file) {
		t.Error("a registration under TOKEN_HMAC_SECRET_FILE (trailing newline trimmed) is refused after step 2")
	}
}

// TestCodeRedeemedAcrossSecretsOnce: one code sent 40 times at once, half
// to a replica of step 1 (the code's secret current: the pooled MAC
// check) and half to a replica of step 2 (the code's secret rotated:
// fosite's check of the rotated secrets), for a code of either secret:
// exactly one 200, every other answer 400 invalid_grant (or 503 from the
// signing queue), and the winner's grant revoked as a replayed code's.
func TestCodeRedeemedAcrossSecretsOnce(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakB})
	step2 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA})
	c := f.Clients["test-public"]
	// f's codes are the old secret's; step2 signs in through f's issuer,
	// so a code of the new secret comes from a login whose callback is
	// served by step2.
	for name, tc := range map[string]struct {
		issue  func(*authRequest) string
		secret string
	}{
		"old secret's code": {f.authorize, hmacBreakA},
		"new secret's code": {func(a *authRequest) string { return callbackAt(t, f, step2, a) }, hmacBreakB},
	} {
		t.Run(name, func(t *testing.T) {
			a := newAuthRequest(c)
			code := tc.issue(a)
			if !macUnder(t, tc.secret, code) {
				t.Fatalf("the code is not MACed with the %s", name)
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			at1 := fire(f, c, a, code, 20, start, &wg)
			at2 := fire(step2, c, a, code, 20, start, &wg)
			close(start)
			wg.Wait()
			w := oneWinner(t, append(at1, at2...))
			if r := f.refresh(c, w.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
				t.Errorf("the winner's refresh token after concurrent reuse of its code: %d %s (want 400 invalid_grant)", r.Status, r.Error)
			}
		})
	}
}

// callbackAt signs in through f (the issuer the IdP redirects to) but
// has the upstream callback served by g: the code is g's.
func callbackAt(t *testing.T, f, g *fleet, a *authRequest) string {
	t.Helper()
	b := newBrowser(t, f.Base+"/oauth/callback", a.RedirectURI)
	p := f.login(b, a)
	if p.Location == nil || !strings.HasSuffix(p.Location.Path, "/oauth/callback") {
		t.Fatalf("want the redirect to the upstream callback, got %d %v", p.Status, p.Location)
	}
	u := *p.Location
	base, _ := url.Parse(g.Base)
	u.Host = base.Host
	p = approveIfAsked(b, a, b.get(u.String()))
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("callback at g: %d %v\n%s", p.Status, p.Location, p.Body)
	}
	return p.Location.Query().Get("code")
}

// macUnder reports whether a fosite HMAC token (<prefix><key>.<mac>) has
// its MAC under secret (its first 32 bytes, fosite's key).
func macUnder(t *testing.T, secret, tok string) bool {
	t.Helper()
	i := strings.IndexByte(tok, '_')
	j := strings.IndexByte(tok[i+1:], '_')
	k, mac, ok := strings.Cut(tok[i+1+j+1:], ".")
	key, err := base64.RawURLEncoding.DecodeString(k)
	if !ok || err != nil {
		t.Fatalf("token %q is not <prefix><key>.<mac>", tok)
	}
	m := hmac.New(sha512.New512_256, []byte(secret)[:32])
	m.Write(key)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)) == mac
}

// TestDCRHashRewrittenUnderExplicitKey: with CLIENT_SECRET_HMAC_KEY set,
// its own rotation (CLIENT_SECRET_HMAC_KEYS_ROTATED) rewrites a used
// registration's hash too: used at a replica of the new key (the old one
// rotated), it authenticates at a replica that has only the new key; an
// unused one is refused there.
func TestDCRHashRewrittenUnderExplicitKey(t *testing.T) {
	const k1, k2 = "hmac-break-client-key-1-0123456789abcdef", "hmac-break-client-key-2-fedcba9876543210"
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA, "CLIENT_SECRET_HMAC_KEY": k1})
	used, idle := registerConfidential(t, f), registerConfidential(t, f)
	rolled := f.replica(map[string]string{"CLIENT_SECRET_HMAC_KEY": k2, "CLIENT_SECRET_HMAC_KEYS_ROTATED": k1})
	if !authenticates(t, rolled, used) {
		t.Fatal("a registration of the rotated key is refused")
	}
	only := f.replica(map[string]string{"CLIENT_SECRET_HMAC_KEY": k2})
	if !authenticates(t, only, used) {
		t.Error("a registration used at a replica of the new key is refused once the old key is dropped")
	}
	if authenticates(t, only, idle) {
		t.Error("an unused registration of a dropped key authenticates")
	}
}
