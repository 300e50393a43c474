package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTemplateRefusesWhatTheServicesRefuse: values the schema and
// templates/validate.yaml accept but every pod of a component refuses at
// start ("invalid configuration", CrashLoopBackOff), which helm install
// --wait shows only as a timeout and helm upgrade as a stuck rollout — the
// same reason TestTemplateRefuses refuses an issuer URL with a path. Each
// want is the values path (or the variable) the refusal should name.
func TestTemplateRefusesWhatTheServicesRefuse(t *testing.T) {
	minimal := valuesCases(t)["minimal"]
	for _, c := range []struct{ name, values, want string }{
		// config.Origins: `"*" is a wildcard; list every allowed origin explicitly` (the schema's pattern admits "*").
		{"wildcard origin", "publicUrls:\n  allowedOrigins: [\"*\"]\n", "allowedOrigins"},
		// config.Origins: `must use https in production`.
		{"http origin in production", "publicUrls:\n  allowedOrigins: [\"http://localhost:6274\"]\n", "allowedOrigins"},
		{"http redirect origin in production", "authServer:\n  trustedRedirectOrigins: [\"http://gpt.example.com\"]\n", "trustedRedirectOrigins"},
		// auth-server: `none stands alone`.
		{"none beside an origin", "authServer:\n  trustedRedirectOrigins: [none, \"https://chatgpt.com\"]\n", "trustedRedirectOrigins"},
		// config.Common: `SHUTDOWN_TIMEOUT: must be positive`.
		{"zero shutdown timeout", "shutdownTimeout: 0s\n", "shutdownTimeout"},
		// mcp-gateway: shorter than CORE_CALL_TIMEOUT (5s) / not shorter than SESSION_IDLE_TTL (30m).
		{"eviction under the call timeout", "mcpGateway:\n  sessionEvictIdleAfter: 1s\n", "sessionEvictIdleAfter"},
		{"eviction over the idle TTL", "mcpGateway:\n  sessionEvictIdleAfter: 45m\n", "sessionEvictIdleAfter"},
		// clientip: `not a CIDR or IP address`.
		{"trusted proxy not an address", "trustedProxies: [\"999.1.1.1/99\"]\n", "trustedProxies"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(f, []byte(c.values), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := render(t, minimal, f)
			if err == nil {
				t.Fatalf("helm template accepted %q, which the services refuse at start", c.values)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not mention %q:\n%v", c.want, err)
			}
		})
	}
}
