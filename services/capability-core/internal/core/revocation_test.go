package core_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/capability-core/internal/core"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// runCore runs capability-core in-process with env added and returns a
// client of its IdentityService over TCP.
func runCore(t *testing.T, iss *tokentest.Issuer, r *testharness.Redis, env ...string) (*testharness.Service, capabilityv1.IdentityServiceClient) {
	t.Helper()
	e := map[string]string{
		"GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": iss.Addr,
		"MCP_RESOURCE_URL": mcpAud, "ACTIONS_AUDIENCE": actsAud, "REDIS_URL": r.URL(), "REDIS_KEY_PREFIX": "core:",
	}
	for i := 0; i+1 < len(env); i += 2 {
		e[env[i]] = env[i+1]
	}
	svc := testharness.RunService(t, core.Run, e)
	conn, err := grpc.NewClient(svc.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return svc, capabilityv1.NewIdentityServiceClient(conn)
}

// fleetRedis is a client with the services' key prefix: what the
// auth-server's revoker writes through.
func fleetRedis(t *testing.T, r *testharness.Redis) *redisx.Client {
	t.Helper()
	c, err := redisx.New(config.Redis{URL: r.URL(), KeyPrefix: "core:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// refusedWithin polls GetProfile until it answers UNAUTHENTICATED; the
// deadline bounds the loop, it is not a speed assertion.
func refusedWithin(t *testing.T, id capabilityv1.IdentityServiceClient, raw string, within time.Duration, what string) {
	t.Helper()
	testharness.Eventually(t, within, what+": GetProfile UNAUTHENTICATED (revoked)", func() (bool, string) {
		_, err := id.GetProfile(withToken(raw), &capabilityv1.GetProfileRequest{})
		return status.Code(err) == codes.Unauthenticated && strings.Contains(status.Convert(err).Message(), "revoked"), fmt.Sprint(err)
	})
}

func accepted(t *testing.T, id capabilityv1.IdentityServiceClient, raw, what string) {
	t.Helper()
	if _, err := id.GetProfile(withToken(raw), &capabilityv1.GetProfileRequest{}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestRevokedGrantIsRefusedOverGRPC: a direct gRPC call with a token of a
// revoked grant answers UNAUTHENTICATED — after the announcement, after a
// restart (state loaded at start) and on a replica that missed the
// announcement (reconcile); another grant keeps working.
func TestRevokedGrantIsRefusedOverGRPC(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	r := testharness.StartRedis(t)
	rdb := fleetRedis(t, r)
	rev := revocation.NewRevoker(rdb, time.Hour, nil)
	mint := func(grant string) string {
		return iss.Mint(t, tokentest.Token{Audience: actsAud, Scope: "openid profile email", GrantID: grant})
	}
	svc, id := runCore(t, iss, r)
	// A replica that never hears an announcement in time: its reconcile
	// is the only way it can learn (1s; the live one's default is 15s).
	_, late := runCore(t, iss, r, "REVOCATION_RECONCILE_INTERVAL", "1s")

	revoked, kept := mint("grant-revoked"), mint("grant-kept")
	accepted(t, id, revoked, "before revocation")
	accepted(t, late, revoked, "before revocation (late replica)")
	if err := rev.Revoke(context.Background(), "grant-revoked"); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, id, revoked, time.Second, "after the announcement")
	accepted(t, id, kept, "another grant")

	// Written to the records without an announcement: a lost message.
	exp := float64(time.Now().Add(time.Hour).UnixMilli())
	if err := rdb.ZAdd(context.Background(), rdb.Key("revocation", "grants"), redis.Z{Score: exp, Member: "grant-missed"}).Err(); err != nil {
		t.Fatal(err)
	}
	missed := mint("grant-missed")
	refusedWithin(t, late, missed, 10*time.Second, "replica that missed the announcement")

	// Restart: the new process loads the records before serving.
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	_, restarted := runCore(t, iss, r, "REVOCATION_RECONCILE_INTERVAL", "5m")
	refusedWithin(t, restarted, revoked, time.Second, "after a restart")
	refusedWithin(t, restarted, missed, time.Second, "after a restart (never announced)")
	accepted(t, restarted, kept, "another grant after a restart")
}

// TestRedisDownAtStart: capability-core starts and serves while Redis is
// down (verification does not need it), and follows revocations once
// Redis is back.
func TestRedisDownAtStart(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	r := testharness.StartRedis(t)
	r.Stop()
	_, id := runCore(t, iss, r, "REVOCATION_RECONCILE_INTERVAL", "1s")
	tok := iss.Mint(t, tokentest.Token{Audience: actsAud, Scope: "openid profile email", GrantID: "grant-later"})
	accepted(t, id, tok, "with Redis down")
	r.Start()
	if err := revocation.NewRevoker(fleetRedis(t, r), time.Hour, nil).Revoke(context.Background(), "grant-later"); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, id, tok, 15*time.Second, "once Redis is back")
}

// TestRunsAsTheBackendACLUser: capability-core only follows revoked grants
// and pings Redis for its health tool, so the chart has it log in as the
// backends' ACL user (charts/tollgate/files/redis-backend-acl.txt), which
// cannot write a key or read a grant. Under exactly those rules it starts,
// reports Redis healthy, loads and follows revocations.
func TestRunsAsTheBackendACLUser(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	r := testharness.StartRedis(t)
	r.AddBackendUser(t, "core:", "tollgate-backend", "backend-password")
	rev := revocation.NewRevoker(fleetRedis(t, r), time.Hour, nil)
	if err := rev.Revoke(context.Background(), "grant-before"); err != nil {
		t.Fatal(err)
	}
	svc, id := runCore(t, iss, r,
		"REDIS_URL", "redis://tollgate-backend@"+r.Addr()+"/0", "REDIS_PASSWORD", "backend-password",
		// INFO and CONFIG GET are not the user's: the fleet checks the
		// server's persistence (the chart sets this for capability-core).
		"REDIS_CHECK_DURABLE", "false",
		"REVOCATION_RECONCILE_INTERVAL", "5m")
	conn, err := grpc.NewClient(svc.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health, err := capabilityv1.NewHealthServiceClient(conn).GetHealth(context.Background(), &capabilityv1.GetHealthRequest{})
	if err != nil || health.GetStatus() != "ok" {
		t.Fatalf("health as the backend user: %v (%v)", health, err)
	}
	mint := func(grant string) string {
		return iss.Mint(t, tokentest.Token{Audience: actsAud, Scope: "openid profile email", GrantID: grant})
	}
	refusedWithin(t, id, mint("grant-before"), time.Second, "revoked before the start (loaded)")
	after := mint("grant-after")
	accepted(t, id, after, "before its revocation")
	if err := rev.Revoke(context.Background(), "grant-after"); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, id, after, 2*time.Second, "after the announcement")

	// The same user with the production default, REDIS_CHECK_DURABLE on:
	// the start fails and says why, rather than serving unchecked.
	env := map[string]string{
		"GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": iss.Addr,
		"MCP_RESOURCE_URL": mcpAud, "ACTIONS_AUDIENCE": actsAud, "REDIS_KEY_PREFIX": "core:",
		"REDIS_URL": "redis://tollgate-backend@" + r.Addr() + "/0", "REDIS_PASSWORD": "backend-password",
		"REDIS_CHECK_DURABLE": "true",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = core.Run(ctx, func(k string) string { return env[k] }, io.Discard, func(map[string]net.Addr) {})
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("start with the persistence check as the backend user: %v, want a NOPERM refusal", err)
	}
}
