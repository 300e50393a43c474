package server_test

import (
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestDisconnectCutsTheAppOff (brk45a): docs/guides/connected-apps.md —
// "Which apps can reach my account, and can I cut one off?" A user who
// disconnects an app expects the app to lose access. Every authorization
// makes a grant (a re-link; a client whose consent is remembered makes
// more without showing anything), so disconnecting one grant must end the
// app's other grants of the user too, refresh tokens included, each
// audited; another app's grant of the same user is not touched.
func TestDisconnectCutsTheAppOff(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	a.Scope = "openid connections.read connections.revoke"
	first := f.fullFlow(c, a)
	second := f.fullFlow(c, newAuthRequest(c)) // the same app, linked again
	other := f.Clients["gpt-apps-mcp"]
	kept := f.fullFlow(other, newAuthRequest(other)) // another app
	if first.AccessToken == "" || second.RefreshToken == "" || kept.RefreshToken == "" {
		t.Fatalf("sign-ins: %+v %+v %+v", first, second, kept)
	}

	conn, err := grpc.NewClient(f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grants := authv1.NewGrantsServiceClient(conn)
	firstID, secondID := grantID(t, f, first.AccessToken), grantID(t, f, second.AccessToken)
	if _, err := grants.RevokeGrant(bearer(first.AccessToken), &authv1.RevokeGrantRequest{GrantId: firstID}); err != nil {
		t.Fatal(err)
	}
	if r := f.refresh(c, second.RefreshToken); r.Status == http.StatusOK {
		t.Errorf("after the user disconnected %s, its other grant still refreshes (200): the app keeps access", c.ClientID)
	}
	if st, _ := f.userinfo(second.AccessToken); st == http.StatusOK {
		t.Errorf("after the user disconnected %s, its other grant's access token still works at userinfo", c.ClientID)
	}
	if r := f.refresh(other, kept.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("another app's grant after the disconnect of %s: refresh %d %s, want 200", c.ClientID, r.Status, r.Error)
	}

	sub := audit.HashSubject(idptest.Subject)
	events := auditEvents(t, f)
	for _, want := range []map[string]any{
		{"event": "revocation", "result": "ok", "grant_id": firstID, "client_id": c.ClientID, "subject_hash": sub,
			"token_client_id": c.ClientID, "endpoint": "connections", "reason": "user disconnect"},
		{"event": "revocation", "result": "ok", "grant_id": secondID, "client_id": c.ClientID, "subject_hash": sub,
			"token_client_id": c.ClientID, "endpoint": "connections", "reason": "user disconnect: another grant of the app"},
	} {
		if findEvent(events, want) == nil {
			t.Errorf("no audit event %v", want)
		}
	}
	if e := findEvent(events, map[string]any{"event": "revocation", "client_id": other.ClientID}); e != nil {
		t.Errorf("the disconnect of %s revoked another app's grant: %v", c.ClientID, e["_line"])
	}
}
