package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

// revocationPromise is the fleet's documented bound: a revoked grant's
// tokens are refused at every verifier within a second of the revocation
// (docs/reference/oauth.md, "What a revocation reaches, and how fast";
// docs/security.md).
const revocationPromise = time.Second

// revocationSlack is added to the promise for the machine the test runs
// on, not for the fleet: CI and make test run the e2e fleet on a shared
// 2-core machine beside other test binaries (load 20–30), where a
// process's wake-up — the verifier's on the announcement, the test's own —
// can lag by hundreds of milliseconds. A request sent later than
// promise + slack after the revocation's response and still not refused
// fails the test; the observed latency of every verifier is printed
// either way, so a drift towards the promise shows before it breaks.
const revocationSlack = time.Second

// refusedEverywhereWithinPromise polls every verifier of checks at once,
// each until it refuses the token, and fails the test for each one that
// still did not refuse a request sent more than revocationPromise +
// revocationSlack after since — the moment the revocation's response had
// arrived (the revoking auth-server announces the revocation before it
// answers, so counting from the response never counts too much). It logs
// each verifier's observed latency: between the last request not refused
// and the first one refused, both counted from since at their sending.
func refusedEverywhereWithinPromise(t testing.TB, checks []verifierCheck, since time.Time) {
	t.Helper()
	bound := revocationPromise + revocationSlack
	type outcome struct {
		refused          bool
		sent, answered   time.Duration // the last request's, from since
		lastNotRefused   time.Duration // -1: none
		lastNotRefusedAs string
	}
	outcomes := make([]outcome, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := outcome{lastNotRefused: -1}
			for {
				o.sent = time.Since(since)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, refused, detail := c.probe(ctx, c.token)
				cancel()
				o.answered = time.Since(since)
				if refused {
					o.refused = true
					break
				}
				o.lastNotRefused, o.lastNotRefusedAs = o.sent, detail
				if o.sent > bound {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			outcomes[i] = o
		}()
	}
	wg.Wait()
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	for i, o := range outcomes {
		name := checks[i].name
		if !o.refused {
			t.Errorf("%s: a request sent %s after the revocation's response was answered %s, not refused: the promise is %s (+ %s slack for a loaded test machine)",
				name, ms(o.lastNotRefused), o.lastNotRefusedAs, revocationPromise, revocationSlack)
			continue
		}
		if o.lastNotRefused < 0 {
			t.Logf("%s: refused from the first request, sent %s after the revocation's response (answered at %s)", name, ms(o.sent), ms(o.answered))
			continue
		}
		t.Logf("%s: refused after %s–%s (last request not refused sent at %s: %s; first refused sent at %s, answered at %s; promise %s)",
			name, ms(o.lastNotRefused), ms(o.sent), ms(o.lastNotRefused), o.lastNotRefusedAs, ms(o.sent), ms(o.answered), revocationPromise)
	}
}

// promiseRecorder is a testing.TB that records what
// refusedEverywhereWithinPromise reports instead of failing the test.
type promiseRecorder struct {
	testing.TB
	mu         sync.Mutex
	errs, logs []string
}

func (r *promiseRecorder) Helper() {}
func (r *promiseRecorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *promiseRecorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

// TestRevocationPromiseCheck: the check the revocation tests use fails a
// verifier that still does not refuse a request sent after the promised
// second and its slack, saying how late that request was; passes one that
// refuses within them, printing its latency; and counts from the moment
// it is given (the revocation's response), not from its own call.
func TestRevocationPromiseCheck(t *testing.T) {
	refusingAfter := func(at time.Time) func(context.Context, string) (bool, bool, string) {
		return func(context.Context, string) (bool, bool, string) {
			if !time.Now().Before(at) {
				return false, true, "401 invalid_token"
			}
			return true, false, "200"
		}
	}
	start := time.Now()
	r := &promiseRecorder{TB: t}
	refusedEverywhereWithinPromise(r, []verifierCheck{
		{"at once", "", refusingAfter(start)},
		{"after 300ms", "", refusingAfter(start.Add(300 * time.Millisecond))},
		{"never", "", refusingAfter(start.Add(time.Hour))},
	}, start)
	bound := revocationPromise + revocationSlack
	if len(r.errs) != 1 || !strings.HasPrefix(r.errs[0], "never: a request sent ") ||
		!strings.Contains(r.errs[0], "after the revocation's response was answered 200, not refused: the promise is 1s (+ 1s slack") {
		t.Errorf("failures %q, want one for the verifier that never refuses", r.errs)
	} else {
		d, _ := time.ParseDuration(strings.Fields(strings.TrimPrefix(r.errs[0], "never: a request sent "))[0])
		if d <= bound {
			t.Errorf("the failing request was sent %s after the revocation, not after the bound %s: %s", d, bound, r.errs[0])
		}
	}
	if len(r.logs) != 2 || !strings.HasPrefix(r.logs[0], "at once: refused from the first request") || !strings.HasPrefix(r.logs[1], "after 300ms: refused after ") {
		t.Errorf("logs %q, want the latencies of the two that refuse", r.logs)
	}

	// Counted from since: a verifier that refuses 800 ms after the call,
	// for a revocation answered 1.5 s before it, broke the promise.
	r = &promiseRecorder{TB: t}
	now := time.Now()
	refusedEverywhereWithinPromise(r, []verifierCheck{{"late", "", refusingAfter(now.Add(800 * time.Millisecond))}}, now.Add(-1500*time.Millisecond))
	if len(r.errs) != 1 || !strings.HasPrefix(r.errs[0], "late: ") {
		t.Errorf("a refusal 2.3 s after the revocation's response: failures %q, want one", r.errs)
	}
}

// revoke posts to /oauth/revoke as the client (client_secret_post) and
// returns when its response had arrived.
func revoke(t *testing.T, clientID, token string) time.Time {
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
	return time.Now()
}

// TestRevocationReachesEveryVerifier: after /oauth/revoke (RFC 7009) of a
// refresh token, the grant's access token is refused within the promised
// second (refusedEverywhereWithinPromise) on /mcp, /sse,
// /actions/profile, a direct gRPC call to capability-core and userinfo;
// another grant of the same user keeps working.
func TestRevocationReachesEveryVerifier(t *testing.T) {
	apps, _ := fleet.Client("gpt-apps-mcp")
	actions, _ := fleet.Client("gpt-actions")
	mcpTok := link(t, "gpt-apps-mcp", apps.Audience, oauth2.AuthStyleInParams)
	actTok := link(t, "gpt-actions", actions.Audience, oauth2.AuthStyleInParams)
	other := link(t, "gpt-actions", actions.Audience, oauth2.AuthStyleInParams)
	mcpChecks, actChecks := mcpVerifiers(t, mcpTok.AccessToken), actionsVerifiers(t, actTok.AccessToken)
	acceptedEverywhere(t, mcpChecks)
	acceptedEverywhere(t, actChecks)

	refusedEverywhereWithinPromise(t, mcpChecks, revoke(t, "gpt-apps-mcp", mcpTok.RefreshToken))
	refusedEverywhereWithinPromise(t, actChecks, revoke(t, "gpt-actions", actTok.AccessToken))
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
	refusedEverywhereWithinPromise(t, checks, time.Now()) // the replay's answer revoked the grant
}
