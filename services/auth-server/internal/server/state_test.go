package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRedisState: after full flows (authorize, consent-free code, token,
// refresh, revoke), every key in Redis has a TTL and no key or value holds
// a token, code or state in the clear.
func TestRedisState(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	tr := f.exchange(c, a, code)
	if tr.Status != 200 {
		t.Fatalf("token: %d %s", tr.Status, tr.Error)
	}
	r1 := f.refresh(c, tr.RefreshToken)
	if r1.Status != 200 {
		t.Fatalf("refresh: %d %s", r1.Status, r1.Error)
	}
	secrets := map[string]string{"code": code, "access token": tr.AccessToken, "refresh token": tr.RefreshToken,
		"new refresh token": r1.RefreshToken, "client secret": c.ClientSecret}
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 5 {
		t.Fatalf("only %d keys in Redis: %v", len(keys), keys)
	}
	for _, k := range keys {
		// PTTL is -1 for a key without a TTL, the one failure. A key with
		// little time left reads TTL 0 (whole seconds, rounded), and one
		// that expired since KEYS reads -2: both had a TTL, and a slow
		// machine gets there.
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl == -1 {
			t.Errorf("key %q has no TTL", k)
		}
		var val string
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			val = rdb.Get(ctx, k).Val()
		case "set":
			val = strings.Join(rdb.SMembers(ctx, k).Val(), " ")
		default:
			val = fmt.Sprint(rdb.HGetAll(ctx, k).Val())
		}
		for name, s := range secrets {
			// fosite tokens are key.signature: the key part must never be stored.
			part := s
			if i := strings.IndexByte(s, '.'); i > 0 && !strings.Contains(s[i+1:], ".") {
				part = s[:i]
			}
			if strings.Contains(k, part) || strings.Contains(val, part) {
				t.Errorf("%s found in the clear in key %q", name, k)
			}
		}
	}
	// Logs never carry the secrets either.
	logs := f.AS.Logs.String()
	for name, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("%s found in the auth-server log", name)
		}
	}
	// Metrics: the grants are counted.
	m := get(t, f.Admin()+"/metrics")
	for _, want := range []string{
		`tollgate_auth_grants_total{client="local-test",grant_type="authorization_code",result="ok"} 1`,
		`tollgate_auth_grants_total{client="local-test",grant_type="refresh_token",result="ok"} 1`,
		`tollgate_auth_upstream_request_duration_seconds_count{operation="token",result="ok"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
