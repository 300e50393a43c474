package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// verifierCheck asks one verifier of the fleet about a token and reports
// whether it was accepted, refused as a bad token, or something else.
type verifierCheck struct {
	name  string
	token string
	probe func(ctx context.Context, token string) (accepted, refused bool, detail string)
}

// httpProbe sends method path with the token; 200 is accepted, 401 with
// error="invalid_token" refused. SSE bodies are never read.
func httpProbe(method, path, body string) func(context.Context, string) (bool, bool, string) {
	return func(ctx context.Context, token string) (bool, bool, string) {
		req, _ := http.NewRequestWithContext(ctx, method, fleet.Origin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "application/json, text/event-stream")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, false, err.Error()
		}
		resp.Body.Close()
		challenge := resp.Header.Get("WWW-Authenticate")
		return resp.StatusCode == http.StatusOK,
			resp.StatusCode == http.StatusUnauthorized && strings.Contains(challenge, `error="invalid_token"`),
			fmt.Sprintf("%d %s", resp.StatusCode, challenge)
	}
}

// grpcProbe calls capability-core's GetProfile directly over gRPC.
func grpcProbe(t *testing.T) func(context.Context, string) (bool, bool, string) {
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", fleet.Ports.CoreGRPC), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	id := capabilityv1.NewIdentityServiceClient(conn)
	return func(ctx context.Context, token string) (bool, bool, string) {
		_, err := id.GetProfile(tokens.WithToken(ctx, token), &capabilityv1.GetProfileRequest{})
		return err == nil, status.Code(err) == codes.Unauthenticated, fmt.Sprint(err)
	}
}

// mcpVerifiers are the fleet's verifiers of an MCP token: the gateway's
// two transports, capability-core over gRPC and the auth-server's userinfo.
func mcpVerifiers(t *testing.T, token string) []verifierCheck {
	return []verifierCheck{
		{"POST /mcp", token, httpProbe("POST", "/mcp", initialize)},
		{"GET /sse", token, httpProbe("GET", "/sse", "")},
		{"gRPC GetProfile (MCP token)", token, grpcProbe(t)},
		{"GET /oauth/userinfo (MCP token)", token, httpProbe("GET", "/oauth/userinfo", "")},
	}
}

// actionsVerifiers are the fleet's verifiers of an Actions token.
func actionsVerifiers(t *testing.T, token string) []verifierCheck {
	return []verifierCheck{
		{"GET /actions/profile", token, httpProbe("GET", "/actions/profile", "")},
		{"gRPC GetProfile (Actions token)", token, grpcProbe(t)},
		{"GET /oauth/userinfo (Actions token)", token, httpProbe("GET", "/oauth/userinfo", "")},
	}
}

func acceptedEverywhere(t *testing.T, checks []verifierCheck) {
	t.Helper()
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, _, detail := c.probe(ctx, c.token)
		cancel()
		if !ok {
			t.Fatalf("%s before revocation: %s", c.name, detail)
		}
	}
}

// refusedEverywhereWithin polls each verifier until it refuses the token;
// the 1 s deadline bounds the loop (the promise of docs/reference/oauth.md),
// it is not a measurement.
func refusedEverywhereWithin(t *testing.T, checks []verifierCheck, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, c := range checks {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, refused, detail := c.probe(ctx, c.token)
			cancel()
			if refused {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s still %s %s after the revocation, want a refusal", c.name, detail, within)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// revoke posts to /oauth/revoke as the client (client_secret_post).
func revoke(t *testing.T, clientID, token string) {
	t.Helper()
	c, _ := fleet.Client(clientID)
	form := url.Values{"token": {token}, "client_id": {c.ClientID}, "client_secret": {c.ClientSecret}}
	resp, err := http.PostForm(fleet.Origin+"/oauth/revoke", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

// TestRevocationReachesEveryVerifier: after /oauth/revoke (RFC 7009) of a
// refresh token, the grant's access token is refused within 1 s on /mcp,
// /sse, /actions/profile, a direct gRPC call to capability-core and
// userinfo; another grant of the same user keeps working.
func TestRevocationReachesEveryVerifier(t *testing.T) {
	apps, _ := fleet.Client("gpt-apps-mcp")
	actions, _ := fleet.Client("gpt-actions")
	mcpTok := link(t, "gpt-apps-mcp", apps.Audience, oauth2.AuthStyleInParams)
	actTok := link(t, "gpt-actions", actions.Audience, oauth2.AuthStyleInParams)
	other := link(t, "gpt-actions", actions.Audience, oauth2.AuthStyleInParams)
	mcpChecks, actChecks := mcpVerifiers(t, mcpTok.AccessToken), actionsVerifiers(t, actTok.AccessToken)
	acceptedEverywhere(t, mcpChecks)
	acceptedEverywhere(t, actChecks)

	revoke(t, "gpt-apps-mcp", mcpTok.RefreshToken)
	refusedEverywhereWithin(t, mcpChecks, time.Second)
	revoke(t, "gpt-actions", actTok.AccessToken)
	refusedEverywhereWithin(t, actChecks, time.Second)
	acceptedEverywhere(t, actionsVerifiers(t, other.AccessToken))
}

// TestReplayedCodeRevokesEverywhere: redeeming a code twice revokes what
// the first redemption issued in every verifier, not only at the
// auth-server (OAuth 2.1 §4.1.3).
func TestReplayedCodeRevokesEverywhere(t *testing.T) {
	apps, _ := fleet.Client("gpt-apps-mcp")
	a := authorize(t, "gpt-apps-mcp", apps.Audience, oauth2.AuthStyleInParams)
	tok, err := a.exchange()
	if err != nil {
		t.Fatal(err)
	}
	checks := mcpVerifiers(t, tok.AccessToken)
	acceptedEverywhere(t, checks)
	if _, err := a.exchange(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("replayed code: %v, want invalid_grant", err)
	}
	refusedEverywhereWithin(t, checks, time.Second)
}
