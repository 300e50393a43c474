package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	"github.com/tollgate/tollgate/services/dev-idp/idptest"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// issuerChange is a fleet signed in through its dev IdP (issuer A) and a
// second dev IdP (issuer B) whose dev account has the same sub,
// dev-user-0001: another provider whose user shares a subject with one of
// the first's.
type issuerChange struct {
	f   *fleet
	b   *idptest.IdP
	app devClient // a self-registered confidential client: it asks consent
}

func newIssuerChange(t *testing.T) *issuerChange {
	t.Helper()
	f := startFleet(t, nil)
	c := &issuerChange{f: f, b: idptest.Start(t, idptest.Options{PublicIssuerURL: f.Base})}
	redirect := "http://127.0.0.1:8976/issuer-change"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"client_secret_basic","client_name":"Issuer change client","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c.app = devClient{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), RedirectURIs: []string{redirect}, AuthMethod: "client_secret_basic"}
	return c
}

func (c *issuerChange) request() *authRequest {
	a := newAuthRequest(c.app)
	a.Resource = c.f.Base + "/mcp"
	return a
}

// consented signs the dev user in to the app, approving its consent page,
// and checks that the approval is remembered (a second sign-in asks no
// more).
func (c *issuerChange) consented(t *testing.T) tokenResponse {
	t.Helper()
	a := c.request()
	b, p := consentPage(t, c.f, a)
	tr := c.f.exchange(c.app, a, approve(t, b, p))
	if tr.Status != http.StatusOK || tr.RefreshToken == "" {
		t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	if p := c.f.login(newBrowser(t, a.RedirectURI), c.request()); p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("second sign-in at A: %d %v, want a code without the consent page", p.Status, p.Location)
	}
	return tr
}

// switchTo restarts the auth-server with B as UPSTREAM_ISSUER_URL, and env.
func (c *issuerChange) switchTo(env map[string]string) {
	env["UPSTREAM_ISSUER_URL"], env["UPSTREAM_CLIENT_SECRET"] = c.b.Issuer, c.b.ClientSecret
	c.f.restart(env)
}

// manage signs the dev user in with local-test (no consent page) for the
// connected-apps scopes.
func (c *issuerChange) manage(t *testing.T) tokenResponse {
	t.Helper()
	a := newAuthRequest(c.f.Clients["local-test"])
	a.Scope = "openid connections.read connections.revoke"
	return c.f.fullFlow(c.f.Clients["local-test"], a)
}

// connections lists the grants the holder of tok sees as theirs.
func (c *issuerChange) connections(t *testing.T, tok string) (authv1.GrantsServiceClient, []string) {
	t.Helper()
	conn, err := grpc.NewClient(c.f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	grants := authv1.NewGrantsServiceClient(conn)
	list, err := grants.ListGrants(bearer(tok), &authv1.ListGrantsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range list.GetConnections() {
		ids = append(ids, x.GetGrantId())
	}
	return grants, ids
}

func (c *issuerChange) introspect(t *testing.T, tok string) bool {
	t.Helper()
	resp, body := c.f.post("/oauth/introspect", c.app, url.Values{"token": {tok}})
	var m struct {
		Active bool `json:"active"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &m) != nil {
		t.Fatalf("introspection: %d %s", resp.StatusCode, body)
	}
	return m.Active
}

// grantID is the grant_id claim of an access token.
func grantID(t *testing.T, f *fleet, at string) string {
	t.Helper()
	p, err := f.Verifier(f.Base+"/mcp", f.Base+"/actions").Verify(ctxT(t), at)
	if err != nil {
		t.Fatal(err)
	}
	return p.GrantID
}

// TestUpstreamChangeEndsOldGrants: after UPSTREAM_ISSUER_URL names another
// provider (B), whose user has the sub a user of the former one (A) had,
// nothing of A's user is B's user's (OpenID Connect Core §2: sub is unique
// within its issuer). A's grant refreshes no more — 400 invalid_grant
// naming the reason — and is revoked then: its access token, accepted by
// the connectors until that refresh, is refused by them (the revocation
// announced fleet-wide), as at userinfo and introspection from the
// restart on; A's user's consent does not spare B's user the consent
// page; B's user's connected apps do not list A's grants, nor can B's
// user revoke them.
func TestUpstreamChangeEndsOldGrants(t *testing.T) {
	c := newIssuerChange(t)
	f := c.f
	old := c.consented(t)
	oldManage := c.manage(t)
	oldManageID := grantID(t, f, oldManage.AccessToken)

	c.switchTo(map[string]string{})
	gw := connector(t, f, f.Base+"/mcp")
	if st, ch := call(t, gw, old.AccessToken); st != http.StatusOK {
		t.Fatalf("A's access token at a connector before any refresh: %d %s, want 200 (it lives until it expires)", st, ch)
	}
	if st, _ := f.userinfo(old.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("A's access token at userinfo: %d, want 401", st)
	}
	if c.introspect(t, old.AccessToken) {
		t.Error("A's access token introspected active")
	}

	tr := f.refresh(c.app, old.RefreshToken)
	if tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" || !strings.Contains(tr.Description, "UPSTREAM_ISSUER_URL") {
		t.Fatalf("refresh of A's grant: %d %s %q, want 400 invalid_grant naming UPSTREAM_ISSUER_URL", tr.Status, tr.Error, tr.Description)
	}
	testharness.Eventually(t, 20*time.Second, "the connector refuses A's revoked access token", func() (bool, string) {
		st, ch := call(t, gw, old.AccessToken)
		return st == http.StatusUnauthorized, ch
	})
	if tr := f.refresh(c.app, old.RefreshToken); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("second refresh of A's grant: %d %s", tr.Status, tr.Error)
	}
	// The consent A's user gave does not count for B's.
	a := c.request()
	b, p := consentPage(t, f, a)
	now := f.exchange(c.app, a, approve(t, b, p))
	if now.Status != http.StatusOK {
		t.Fatalf("B's user's token: %d %s", now.Status, now.Error)
	}
	if tr := f.refresh(c.app, now.RefreshToken); tr.Status != http.StatusOK {
		t.Errorf("refresh of B's grant: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	// Connected apps: A's grant (live, never refreshed) is not B's user's.
	newManage := c.manage(t)
	grants, ids := c.connections(t, newManage.AccessToken)
	if slices.Contains(ids, oldManageID) || len(ids) != 2 {
		t.Errorf("B's user's connections %v: want B's two grants, not A's %s", ids, oldManageID)
	}
	if _, err := grants.RevokeGrant(bearer(newManage.AccessToken), &authv1.RevokeGrantRequest{GrantId: oldManageID}); status.Code(err) != codes.NotFound {
		t.Errorf("B's user revoking A's grant: %v, want NotFound", err)
	}
}

// TestUpstreamPreviousIssuerKeepsGrants: with A in
// UPSTREAM_PREVIOUS_ISSUERS (its users are B's: the same provider at a new
// address), A's grants refresh, A's user's consent counts, and the
// connected apps list A's grants.
func TestUpstreamPreviousIssuerKeepsGrants(t *testing.T) {
	c := newIssuerChange(t)
	f := c.f
	old := c.consented(t)
	oldManageID := grantID(t, f, c.manage(t).AccessToken)

	c.switchTo(map[string]string{"UPSTREAM_PREVIOUS_ISSUERS": f.IdP.Issuer})
	if tr := f.refresh(c.app, old.RefreshToken); tr.Status != http.StatusOK {
		t.Fatalf("refresh of A's grant: %d %s %s, want 200", tr.Status, tr.Error, tr.Description)
	}
	if st, _ := f.userinfo(old.AccessToken); st != http.StatusOK {
		t.Errorf("A's access token at userinfo: %d, want 200", st)
	}
	if p := f.login(newBrowser(t, c.app.RedirectURIs[0]), c.request()); p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("sign-in at B: %d %v, want a code without the consent page", p.Status, p.Location)
	}
	if _, ids := c.connections(t, c.manage(t).AccessToken); !slices.Contains(ids, oldManageID) {
		t.Errorf("connections %v lack A's grant %s", ids, oldManageID)
	}
}

// TestUpstreamChangeKeepsGrantsWithoutIssuer: a grant written before
// grants recorded their upstream issuer (its record without one) cannot
// be told apart and still refreshes after the change; a consent
// remembered without an issuer does not count: the page is shown once.
func TestUpstreamChangeKeepsGrantsWithoutIssuer(t *testing.T) {
	c := newIssuerChange(t)
	f := c.f
	old := c.consented(t)
	rdb := f.Redis.Client()
	ctx := ctxT(t)
	key := "tollgate:as:grant2:{" + grantID(t, f, old.AccessToken) + "}"
	rec, err := rdb.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	ui := `,"ui":` + mustJSON(f.IdP.Issuer)
	if !strings.Contains(rec, ui) {
		t.Fatalf("grant record lacks %s:\n%s", ui, rec)
	}
	if err := rdb.SetArgs(ctx, key, strings.Replace(rec, ui, "", 1), redis.SetArgs{KeepTTL: true}).Err(); err != nil {
		t.Fatal(err)
	}
	consents, err := rdb.Keys(ctx, "tollgate:as:consent:*").Result()
	if err != nil || len(consents) != 1 {
		t.Fatalf("consent keys %v %v", consents, err)
	}
	var cr map[string]any
	js, err := rdb.Get(ctx, consents[0]).Result()
	if err != nil || json.Unmarshal([]byte(js), &cr) != nil || cr["iss"] != f.IdP.Issuer {
		t.Fatalf("consent record %s %v: want iss %s", js, err, f.IdP.Issuer)
	}
	delete(cr, "iss")
	if err := rdb.SetArgs(ctx, consents[0], mustJSON(cr), redis.SetArgs{KeepTTL: true}).Err(); err != nil {
		t.Fatal(err)
	}

	c.switchTo(map[string]string{})
	if tr := f.refresh(c.app, old.RefreshToken); tr.Status != http.StatusOK {
		t.Fatalf("refresh of a grant without an issuer: %d %s %s, want 200", tr.Status, tr.Error, tr.Description)
	}
	consentPage(t, f, c.request())
}

// TestUpstreamChangeOldTokenSeesNoNewUsersGrants (review44): after the
// switch to B, A's user's connected-apps access token (still valid: it
// lives until it expires) must not list or revoke B's user's grants, who
// has the same sub: they are another user's (OpenID Connect Core §2).
func TestUpstreamChangeOldTokenSeesNoNewUsersGrants(t *testing.T) {
	c := newIssuerChange(t)
	f := c.f
	oldManage := c.manage(t)

	c.switchTo(map[string]string{})
	newManage := c.manage(t) // B's user, same sub
	newID := grantID(t, f, newManage.AccessToken)

	oldTokenManagesNoNewGrants(t, f, oldManage.AccessToken, newManage.AccessToken, newID, "", "its grant is of an issuer no longer accepted")
}

// review45: the purge that docs/guides/upstream-idp.md ("Optional cleanup",
// step 2) advises when the provider changes deletes the old grants' records
// but revokes none of their access tokens, which stay valid JWTs until
// they expire (ACCESS_TOKEN_TTL). Connected apps used to take a token
// whose grant record is gone as the user's, so A's user's connected-apps
// token, whose grant was purged, listed and revoked the grants of B's
// user with the same sub (OpenID Connect Core §2) — what
// TestUpstreamChangeOldTokenSeesNoNewUsersGrants guards against without
// the purge.
func TestUpstreamChangePurgedOldTokenSeesNoNewUsersGrants(t *testing.T) {
	c := newIssuerChange(t)
	f := c.f
	oldManage := c.manage(t)

	// The guide's purge: auth-server stopped, per-user keys deleted, the
	// new UPSTREAM_* settings, started again.
	rdb := f.Redis.Client()
	ctx := ctxT(t)
	for _, pattern := range []string{"as:grant2:*", "as:grant:*", "as:code:*", "as:subject-codes:*", "as:subject-grants:*", "as:subject-sweep:*", "as:consent:*", "as:pending:*", "as:consent-req:*"} {
		keys, err := rdb.Keys(ctx, "tollgate:"+pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.switchTo(map[string]string{})
	newManage := c.manage(t) // B's user, same sub
	newID := grantID(t, f, newManage.AccessToken)

	oldTokenManagesNoNewGrants(t, f, oldManage.AccessToken, newManage.AccessToken, newID, "after the purge, ", "its grant is gone")

	// The guide's other claims for the purge: the old grant's refresh
	// token gets invalid_grant, userinfo and introspection refuse its
	// access token.
	local := f.Clients["local-test"]
	if r := f.refresh(local, oldManage.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("after the purge, A's user's refresh token: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
	if st, _ := f.userinfo(oldManage.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("after the purge, userinfo with A's user's access token: %d, want 401", st)
	}
	resp, body := f.post("/oauth/introspect", local, url.Values{"token": {oldManage.AccessToken}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"active":false`) {
		t.Errorf("after the purge, introspection of A's user's access token: %d %s, want active false", resp.StatusCode, body)
	}
	if st, _ := f.userinfo(newManage.AccessToken); st != http.StatusOK {
		t.Errorf("userinfo with B's user's access token: %d, want 200", st)
	}
}

// oldTokenManagesNoNewGrants: connected apps refuse A's user's access token
// oldTok (Unauthenticated, because why) for listing and for revoking B's
// user's grant newID, and B's user (newTok) still lists exactly that grant.
// when prefixes the failures ("after the purge, ").
func oldTokenManagesNoNewGrants(t *testing.T, f *fleet, oldTok, newTok, newID, when, why string) {
	t.Helper()
	conn, err := grpc.NewClient(f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	grants := authv1.NewGrantsServiceClient(conn)
	list, err := grants.ListGrants(bearer(oldTok), &authv1.ListGrantsRequest{})
	for _, x := range list.GetConnections() {
		if x.GetGrantId() == newID {
			t.Errorf("%sA's user's access token lists B's user's grant %s", when, newID)
		}
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("%sA's user's token listing connected apps: %v, want Unauthenticated (%s)", when, err, why)
	}
	if _, err := grants.RevokeGrant(bearer(oldTok), &authv1.RevokeGrantRequest{GrantId: newID}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("%sA's user's access token revoking B's user's grant %s: %v, want Unauthenticated", when, newID, err)
	}
	// B's user still has the grant, and manages it.
	if list, err := grants.ListGrants(bearer(newTok), &authv1.ListGrantsRequest{}); err != nil || len(list.GetConnections()) != 1 || list.GetConnections()[0].GetGrantId() != newID {
		t.Errorf("%sB's user's connected apps: %v, %v: want the one grant %s", when, list.GetConnections(), err, newID)
	}
}
