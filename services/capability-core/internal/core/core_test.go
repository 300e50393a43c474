package core_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/capability-core/internal/core"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

const (
	issuer  = "http://localhost:4000"
	mcpAud  = "http://localhost:4000/mcp"
	actsAud = "http://localhost:4000/actions"
)

type fixture struct {
	iss   *tokentest.Issuer
	redis *testharness.Redis
	conn  *grpc.ClientConn
	svc   *testharness.Service
}

// start runs capability-core in-process on free ports (env: more
// variables, name then value), with a real Redis
// and a real KeySetService, and connects to it over TCP.
func start(t testing.TB, env ...string) *fixture {
	t.Helper()
	f := &fixture{iss: tokentest.Start(t, issuer), redis: testharness.StartRedis(t)}
	e := map[string]string{
		"GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": f.iss.Addr,
		"MCP_RESOURCE_URL": mcpAud, "ACTIONS_AUDIENCE": actsAud, "REDIS_URL": f.redis.URL(),
		"REDIS_COMMAND_TIMEOUT": testharness.RedisCommandTimeout, "REDIS_DIAL_TIMEOUT": testharness.RedisDialTimeout,
	}
	for i := 0; i+1 < len(env); i += 2 {
		e[env[i]] = env[i+1]
	}
	f.svc = testharness.RunService(t, core.Run, e)
	conn, err := grpc.NewClient(f.svc.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.conn = conn
	return f
}

func withToken(raw string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+raw)
}

func TestHealthNeedsNoIdentity(t *testing.T) {
	f := start(t)
	resp, err := capabilityv1.NewHealthServiceClient(f.conn).GetHealth(context.Background(), &capabilityv1.GetHealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetService() != "capability-core" || resp.GetStatus() != "ok" || resp.GetTimestamp() == nil || len(resp.GetChecks()) != 2 {
		t.Errorf("health = %v", resp)
	}
	f.redis.Stop()
	resp, err = capabilityv1.NewHealthServiceClient(f.conn).GetHealth(context.Background(), &capabilityv1.GetHealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != "degraded" {
		t.Errorf("health with Redis down = %v", resp)
	}
	for _, c := range resp.GetChecks() {
		if c.GetName() == "redis" && (c.GetStatus() != "down" || strings.Contains(c.GetDetail(), "127.0.0.1")) {
			t.Errorf("redis check = %v", c)
		}
	}
}

func TestProfileAndSessionFromAVerifiedToken(t *testing.T) {
	f := start(t)
	raw := f.iss.Mint(t, tokentest.Token{
		Subject: "alice", Audience: actsAud, ClientID: "gpt-actions", Scope: "openid profile email",
		Profile: tokens.Profile{Name: "Alice Example", GivenName: "Alice", FamilyName: "Example", PreferredUsername: "alice", Email: "alice@example.com", EmailVerified: true},
	})
	id := capabilityv1.NewIdentityServiceClient(f.conn)
	p, err := id.GetProfile(withToken(raw), &capabilityv1.GetProfileRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if p.GetSub() != "alice" || p.GetName() != "Alice Example" || p.GetGivenName() != "Alice" || p.GetFamilyName() != "Example" ||
		p.GetPreferredUsername() != "alice" || p.GetEmail() != "alice@example.com" || !p.GetEmailVerified() {
		t.Errorf("profile = %v", p)
	}
	s, err := id.GetSession(withToken(raw), &capabilityv1.GetSessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s.GetSubject() != "alice" || s.GetClientId() != "gpt-actions" || s.GetAudience() != actsAud ||
		strings.Join(s.GetScopes(), " ") != "openid profile email" || !s.GetExpiresAt().AsTime().After(time.Now()) {
		t.Errorf("session = %v", s)
	}
}

// TestIdentityIsNeverTrusted: a missing, forged, expired, wrongly addressed
// or under-scoped token never reaches the capability.
func TestIdentityIsNeverTrusted(t *testing.T) {
	f := start(t)
	_, otherKey := tokentest.Keys()
	forger := tokentest.Start(t, issuer) // same issuer name, different key server
	forger.SetRing(mustRing(t, otherKey))
	id := capabilityv1.NewIdentityServiceClient(f.conn)
	cases := map[string]struct {
		ctx  context.Context
		code codes.Code
		msg  string
	}{
		"no token":       {context.Background(), codes.Unauthenticated, "bearer access token is required"},
		"not bearer":     {metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic eDp5"), codes.Unauthenticated, "bearer access token is required"},
		"two tokens":     {metadata.AppendToOutgoingContext(withToken(f.iss.Mint(t, tokentest.Token{Audience: mcpAud, Scope: "openid profile email"})), "authorization", "Bearer x"), codes.Unauthenticated, "required"},
		"forged":         {withToken(forger.Mint(t, tokentest.Token{Audience: mcpAud, Scope: "openid profile email"})), codes.Unauthenticated, "bad signature"},
		"expired":        {withToken(f.iss.Mint(t, tokentest.Token{Audience: mcpAud, Scope: "openid profile email", IssuedAt: time.Now().Add(-3 * time.Hour), ExpiresIn: time.Hour})), codes.Unauthenticated, "token expired"},
		"other audience": {withToken(f.iss.Mint(t, tokentest.Token{Audience: "https://elsewhere.example/api", Scope: "openid profile email"})), codes.Unauthenticated, "wrong audience"},
		"missing scope":  {withToken(f.iss.Mint(t, tokentest.Token{Audience: mcpAud, Scope: "openid"})), codes.PermissionDenied, "missing scopes: profile email"},
		"garbage":        {withToken("not-a-token"), codes.Unauthenticated, "not a JWS"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := id.GetProfile(tc.ctx, &capabilityv1.GetProfileRequest{})
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Errorf("GetProfile: %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
		})
	}
	// Session needs only openid.
	if _, err := id.GetSession(withToken(f.iss.Mint(t, tokentest.Token{Audience: mcpAud, Scope: "openid"})), &capabilityv1.GetSessionRequest{}); err != nil {
		t.Errorf("session with openid: %v", err)
	}
	if strings.Contains(f.svc.Logs.String(), "eyJ") {
		t.Error("a token reached the logs")
	}
}

func TestStandardGRPCServices(t *testing.T) {
	f := start(t)
	h, err := healthpb.NewHealthClient(f.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("grpc health = %v, %v", h, err)
	}
	stream, err := grpc_reflection_v1.NewServerReflectionClient(f.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}})
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	got := strings.Join(names, ",")
	for _, want := range []string{"tollgate.capability.v1.HealthService", "tollgate.capability.v1.IdentityService", "grpc.health.v1.Health"} {
		if !strings.Contains(got, want) {
			t.Errorf("reflection lists %s, missing %s", got, want)
		}
	}
}

func TestConfigProblemsAreListed(t *testing.T) {
	err := core.Run(context.Background(), config.MapEnv(map[string]string{"TOLLGATE_ENV": "production", "MCP_RESOURCE_URL": "http://x/mcp"}), &bytes.Buffer{}, nil)
	if err == nil {
		t.Fatal("started without configuration")
	}
	for _, want := range []string{"AUTH_GRPC_ADDR: required", "MCP_RESOURCE_URL", "must use https in production", "ACTIONS_AUDIENCE: required", "REDIS_URL: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestHealthNotServingWhileDraining: on shutdown, grpc.health.v1 turns
// NOT_SERVING before the server stops taking calls, so clients and probes
// move away first; a Redis outage, shared by every pod, never does.
func TestHealthNotServingWhileDraining(t *testing.T) {
	f := start(t)
	f.redis.Stop()
	h, err := healthpb.NewHealthClient(f.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health with Redis down = %v, %v; want SERVING", h, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch, err := healthpb.NewHealthClient(f.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch update = %v, %v", m, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- f.svc.Stop() }()
	m, err := watch.Recv()
	if err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch update while draining = %v, %v; want NOT_SERVING", m, err)
	}
	cancel() // the open watch is the only call in flight; let the drain finish
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
