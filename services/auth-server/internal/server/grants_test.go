package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/dev-idp/idptest"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// twoUsers are the dev account and a second user, Eve.
const twoUsers = `users:
  - username: dev
    password: tollgate-dev
    sub: dev-user-0001
    name: Dev User
    email: dev@example.com
    email_verified: true
  - username: eve
    password: eve-password
    sub: eve-user-0002
    name: Eve Other
    email: eve@example.com
    email_verified: true
`

func bearer(tok string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = cancel // the call ends first; the timeout only bounds a hang
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// signInAs runs the authorization request as username and exchanges the code.
func (f *fleet) signInAs(c devClient, a *authRequest, username, password string) tokenResponse {
	f.t.Helper()
	if username == idptest.Username {
		return f.fullFlow(c, a)
	}
	b := newBrowser(f.t, a.RedirectURI)
	p := b.get(a.URL(f.Base))
	p = b.submit(p, url.Values{"username": {username}, "password": {password}})
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		f.t.Fatalf("sign-in as %s: %d %v\n%s", username, p.Status, p.Location, p.Body)
	}
	tr := f.exchange(c, a, p.Location.Query().Get("code"))
	if tr.Status != http.StatusOK {
		f.t.Fatalf("token exchange as %s: %d %s", username, tr.Status, tr.Error)
	}
	return tr
}

// TestConnectedApps: the GrantsService lists and revokes the caller's own
// grants only — the subject is the verified token's — and a revoked grant
// ends at once (refresh refused, userinfo 401).
func TestConnectedApps(t *testing.T) {
	f := newFleet(t, nil, "", true, twoUsers)
	f.start()
	c := f.Clients["local-test"]
	req := func(scope string) *authRequest { a := newAuthRequest(c); a.Scope = scope; return a }
	manage := "openid connections.read connections.revoke"
	dev := f.signInAs(c, req(manage), idptest.Username, idptest.Password)
	// Dev's other grant is another app's: a disconnect ends every grant of
	// the app named (TestDisconnectCutsTheAppOff), and only that app's.
	gpt := f.Clients["gpt-apps-mcp"]
	otherReq := newAuthRequest(gpt)
	otherReq.Scope = "openid profile"
	devOther := f.signInAs(gpt, otherReq, idptest.Username, idptest.Password)
	eve := f.signInAs(c, req(manage), "eve", "eve-password")

	conn, err := grpc.NewClient(f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grants := authv1.NewGrantsServiceClient(conn)

	list, err := grants.ListGrants(bearer(dev.AccessToken), &authv1.ListGrantsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetConnections()) != 2 {
		t.Fatalf("dev's connections = %v, want 2", list.GetConnections())
	}
	var current, other string
	for _, x := range list.GetConnections() {
		if x.GetCurrent() && (x.GetClientId() != "local-test" || x.GetClientName() != "Local test client") ||
			!x.GetCurrent() && (x.GetClientId() != gpt.ClientID || x.GetClientName() == "") ||
			x.GetCreatedAt() == nil || x.GetLastUsedAt() == nil || len(x.GetAudiences()) != 1 || x.GetAudiences()[0] != f.Base+"/mcp" {
			t.Errorf("connection %v", x)
		}
		// Never refreshed: last used when created (the code's redemption),
		// never before it (it read as the authorization request's second).
		if lu, c := x.GetLastUsedAt().AsTime(), x.GetCreatedAt().AsTime(); !lu.Equal(c) {
			t.Errorf("connection %s: last_used_at %s, created_at %s: want equal for a grant never refreshed", x.GetGrantId(), lu, c)
		}
		if x.GetCurrent() {
			current = x.GetGrantId()
			if strings.Join(x.GetScopes(), " ") != manage {
				t.Errorf("current grant scopes %v", x.GetScopes())
			}
		} else {
			other = x.GetGrantId()
		}
	}
	if current == "" || other == "" {
		t.Fatalf("current %q other %q: want exactly one current grant", current, other)
	}
	eveList, err := grants.ListGrants(bearer(eve.AccessToken), &authv1.ListGrantsRequest{})
	if err != nil || len(eveList.GetConnections()) != 1 || eveList.GetConnections()[0].GetGrantId() == current || eveList.GetConnections()[0].GetGrantId() == other {
		t.Fatalf("eve's connections = %v, %v: want her one grant only", eveList.GetConnections(), err)
	}

	// Eve cannot revoke dev's grant: NotFound, as for an unknown id.
	for _, id := range []string{other, "no-such-grant"} {
		if _, err := grants.RevokeGrant(bearer(eve.AccessToken), &authv1.RevokeGrantRequest{GrantId: id}); status.Code(err) != codes.NotFound {
			t.Errorf("eve revoking %s: %v, want NotFound", id, err)
		}
	}
	if st, _ := f.userinfo(devOther.AccessToken); st != http.StatusOK {
		t.Errorf("dev's grant after eve's attempt: userinfo %d", st)
	}
	// Refusals: no token, a token without the scope, no grant id.
	if _, err := grants.ListGrants(context.Background(), &authv1.ListGrantsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	if _, err := grants.ListGrants(bearer(devOther.AccessToken), &authv1.ListGrantsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("list without connections.read: %v, want PermissionDenied", err)
	}
	if _, err := grants.RevokeGrant(bearer(devOther.AccessToken), &authv1.RevokeGrantRequest{GrantId: other}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("revoke without connections.revoke: %v, want PermissionDenied", err)
	}
	if _, err := grants.RevokeGrant(bearer(dev.AccessToken), &authv1.RevokeGrantRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no grant id: %v, want InvalidArgument", err)
	}
	// A malformed id is nobody's grant: InvalidArgument saying what a grant
	// id is, without echoing the value, and where to get one by the names
	// the caller knows: the Actions operation (the actions-api passes the
	// message on; it named only the MCP tool before) and the MCP tool.
	for _, id := range []string{strings.Repeat("a", 3000), "..%2F..", "g g", "\x00"} {
		_, err := grants.RevokeGrant(bearer(dev.AccessToken), &authv1.RevokeGrantRequest{GrantId: id})
		msg := status.Convert(err).Message()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, "grant_id is not a grant id") || strings.Contains(msg, id) ||
			!strings.Contains(msg, "listConnections (GET /actions/connections)") || !strings.Contains(msg, "MCP tool connections.list") {
			t.Errorf("malformed grant id %.20q: %v, want InvalidArgument without the value", id, err)
		}
	}

	// Dev revokes the other grant: it ends at once, and only it.
	out, err := grants.RevokeGrant(bearer(dev.AccessToken), &authv1.RevokeGrantRequest{GrantId: other})
	if err != nil || !out.GetRevoked() || out.GetGrantId() != other {
		t.Fatalf("revoke: %v %v", out, err)
	}
	if st, _ := f.userinfo(devOther.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("revoked grant's access token: userinfo %d, want 401", st)
	}
	if r := f.refresh(gpt, devOther.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("revoked grant's refresh token: %d %s, want invalid_grant", r.Status, r.Error)
	}
	if st, _ := f.userinfo(dev.AccessToken); st != http.StatusOK {
		t.Errorf("the other grant after the revocation: userinfo %d", st)
	}
	if _, err := grants.RevokeGrant(bearer(dev.AccessToken), &authv1.RevokeGrantRequest{GrantId: other}); status.Code(err) != codes.NotFound {
		t.Errorf("revoking again: %v, want NotFound", err)
	}
	list, err = grants.ListGrants(bearer(dev.AccessToken), &authv1.ListGrantsRequest{})
	if err != nil || len(list.GetConnections()) != 1 || list.GetConnections()[0].GetGrantId() != current {
		t.Errorf("after the revocation: %v %v", list.GetConnections(), err)
	}
	// A refresh keeps the grant, moves its last use, and stays listed.
	r := f.refresh(c, dev.RefreshToken)
	if r.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.Status, r.Error)
	}
	list, err = grants.ListGrants(bearer(r.AccessToken), &authv1.ListGrantsRequest{})
	if err != nil || len(list.GetConnections()) != 1 || !list.GetConnections()[0].GetCurrent() {
		t.Errorf("after a refresh: %v %v", list.GetConnections(), err)
	}
}

// TestDisconnectFailsUntilConsentIsForgotten: disconnecting an app whose
// remembered consent cannot be forgotten (Redis refuses the consent key's
// write: an ACL makes it read-only) is reported — Unavailable, the grant
// still live and listed — and not answered "revoked" while the app could
// get a new grant without the consent page; the retry once Redis takes the
// write again revokes the grant and forgets the consent.
func TestDisconnectFailsUntilConsentIsForgotten(t *testing.T) {
	f := startFleetWith(t, nil, "")
	local := f.Clients["local-test"]
	a := newAuthRequest(local)
	a.Scope = "openid connections.read connections.revoke"
	mgr := f.signInAs(local, a, idptest.Username, idptest.Password)

	// The app: a registered client, which needs the user's consent.
	redirect := "http://127.0.0.1:8976/disconnect-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Disconnect client","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	app := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	request := func() *authRequest { a := newAuthRequest(app); a.Resource = f.Base + "/mcp"; return a }
	a = request()
	b, p := consentPage(t, f, a)
	tr := f.exchange(app, a, approve(t, b, p))
	if tr.Status != http.StatusOK {
		t.Fatalf("app token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	_, info := f.userinfo(tr.AccessToken)
	sub, _ := info["sub"].(string)
	rdb := f.Redis.Client()
	consent := "tollgate:as:consent:" + redisx.Hash(redisx.Hash(sub)+":"+redisx.Hash(app.ClientID))
	if n, err := rdb.Exists(context.Background(), consent).Result(); err != nil || n != 1 {
		t.Fatalf("the app's consent %s: exists %d %v, want remembered", consent, n, err)
	}

	conn, err := grpc.NewClient(f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grants := authv1.NewGrantsServiceClient(conn)
	appGrants := func() []string {
		t.Helper()
		list, err := grants.ListGrants(bearer(mgr.AccessToken), &authv1.ListGrantsRequest{})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		var ids []string
		for _, x := range list.GetConnections() {
			if x.GetClientId() == app.ClientID {
				ids = append(ids, x.GetGrantId())
			}
		}
		return ids
	}
	ids := appGrants()
	if len(ids) != 1 {
		t.Fatalf("the app's grants: %v, want one", ids)
	}
	id := ids[0]

	// Consent keys (tollgate:as:consent:*) become read-only; every other
	// key stays writable.
	restore := f.Redis.RestrictKeys(t, "tollgate:as:consent:", "%R")
	_, err = grants.RevokeGrant(bearer(mgr.AccessToken), &authv1.RevokeGrantRequest{GrantId: id})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("disconnect while the consent cannot be forgotten: %v, want Unavailable", err)
	}
	restore()
	if ids := appGrants(); len(ids) != 1 || ids[0] != id {
		t.Fatalf("after the failed disconnect: the app's grants %v, want %s still listed (a retry finds it)", ids, id)
	}

	// The retry completes it.
	out, err := grants.RevokeGrant(bearer(mgr.AccessToken), &authv1.RevokeGrantRequest{GrantId: id})
	if err != nil || !out.GetRevoked() {
		t.Fatalf("retry: %v %v", out, err)
	}
	if ids := appGrants(); len(ids) != 0 {
		t.Errorf("after the retry: the app's grants %v, want none", ids)
	}
	if r := f.refresh(app, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("the app's refresh token after the retry: %d %s, want invalid_grant", r.Status, r.Error)
	}
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("the app's access token after the retry: userinfo %d, want 401", st)
	}
	if n, err := rdb.Exists(context.Background(), consent).Result(); err != nil || n != 0 {
		t.Errorf("the app's consent after the retry: exists %d %v, want forgotten", n, err)
	}
	if p := f.login(newBrowser(t, redirect), request()); p.Location != nil || !strings.Contains(p.Body, `value="approve"`) {
		t.Errorf("the app's next authorization: %d %v, want the consent page", p.Status, p.Location)
	}
}

// TestDisconnectAudited: a user's disconnect (GrantsService.RevokeGrant,
// which DELETE /actions/connections/{grant} and the MCP tool
// connections.revoke call) writes a revocation record naming who
// disconnected what — the subject's hash, the revoked grant and its
// client, the app whose token asked, the endpoint and the reason — and a
// refused disconnect (another subject's grant) revokes nothing and is
// recorded as refused: result not_found, the caller's subject hash, the
// grant id asked for, no client_id.
func TestDisconnectAudited(t *testing.T) {
	f := newFleet(t, nil, "", true, twoUsers)
	f.start()
	c := f.Clients["local-test"]
	req := func(scope string) *authRequest { a := newAuthRequest(c); a.Scope = scope; return a }
	dev := f.signInAs(c, req("openid connections.read connections.revoke"), idptest.Username, idptest.Password)
	devOther := f.signInAs(c, req("openid profile"), idptest.Username, idptest.Password)
	eve := f.signInAs(c, req("openid connections.read connections.revoke"), "eve", "eve-password")

	conn, err := grpc.NewClient(f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grants := authv1.NewGrantsServiceClient(conn)
	other := ""
	list, err := grants.ListGrants(bearer(dev.AccessToken), &authv1.ListGrantsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list.GetConnections() {
		if !x.GetCurrent() {
			other = x.GetGrantId()
		}
	}
	if other == "" {
		t.Fatalf("no other grant in %v", list.GetConnections())
	}
	if _, err := grants.RevokeGrant(bearer(eve.AccessToken), &authv1.RevokeGrantRequest{GrantId: other}); status.Code(err) != codes.NotFound {
		t.Fatalf("eve revoking dev's grant: %v, want NotFound", err)
	}
	if e := findEvent(auditEvents(t, f), map[string]any{"event": "revocation", "grant_id": other, "result": "ok"}); e != nil {
		t.Errorf("a refused disconnect wrote a revocation record of success: %s", e["_line"])
	}
	refused := findEvent(auditEvents(t, f), map[string]any{"event": "revocation", "grant_id": other, "result": "not_found"})
	if refused == nil {
		t.Fatalf("no record of eve's refused disconnect of %s", other)
	}
	for k, v := range map[string]any{"subject_hash": audit.HashSubject("eve-user-0002"), "token_client_id": "local-test",
		"endpoint": "connections", "reason": "user disconnect: not one of the user's live grants"} {
		if refused[k] != v {
			t.Errorf("refused disconnect record %s = %v, want %v\n%s", k, refused[k], v, refused["_line"])
		}
	}
	if _, ok := refused["client_id"]; ok {
		t.Errorf("refused disconnect record names a client_id (dev's grant's): %s", refused["_line"])
	}
	// The calling service propagates the request id in x-request-id metadata.
	ctx := metadata.AppendToOutgoingContext(bearer(dev.AccessToken), "x-request-id", "fixaudit-disconnect-1")
	if _, err := grants.RevokeGrant(ctx, &authv1.RevokeGrantRequest{GrantId: other}); err != nil {
		t.Fatal(err)
	}
	_ = devOther
	want := map[string]any{"request_id": "fixaudit-disconnect-1",
		"event": "revocation", "result": "ok", "grant_id": other, "subject_hash": audit.HashSubject(idptest.Subject),
		"client_id": "local-test", "client_authenticated": false, "token_client_id": "local-test",
		"endpoint": "connections", "reason": "user disconnect",
	}
	e := findEvent(auditEvents(t, f), map[string]any{"event": "revocation", "grant_id": other, "result": "ok"})
	if e == nil {
		t.Fatalf("no revocation record for the disconnected grant %s", other)
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("disconnect record %s = %v, want %v\n%s", k, e[k], v, e["_line"])
		}
	}
}

// TestAuditRecordsCarryTheRequestID: an HTTP request's audit record
// carries its X-Request-Id (TestDisconnectAudited: a gRPC call's, from
// x-request-id metadata).
func TestAuditRecordsCarryTheRequestID(t *testing.T) {
	f := newFleet(t, nil, "", true)
	f.start()
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/token", strings.NewReader(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "client_id": {"local-test"}, "client_secret": {"wrong"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-Id", "fixaudit-token-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token request with a wrong secret: %d", resp.StatusCode)
	}
	want := map[string]any{"event": "client_authentication_failure", "client_id": "local-test", "request_id": "fixaudit-token-1"}
	if findEvent(auditEvents(t, f), want) == nil {
		t.Errorf("no audit event %v", want)
	}
}

// TestSwappedSecretNotLogged: an operator who swapped client_id and
// client_secret sends the client's generated secret as client_id; neither
// the service log nor the audit log repeats it, at any level.
func TestSwappedSecretNotLogged(t *testing.T) {
	f := startFleet(t, map[string]string{"LOG_LEVEL": "debug"})
	st, reg := register(t, f, `{"redirect_uris":["http://127.0.0.1:8985/cb"],"token_endpoint_auth_method":"client_secret_post"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "client_id": {secret}, "client_secret": {id}}
	resp, err := http.PostForm(f.Base+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("swapped fields: %d, want 401", resp.StatusCode)
	}
	if findEvent(auditEvents(t, f), map[string]any{"event": "client_authentication_failure", "client_id": "[REDACTED]"}) == nil {
		t.Error("no client_authentication_failure record with the claimed id redacted")
	}
	for _, line := range strings.Split(f.AS.Logs.String(), "\n") {
		if strings.Contains(line, secret) {
			t.Errorf("client secret in the log: %.300s", line)
		}
	}
}

// TestConsentRevocationAudited: POST /oauth/consent/revoke writes a
// consent_revocation record — subject, the client named, the token's
// client, the outcome, the request id — a refused request (no client_id)
// too.
func TestConsentRevocationAudited(t *testing.T) {
	f := newFleet(t, nil, "", true, twoUsers)
	f.start()
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	a.Scope = "openid profile"
	dev := f.signInAs(c, a, idptest.Username, idptest.Password)
	send := func(path, rid, auth string, form url.Values) int {
		req, _ := http.NewRequest(http.MethodPost, f.Base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Request-Id", rid)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := send("/oauth/consent/revoke", "fixaudit-consent-1", "Bearer "+dev.AccessToken, url.Values{"client_id": {"local-test"}}); st != http.StatusNoContent {
		t.Fatalf("consent revoke: %d", st)
	}
	if st := send("/oauth/consent/revoke", "fixaudit-consent-2", "Bearer "+dev.AccessToken, url.Values{}); st != http.StatusBadRequest {
		t.Fatalf("consent revoke without client_id: %d", st)
	}
	events := auditEvents(t, f)
	sub := audit.HashSubject(idptest.Subject)
	for _, want := range []map[string]any{
		{"event": "consent_revocation", "result": "ok", "client_id": "local-test", "client_authenticated": false, "token_client_id": "local-test",
			"subject_hash": sub, "client_address": "127.0.0.1", "endpoint": "consent", "request_id": "fixaudit-consent-1"},
		{"event": "consent_revocation", "result": "invalid_request", "subject_hash": sub, "request_id": "fixaudit-consent-2"},
	} {
		if findEvent(events, want) == nil {
			t.Errorf("no audit event %v", want)
		}
	}
}
