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
	"github.com/tollgate/tollgate/services/dev-idp/idptest"
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
	devOther := f.signInAs(c, req("openid profile"), idptest.Username, idptest.Password)
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
		if x.GetClientId() != "local-test" || x.GetClientName() != "Local test client" || x.GetCreatedAt() == nil || x.GetLastUsedAt() == nil ||
			len(x.GetAudiences()) != 1 || x.GetAudiences()[0] != f.Base+"/mcp" {
			t.Errorf("connection %v", x)
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
	// id is, without echoing the value.
	for _, id := range []string{strings.Repeat("a", 3000), "..%2F..", "g g", "\x00"} {
		_, err := grants.RevokeGrant(bearer(dev.AccessToken), &authv1.RevokeGrantRequest{GrantId: id})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "grant_id is not a grant id") || strings.Contains(status.Convert(err).Message(), id) {
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
	if r := f.refresh(c, devOther.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
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
