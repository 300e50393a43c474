package api_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tollgate/tollgate/services/actions-api/internal/api"
	"github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/actions-api/internal/openapi"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

const allScopes = "openid profile email"

// protected lists the registry operations that need a token, with their
// scopes, read from the served document (the same source as the routes).
func (f *fleet) protected(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for path, item := range f.doc.Paths.Map() {
		if item.Get != nil && item.Get.Security != nil && len(*item.Get.Security) > 0 {
			out[path] = (*item.Get.Security)[0][openapi.SecurityScheme]
		}
	}
	if len(out) < 2 {
		t.Fatalf("the document has %d protected operations, want at least /actions/profile and /actions/session", len(out))
	}
	return out
}

func TestHealthIsPublicAndComesFromCore(t *testing.T) {
	f := start(t, nil)
	for _, h := range []http.Header{nil, bearer("not-even-a-jwt")} {
		r := f.do(t, http.MethodGet, "/health", h)
		if r.status != 200 {
			t.Fatalf("GET /health: %d %s", r.status, r.body)
		}
		var body struct {
			Service, Status, Version, Timestamp string
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Service != "capability-core" || body.Status == "" || body.Timestamp == "" {
			t.Errorf("health = %+v, want capability-core's answer", body)
		}
	}
	res, err := http.Get(f.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	metrics, _ := io.ReadAll(res.Body)
	if want := `tollgate_actions_requests_total{code="200",operation="getHealth"} 2`; !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestProfileAndSessionWithValidToken(t *testing.T) {
	f := start(t, nil)
	profile := tokens.Profile{Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", PreferredUsername: "ada", Email: "ada@example.com", EmailVerified: true}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "user-ada", Audience: audience, ClientID: "gpt-actions", Scope: allScopes, Profile: profile})

	r := f.do(t, http.MethodGet, "/actions/profile", bearer(tok))
	if r.status != 200 {
		t.Fatalf("profile: %d %s", r.status, r.body)
	}
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"sub": "user-ada", "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
		"preferred_username": "ada", "email": "ada@example.com", "email_verified": true}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("profile %s = %v, want %v", k, p[k], v)
		}
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("profile Cache-Control = %q, want no-store", cc)
	}
	if r.header.Get("RateLimit-Remaining") == "" {
		t.Error("no RateLimit-Remaining header")
	}

	r = f.do(t, http.MethodGet, "/actions/session", bearer(tok))
	if r.status != 200 {
		t.Fatalf("session: %d %s", r.status, r.body)
	}
	var s struct {
		Subject, ClientID, Audience string
		Scopes                      []string
		ExpiresAt                   string `json:"expires_at"`
	}
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	s.ClientID = gjson(t, r.body, "client_id")
	if s.Subject != "user-ada" || s.ClientID != "gpt-actions" || s.Audience != audience || !slices.Equal(s.Scopes, strings.Fields(allScopes)) || s.ExpiresAt == "" {
		t.Errorf("session = %+v", s)
	}
}

func gjson(t *testing.T, b []byte, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[key].(string)
	return s
}

// TestBearerRefusals runs every bearer rule against every protected
// operation; each refusal must carry the documented status, error code
// and challenge, and validate against the document.
func TestBearerRefusals(t *testing.T) {
	f := start(t, nil)
	valid := f.token(t, allScopes)
	parts := strings.Split(valid, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forgedPayload := strings.Replace(string(payload), `"user-123"`, `"admin-1"`, 1)
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forgedPayload)) + "." + parts[2]

	cases := []struct {
		name      string
		header    http.Header
		query     string
		status    int
		code      string
		desc      string // part of error_description
		challenge string // part of WWW-Authenticate; "" = none expected
	}{
		{name: "no token", status: 401, code: "invalid_token", desc: "bearer access token is required", challenge: `Bearer realm="tollgate-actions", resource_metadata="` + metadataURL + `", scope=`},
		// RFC 6750 §3.1: another scheme, or Bearer without a token, is no
		// authentication information — no error code in the challenge (the
		// scope follows resource_metadata directly), as at the gateway.
		{name: "basic scheme", header: http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, status: 401, code: "invalid_token", desc: "not Bearer", challenge: `Bearer realm="tollgate-actions", resource_metadata="` + metadataURL + `", scope=`},
		// Described as what they are, not as another scheme (brk50a
		// finding 2): the header says Bearer.
		{name: "empty bearer", header: http.Header{"Authorization": {"Bearer "}}, status: 401, code: "invalid_token", desc: "the Bearer token is empty: a bearer access token is required", challenge: `Bearer realm="tollgate-actions", resource_metadata="` + metadataURL + `", scope=`},
		{name: "bearer alone", header: http.Header{"Authorization": {"Bearer"}}, status: 401, code: "invalid_token", desc: "the Bearer token is empty: a bearer access token is required", challenge: `Bearer realm="tollgate-actions", resource_metadata="` + metadataURL + `", scope=`},
		{name: "bearer with a space", header: http.Header{"Authorization": {"Bearer " + valid + " " + valid}}, status: 401, code: "invalid_token", desc: "the Authorization header is malformed (a Bearer token has no space or comma, RFC 6750 section 2.1): a bearer access token is required", challenge: `Bearer realm="tollgate-actions", resource_metadata="` + metadataURL + `", scope=`},
		{name: "bearer with a comma", header: http.Header{"Authorization": {"bearer " + valid + ",x"}}, status: 401, code: "invalid_token", desc: "the Authorization header is malformed", challenge: `Bearer realm="tollgate-actions", resource_metadata="` + metadataURL + `", scope=`},
		{name: "garbage", header: bearer("garbage"), status: 401, code: "invalid_token", desc: "not a JWS", challenge: `error="invalid_token"`},
		{name: "MCP audience", header: bearer(f.iss.Mint(t, tokentest.Token{Audience: mcpAudience, Scope: allScopes})), status: 401, code: "invalid_token", desc: "wrong audience; this is the Actions resource " + audience + ": request the token with resource=" + audience, challenge: `error_description="access token rejected: wrong audience; this is the Actions resource ` + audience + `: request the token with resource=` + audience + ` (RFC 8707)"`},
		{name: "expired", header: bearer(f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: allScopes, IssuedAt: time.Now().Add(-3 * time.Hour), ExpiresIn: time.Hour})), status: 401, code: "invalid_token", desc: "expired", challenge: `error="invalid_token"`},
		{name: "other issuer", header: bearer(f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: allScopes, Issuer: "http://evil.test"})), status: 401, code: "invalid_token", desc: "wrong issuer", challenge: `error="invalid_token"`},
		{name: "ID token type", header: bearer(f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: allScopes, Type: "JWT"})), status: 401, code: "invalid_token", desc: "typ", challenge: `error="invalid_token"`},
		{name: "forged claims", header: bearer(forged), status: 401, code: "invalid_token", desc: "bad signature", challenge: `error="invalid_token"`},
		{name: "duplicate header", header: http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}}, status: 400, code: "invalid_request", desc: "more than one Authorization", challenge: `error="invalid_request"`},
		{name: "query token", query: "?access_token=" + valid, status: 400, code: "invalid_request", desc: "access_token in the query", challenge: `error="invalid_request"`},
		{name: "query token with header", header: bearer(valid), query: "?access_token=" + valid, status: 400, code: "invalid_request", desc: "access_token in the query", challenge: `error="invalid_request"`},
		{name: "no scopes", header: bearer(f.token(t, "")), status: 403, code: "insufficient_scope", desc: "lacks the scopes", challenge: `error="insufficient_scope"`},
	}
	for path, scopes := range f.protected(t) {
		for _, tc := range cases {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				r := f.do(t, http.MethodGet, path+tc.query, tc.header)
				if r.status != tc.status || r.err.Error != tc.code || !strings.Contains(r.err.Description, tc.desc) {
					t.Fatalf("%d %s, want %d %s containing %q", r.status, r.body, tc.status, tc.code, tc.desc)
				}
				ch := r.header.Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, `Bearer realm="tollgate-actions", resource_metadata="`+metadataURL+`"`) || !strings.Contains(ch, tc.challenge) || !strings.Contains(ch, `scope="`+strings.Join(scopes, " ")+`"`) {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge with %q and the operation's scopes", ch, tc.challenge)
				}
				if strings.Contains(string(r.body), valid) {
					t.Error("the response echoes the token")
				}
			})
		}
		// One scope short of what the operation needs.
		t.Run(path+"/one scope missing", func(t *testing.T) {
			r := f.do(t, http.MethodGet, path, bearer(f.token(t, strings.Join(scopes[1:], " "))))
			if r.status != 403 || r.err.Error != "insufficient_scope" || !strings.Contains(r.err.Description, scopes[0]) {
				t.Fatalf("%d %s, want 403 insufficient_scope naming %s", r.status, r.body, scopes[0])
			}
		})
	}
	if strings.Contains(f.logs.String(), valid) {
		t.Error("a token reached the logs")
	}
	if f.validated < 20 {
		t.Errorf("only %d responses were validated against the document", f.validated)
	}
}

func TestBadQueryParameters(t *testing.T) {
	f := start(t, nil)
	tok := f.token(t, allScopes)
	for _, path := range []string{"/actions/session?verbose=1", "/health?x=1"} {
		r := f.do(t, http.MethodGet, path, bearer(tok))
		if r.status != 400 || r.err.Error != "invalid_request" || !strings.Contains(r.err.Description, "unknown query parameter") {
			t.Errorf("GET %s: %d %s, want 400 invalid_request", path, r.status, r.body)
		}
	}
}

func TestUnknownPathAndMethodUseTheErrorShape(t *testing.T) {
	f := start(t, nil)
	r := f.do(t, http.MethodGet, "/actions/nope", nil)
	if r.status != 404 || r.err.Error != "not_found" {
		t.Errorf("unknown path: %d %s", r.status, r.body)
	}
	h := bearer(f.token(t, allScopes))
	h.Set("Origin", "https://chatgpt.com")
	r = f.do(t, http.MethodPost, "/actions/profile", h)
	if r.status != 405 || r.err.Error != "method_not_allowed" || !strings.Contains(r.header.Get("Allow"), "GET") {
		t.Errorf("POST on a GET operation: %d %s (Allow %q)", r.status, r.body, r.header.Get("Allow"))
	}
	// A browser caller from a listed origin can read the Allow header.
	if !exposed(r.header, "Allow") {
		t.Errorf("POST on a GET operation from a listed origin: Access-Control-Expose-Headers %q lacks Allow",
			r.header.Get("Access-Control-Expose-Headers"))
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("error responses lack X-Content-Type-Options: nosniff")
	}
}

func TestRateLimitPerSubject(t *testing.T) {
	f := start(t, map[string]string{"RATE_LIMIT_PER_MINUTE": "3"})
	alice := f.iss.Mint(t, tokentest.Token{Subject: "alice", Audience: audience, Scope: allScopes})
	bob := f.iss.Mint(t, tokentest.Token{Subject: "bob", Audience: audience, Scope: allScopes})
	for i := range 3 {
		if r := f.do(t, http.MethodGet, "/actions/session", bearer(alice)); r.status != 200 {
			t.Fatalf("call %d: %d %s", i+1, r.status, r.body)
		}
	}
	// A second token of the same subject shares the bucket.
	alice2 := f.iss.Mint(t, tokentest.Token{Subject: "alice", Audience: audience, Scope: allScopes, ClientID: "other"})
	for _, tok := range []string{alice, alice2} {
		r := f.do(t, http.MethodGet, "/actions/profile", bearer(tok))
		if r.status != 429 || r.err.Error != "rate_limited" {
			t.Fatalf("over the limit: %d %s, want 429 rate_limited", r.status, r.body)
		}
		ra, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > 60 {
			t.Errorf("Retry-After = %q, want 1..60 seconds", r.header.Get("Retry-After"))
		}
	}
	if r := f.do(t, http.MethodGet, "/actions/session", bearer(bob)); r.status != 200 {
		t.Errorf("another subject is limited too: %d %s", r.status, r.body)
	}
	// Redis holds the bucket under a hash of the subject, never the subject.
	keys, err := f.redis.Client().Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no rate-limit key in Redis")
	}
	for _, k := range keys {
		if strings.Contains(k, "alice") || strings.Contains(k, "bob") {
			t.Errorf("Redis key %q contains a subject in the clear", k)
		}
	}
}

func TestRateLimitPublicByAddress(t *testing.T) {
	f := start(t, map[string]string{"PUBLIC_RATE_LIMIT_PER_MINUTE": "2"})
	for i := range 2 {
		if r := f.do(t, http.MethodGet, "/health", nil); r.status != 200 {
			t.Fatalf("call %d: %d %s", i+1, r.status, r.body)
		}
	}
	r := f.do(t, http.MethodGet, "/health", nil)
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("third call: %d %s, want 429 with Retry-After", r.status, r.body)
	}
	// The static documents are not limited.
	for _, p := range []string{api.PathOpenAPI, api.PathPrivacy} {
		if r := f.do(t, http.MethodGet, p, nil); r.status != 200 {
			t.Errorf("%s: %d", p, r.status)
		}
	}
}

// TestRateLimitPublicClientAddress: the fleet's client-address rule
// (platform/clientip). Without trusted proxies a spoofed X-Forwarded-For
// is ignored; behind a trusted proxy the right-most untrusted entry is the
// address, whatever the client wrote to its left.
func TestRateLimitPublicClientAddress(t *testing.T) {
	xff := func(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }
	t.Run("untrusted peer", func(t *testing.T) {
		f := start(t, map[string]string{"PUBLIC_RATE_LIMIT_PER_MINUTE": "2"})
		f.do(t, http.MethodGet, "/health", xff("198.51.100.1"))
		f.do(t, http.MethodGet, "/health", xff("198.51.100.2"))
		if r := f.do(t, http.MethodGet, "/health", xff("198.51.100.3")); r.status != 429 {
			t.Errorf("third call with a new spoofed address: %d, want 429", r.status)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		f := start(t, map[string]string{"PUBLIC_RATE_LIMIT_PER_MINUTE": "2", "TRUSTED_PROXIES": "127.0.0.0/8,::1"})
		f.do(t, http.MethodGet, "/health", xff("10.0.0.1, 198.51.100.7"))
		f.do(t, http.MethodGet, "/health", xff("10.0.0.2, 198.51.100.7"))
		if r := f.do(t, http.MethodGet, "/health", xff("10.0.0.3, 198.51.100.7, 127.0.0.5")); r.status != 429 {
			t.Errorf("third call from 198.51.100.7: %d, want 429", r.status)
		}
		if r := f.do(t, http.MethodGet, "/health", xff("198.51.100.8")); r.status != 200 {
			t.Errorf("another address: %d, want 200", r.status)
		}
	})
	t.Run("IPv6: one /64 is one address", func(t *testing.T) {
		f := start(t, map[string]string{"PUBLIC_RATE_LIMIT_PER_MINUTE": "2", "TRUSTED_PROXIES": "127.0.0.0/8,::1"})
		f.do(t, http.MethodGet, "/health", xff("2001:db8:1:2::1"))
		f.do(t, http.MethodGet, "/health", xff("2001:db8:1:2::2"))
		if r := f.do(t, http.MethodGet, "/health", xff("2001:db8:1:2:ffff::3")); r.status != 429 {
			t.Errorf("third call from the same /64: %d, want 429", r.status)
		}
		if r := f.do(t, http.MethodGet, "/health", xff("2001:db8:1:3::1")); r.status != 200 {
			t.Errorf("another /64: %d, want 200", r.status)
		}
	})
}

// The harness's start returns a fleet that serves capability-core's
// operations even when the actions-api's first discovery missed
// capability-core (here hung while the actions-api started): the cause of
// a 404 on GET /health that TestRateLimitPublicClientAddress met once on a
// loaded machine. Broken on purpose (start without its wait, as before
// this test) the GET below is 404.
func TestStartServesCapabilityCore(t *testing.T) {
	f := startWith(t, map[string]string{"CAPABILITY_REFRESH_INTERVAL": "1s"}, true)
	if r := f.do(t, http.MethodGet, "/health", nil); r.status != 200 {
		t.Fatalf("GET /health after start with capability-core hung at the first discovery: %d %s", r.status, r.body)
	}
}

func TestRedisDown(t *testing.T) {
	f := start(t, nil)
	tok := f.token(t, allScopes)
	if r := f.do(t, http.MethodGet, "/actions/session", bearer(tok)); r.status != 200 {
		t.Fatalf("before the outage: %d %s", r.status, r.body)
	}
	f.redis.Stop()
	began := time.Now()
	r := f.do(t, http.MethodGet, "/actions/session", bearer(tok))
	if r.status != 503 || r.err.Error != "temporarily_unavailable" {
		t.Fatalf("Redis down: %d %s, want 503 temporarily_unavailable", r.status, r.body)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("the 503 took %s; a Redis outage must fail fast", d)
	}
	if strings.Contains(r.err.Description, "127.0.0.1") || strings.Contains(r.err.Description, "redis:") {
		t.Errorf("the error leaks internals: %q", r.err.Description)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if code, body := f.ready(t); code != 200 || !strings.Contains(body, `"name":"redis","status":"down"`) {
		t.Errorf("readiness with Redis down: %d %s, want 200 reporting redis down", code, body)
	}
	f.redis.Start()
	eventually(t, "readiness reports Redis back", func() bool {
		_, body := f.ready(t)
		return strings.Contains(body, `"name":"redis","status":"ok"`)
	})
	if r := f.do(t, http.MethodGet, "/actions/session", bearer(tok)); r.status != 200 {
		t.Errorf("after the outage: %d %s", r.status, r.body)
	}
}

func TestCapabilityCoreDown(t *testing.T) {
	f := start(t, nil)
	tok := f.token(t, allScopes)
	eventually(t, "readiness", func() bool { code, _ := f.ready(t); return code == 200 })
	f.core.Stop()
	began := time.Now()
	for _, path := range []string{"/actions/profile", "/actions/session", "/health"} {
		r := f.do(t, http.MethodGet, path, bearer(tok))
		if r.status != 503 || r.err.Error != "temporarily_unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s with capability-core down: %d %v %s, want 503 with Retry-After", path, r.status, r.header, r.body)
		}
	}
	// Duration reported, not asserted (no timed assertions): a stopped
	// capability-core's port is held closed by the harness, so calls are
	// refused at once rather than waiting for a deadline.
	t.Logf("three 503s with capability-core down took %s (report)", time.Since(began).Round(time.Millisecond))
	if code, body := f.ready(t); code != 200 || !strings.Contains(body, `"name":"capability-core","status":"down"`) {
		t.Errorf("readiness with capability-core down: %d %s, want 200 reporting it down", code, body)
	}
	f.core.Start()
	eventually(t, "profile after capability-core restarts", func() bool {
		return f.do(t, http.MethodGet, "/actions/profile", bearer(tok)).status == 200
	})
}

// TestCoreVerifiesAgain: capability-core checks the forwarded token itself;
// when it refuses one the actions-api accepted (here the two disagree on
// the audience), the caller gets the same 401 with a challenge.
func TestCoreVerifiesAgain(t *testing.T) {
	const other = "http://other.test/actions"
	f := start(t, map[string]string{"ACTIONS_AUDIENCE": other})
	tok := f.iss.Mint(t, tokentest.Token{Audience: other, Scope: allScopes})
	r := f.do(t, http.MethodGet, "/actions/session", bearer(tok))
	if r.status != 401 || r.err.Error != "invalid_token" || !strings.Contains(r.err.Description, "audience") {
		t.Fatalf("token refused by capability-core: %d %s, want 401 invalid_token", r.status, r.body)
	}
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate = %q", ch)
	}
}

func TestKeySetUnavailable(t *testing.T) {
	closed := testharness.ClosedAddr(t)
	f := start(t, map[string]string{"AUTH_GRPC_ADDR": closed})
	r := f.do(t, http.MethodGet, "/actions/session", bearer(f.token(t, allScopes)))
	if r.status != 503 || r.err.Error != "temporarily_unavailable" {
		t.Fatalf("auth-server unreachable: %d %s, want 503 (not a 401 that would unlink the user)", r.status, r.body)
	}
	if code, body := f.ready(t); code != 200 || !strings.Contains(body, `"name":"signing-keys","status":"down"`) {
		t.Errorf("readiness with the key set unreachable: %d %s, want 200 reporting it down", code, body)
	}
	if r := f.do(t, http.MethodGet, "/health", nil); r.status != 200 {
		t.Errorf("public health needs no key set: %d %s", r.status, r.body)
	}
}

func TestCORSExplicitOrigins(t *testing.T) {
	f := start(t, nil)
	preflight := func(origin string) http.Header {
		req, _ := http.NewRequest(http.MethodOptions, f.base+"/actions/profile", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header
	}
	if h := preflight("https://chatgpt.com"); h.Get("Access-Control-Allow-Origin") != "https://chatgpt.com" {
		t.Errorf("allowed origin: Access-Control-Allow-Origin = %q", h.Get("Access-Control-Allow-Origin"))
	}
	if h := preflight("https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted origin got Access-Control-Allow-Origin = %q", h.Get("Access-Control-Allow-Origin"))
	}
}

// TestOptionsOfAnUnknownPathIs404: with ALLOWED_ORIGINS set (the chart's
// default), echo's CORS middleware answered every OPTIONS request that
// was not a listed origin's preflight with a bodiless 204, whatever the
// path: "OPTIONS /nope" said the path exists, where every other method
// gets the 404 error shape. Now a path the API does not serve is a 404
// not_found for OPTIONS too (with or without an Origin), while a path it
// serves keeps the 204 with Allow, and a listed origin's preflight its
// CORS headers.
func TestOptionsOfAnUnknownPathIs404(t *testing.T) {
	f := start(t, nil)
	options := func(path string, header http.Header) reply {
		t.Helper()
		return f.do(t, http.MethodOptions, path, header)
	}
	preflight := func(origin string) http.Header {
		return http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"GET"}}
	}
	for _, path := range []string{"/nope", "/actions/nope", "/actions/profile/x", "/.well-known/nope"} {
		for name, h := range map[string]http.Header{"no Origin": nil, "listed origin": preflight("https://chatgpt.com"), "other origin": preflight("https://evil.example")} {
			if r := options(path, h); r.status != 404 || r.err.Error != "not_found" || r.header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("OPTIONS %s (%s): %d %v %s, want 404 not_found without CORS headers", path, name, r.status, r.header, r.body)
			}
		}
	}
	for _, path := range []string{"/actions/profile", "/health", api.PathOpenAPI} {
		if r := options(path, nil); r.status != 204 || !strings.Contains(r.header.Get("Allow"), "GET") {
			t.Errorf("OPTIONS %s: %d Allow %q, want 204 with Allow", path, r.status, r.header.Get("Allow"))
		}
		r := options(path, preflight("https://chatgpt.com"))
		if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://chatgpt.com" {
			t.Errorf("preflight of %s from a listed origin: %d %v", path, r.status, r.header)
		}
	}
}

func TestPrivacyPolicy(t *testing.T) {
	f := start(t, nil)
	r := f.do(t, http.MethodGet, api.PathPrivacy, nil)
	if r.status != 200 || string(r.body) != config.DefaultPrivacyPolicy || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("default privacy policy: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}

	file := filepath.Join(t.TempDir(), "privacy.txt")
	if err := os.WriteFile(file, []byte("Our policy: nothing is kept.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{api.PathPrivacy, api.PathOpenAPI} {
		res, err := http.Head(f.base + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("HEAD %s: %d", p, res.StatusCode)
		}
	}

	f = start(t, map[string]string{"PRIVACY_POLICY_FILE": file})
	if r := f.do(t, http.MethodGet, api.PathPrivacy, nil); string(r.body) != "Our policy: nothing is kept." {
		t.Errorf("configured privacy policy: %q", r.body)
	}
}

func TestServedDocumentMatchesConfiguration(t *testing.T) {
	f := start(t, nil)
	if got := f.doc.Servers[0].URL; !strings.HasPrefix(f.base, got) || len(f.doc.Servers) != 1 {
		t.Errorf("servers = %v, want the configured ACTIONS_PUBLIC_URL", f.doc.Servers)
	}
	flow := f.doc.Components.SecuritySchemes[openapi.SecurityScheme].Value.Flows.AuthorizationCode
	if flow.AuthorizationURL != issuerURL+"/oauth/authorize" || flow.TokenURL != issuerURL+"/oauth/token" {
		t.Errorf("OAuth URLs = %s %s", flow.AuthorizationURL, flow.TokenURL)
	}
	reg, err := api.Capabilities()
	if err != nil {
		t.Fatal(err)
	}
	// The served operations are those of the backends: capability-core's
	// all; the auth-server here is a key-set issuer without reflection,
	// so the connected-apps operations linked into the binary are not;
	// nor are testing/v1's, which this test binary links but no backend
	// serves.
	for _, a := range reg.Actions() {
		var op *openapi3.Operation
		if item := f.doc.Paths.Find(a.Path); item != nil {
			op = item.GetOperation(a.Method)
		}
		served := op != nil && op.OperationID == a.OperationID
		want := a.Capability.Backend == registry.DefaultBackend && !strings.HasPrefix(a.Capability.FullMethod, "/tollgate.testing.")
		if served != want {
			t.Errorf("%s %s (backend %s): in the served document %v, want %v", a.Method, a.Path, a.Capability.Backend, served, want)
		}
	}
}

func TestConfigRefusals(t *testing.T) {
	base := map[string]string{
		"ACTIONS_PUBLIC_URL": "https://actions.example.com", "ACTIONS_AUDIENCE": "https://actions.example.com/actions",
		"PUBLIC_ISSUER_URL": "https://actions.example.com", "AUTH_GRPC_ADDR": "a:1", "CORE_GRPC_ADDR": "c:1",
		"REDIS_URL": "redis://127.0.0.1:1/0",
	}
	cfg, err := config.Load(configEnv(base, nil))
	if err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
	if cfg.OAuthBaseURL != "https://actions.example.com" {
		t.Errorf("OAuth base URL = %q, want the issuer by default", cfg.OAuthBaseURL)
	}
	cfg, err = config.Load(configEnv(base, map[string]string{"PUBLIC_ISSUER_URL": "https://gateway.example.com", "ACTIONS_OAUTH_BASE_URL": "https://api.example.com/"}))
	if err != nil || cfg.OAuthBaseURL != "https://api.example.com" || cfg.Issuer != "https://gateway.example.com" {
		t.Errorf("ACTIONS_OAUTH_BASE_URL: %q (%v)", cfg.OAuthBaseURL, err)
	}
	_, err = config.Load(configEnv(base, map[string]string{
		"ACTIONS_OAUTH_BASE_URL":       "api.example.com",
		"ALLOWED_ORIGINS":              "*,https://ok.example,https://x.example/path,ftp://y.example",
		"RATE_LIMIT_PER_MINUTE":        "0",
		"PUBLIC_RATE_LIMIT_PER_MINUTE": "many", "TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal",
		"CORE_CALL_TIMEOUT": "0s",
	}))
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"ACTIONS_OAUTH_BASE_URL", `"*" is a wildcard`, "https://x.example/path", "ftp://y.example", "RATE_LIMIT_PER_MINUTE: must be at least 1", "PUBLIC_RATE_LIMIT_PER_MINUTE", "CORE_CALL_TIMEOUT", `TRUSTED_PROXIES: not a CIDR or IP address: "proxy.internal"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "https://ok.example") {
		t.Errorf("a valid origin is reported: %v", err)
	}
	_, err = config.Load(configEnv(base, map[string]string{"TOLLGATE_ENV": "production", "ALLOWED_ORIGINS": "http://chatgpt.com", "REDIS_CHECK_DURABLE": "false"}))
	if err == nil || !strings.Contains(err.Error(), "must use https in production") {
		t.Errorf("production accepted an http origin: %v", err)
	}
}

func configEnv(base, overrides map[string]string) func(string) string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range overrides {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestRunRefusesWildcardOrigin(t *testing.T) {
	env := map[string]string{
		"ACTIONS_PUBLIC_URL": "http://localhost:4000", "ACTIONS_AUDIENCE": audience, "PUBLIC_ISSUER_URL": issuerURL,
		"AUTH_GRPC_ADDR": "127.0.0.1:1", "CORE_GRPC_ADDR": "127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1/0",
		"ALLOWED_ORIGINS": "*", "HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
	}
	err := api.Run(t.Context(), configEnv(env, nil), &syncBuffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "is a wildcard") {
		t.Fatalf("Run with ALLOWED_ORIGINS=*: %v", err)
	}
}

func TestExportCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sub", "actions.openapi.json")
	var stderr syncBuffer
	if err := api.Export([]string{"-base-url", "https://actions.example.com/", "-out", out}, nil, &stderr); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := api.Capabilities()
	d, err := openapi.Build(reg, openapi.Options{ServerURL: "https://actions.example.com", OAuthBaseURL: "https://actions.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := d.JSON()
	if string(b) != string(want) {
		t.Error("the exported document differs from the one the service builds")
	}
	var stdout syncBuffer
	if err := api.Export([]string{"-base-url", "https://api.example.com", "-oauth-base-url", "https://gateway.example.com"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), `"authorizationUrl":"https://gateway.example.com/oauth/authorize"`) || !strings.Contains(stdout.String(), `"url":"https://api.example.com"`) {
		t.Errorf("-oauth-base-url is not used:\n%.600s", stdout.String())
	}
	for _, args := range [][]string{{}, {"-base-url", "not a url"}, {"-base-url", "https://a.example", "extra"}, {"-base-url", "https://a.example", "-oauth-base-url", "x"}} {
		if err := api.Export(args, nil, &stderr); err == nil {
			t.Errorf("Export %q succeeded", args)
		}
	}
}

// exposed reports whether a CORS response lets the browser's script read
// the header name (Access-Control-Expose-Headers, Fetch standard section
// 3.2.3), matching names case-insensitively.
func exposed(h http.Header, name string) bool {
	for _, v := range h.Values("Access-Control-Expose-Headers") {
		for _, n := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(n), name) {
				return true
			}
		}
	}
	return false
}

// TestHeadOnGetOperations: HEAD on a GET operation is the GET without
// its content (RFC 9110 sections 9.1, 9.3.2), with the same token rules;
// it was a 405.
func TestHeadOnGetOperations(t *testing.T) {
	f := start(t, nil)
	h := bearer(f.token(t, allScopes))
	get := f.do(t, http.MethodGet, "/actions/profile", h)
	head := f.do(t, http.MethodHead, "/actions/profile", h)
	if get.status != 200 || head.status != 200 || len(head.body) != 0 || head.header.Get("Content-Type") != get.header.Get("Content-Type") {
		t.Errorf("HEAD /actions/profile: %d %q (Content-Type %q), want 200 without content, like GET's %d (Content-Type %q)",
			head.status, head.body, head.header.Get("Content-Type"), get.status, get.header.Get("Content-Type"))
	}
	if r := f.do(t, http.MethodHead, "/actions/profile", nil); r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("HEAD /actions/profile without a token: %d (WWW-Authenticate %q), want 401 with a challenge", r.status, r.header.Get("WWW-Authenticate"))
	}
}
