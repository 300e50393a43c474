package config

import (
	"errors"
	"strings"
	"testing"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// Each bad value of the signing queue's and the collector's settings is
// refused at startup, on its own, with an error naming the variable; the
// bounds are accepted.
func TestSigningAndGCSettingsRefused(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"SIGNING_CONCURRENCY", "-1", "SIGNING_CONCURRENCY: -1 is not 0 (one per CPU) to 256"},
		{"SIGNING_CONCURRENCY", "257", "SIGNING_CONCURRENCY: 257 is not 0 (one per CPU) to 256"},
		{"SIGNING_CONCURRENCY", "1e9", `SIGNING_CONCURRENCY: "1e9" is not an integer`},
		{"SIGNING_CONCURRENCY", "99999999999999999999", `SIGNING_CONCURRENCY: "99999999999999999999" is not an integer`},
		{"SIGNING_CONCURRENCY", "four", `SIGNING_CONCURRENCY: "four" is not an integer`},
		{"SIGNING_QUEUE_WAIT", "0s", "SIGNING_QUEUE_WAIT: 0s is not 1ms to 1m"},
		{"SIGNING_QUEUE_WAIT", "-1s", "SIGNING_QUEUE_WAIT: -1s is not 1ms to 1m"},
		{"SIGNING_QUEUE_WAIT", "2h", "SIGNING_QUEUE_WAIT: 2h0m0s is not 1ms to 1m"},
		{"SIGNING_QUEUE_WAIT", "2", `SIGNING_QUEUE_WAIT`},
		{"GC_PERCENT", "0", "GC_PERCENT: 0 is not a positive percentage"},
		{"GC_PERCENT", "-5", "GC_PERCENT: -5 is not a positive percentage"},
		{"GC_PERCENT", "off", `GC_PERCENT: "off" is not an integer`},
		{"GC_PERCENT", "99999999999999999999", `GC_PERCENT: "99999999999999999999" is not an integer`},
	} {
		env := base()
		env[tc.key] = tc.value
		_, err := Load(pconfig.MapEnv(env))
		var ce *pconfig.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: %v, want an error containing %q", tc.key, tc.value, err, tc.want)
		}
	}
	for _, env := range []map[string]string{
		{"SIGNING_CONCURRENCY": "0", "SIGNING_QUEUE_WAIT": "1ms", "GC_PERCENT": "1"},
		{"SIGNING_CONCURRENCY": "256", "SIGNING_QUEUE_WAIT": "1m", "GC_PERCENT": "400"},
	} {
		e := base()
		for k, v := range env {
			e[k] = v
		}
		if _, err := Load(pconfig.MapEnv(e)); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
}
