package config

import (
	"strings"
	"testing"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// TestClientSecretCacheTTLRefusedBelowASecond: the verified-secret cache
// is a hashicorp expirable LRU, whose cleanup goroutine ticks every
// TTL/100. CLIENT_SECRET_CACHE_TTL was accepted from 1ns: below 100ns the
// ticker's interval is 0 and time.NewTicker panics in that goroutine (the
// auth-server dies at start with a stack, not a configuration error);
// at 1µs–1ms it ticks every 10ns–10µs, a CPU spent on taking the cache's
// lock. 0 (no cache) and a second or more are what make sense (brk42).
func TestClientSecretCacheTTLRefusedBelowASecond(t *testing.T) {
	for _, v := range []string{"50ns", "1us", "500ms"} {
		env := base()
		env["CLIENT_SECRET_CACHE_TTL"] = v
		_, err := Load(pconfig.MapEnv(env))
		if err == nil || !strings.Contains(err.Error(), "CLIENT_SECRET_CACHE_TTL") {
			t.Errorf("CLIENT_SECRET_CACHE_TTL=%s: %v, want it refused", v, err)
		}
	}
	for _, v := range []string{"0", "1s", "10m"} {
		env := base()
		env["CLIENT_SECRET_CACHE_TTL"] = v
		if _, err := Load(pconfig.MapEnv(env)); err != nil {
			t.Errorf("CLIENT_SECRET_CACHE_TTL=%s: %v", v, err)
		}
	}
}
