package devfleet

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/services/platform/config"
)

// InspectorOrigin is the MCP Inspector UI's browser origin (its default
// CLIENT_PORT 6274), allowed by default under `make dev`.
const InspectorOrigin = "http://localhost:6274"

// Settings are `make dev`'s own environment variables.
type Settings struct {
	// PublicURL (PUBLIC_URL) is the origin clients use, typically an HTTPS
	// tunnel to the local ingress (https://abc.trycloudflare.com). The
	// issuer, the MCP and Actions resource URLs and the allowed origins
	// follow it; the local ingress still listens on localhost, and requests
	// arrive there with the tunnel's Host, which the gateway accepts
	// because it is the MCP resource's host. "" keeps
	// http://localhost:<ingress port>.
	PublicURL string
	// AllowedOrigins (DEV_ALLOWED_ORIGINS, comma-separated) are browser
	// origins allowed besides the public and local origins. Unset, it is
	// the MCP Inspector's http://localhost:6274; set it empty for none.
	AllowedOrigins []string
	// ExampleBackend (EXAMPLE_BACKEND=1, or any true value of
	// strconv.ParseBool) starts the example backend beside the fleet and
	// adds it to CAPABILITY_BACKENDS (Options.ExampleBackend).
	ExampleBackend bool
	// ExternalRedis are the REDIS_* variables of an external Redis
	// (ExternalRedisEnv): nil when REDIS_URL and REDIS_URL_FILE are unset
	// and the fleet starts its own redis-server.
	ExternalRedis map[string]string
}

// SettingsFromEnv reads PUBLIC_URL, DEV_ALLOWED_ORIGINS, EXAMPLE_BACKEND and
// an external Redis's REDIS_* (ExternalRedisEnv), checks what every service
// reads (checkFleetSettings), and reports every problem at once — one run
// of make dev names them all.
func SettingsFromEnv(lookup func(string) (string, bool)) (Settings, error) {
	var s Settings
	var p config.Problems
	if v, _ := lookup("PUBLIC_URL"); strings.TrimSpace(v) != "" {
		v = strings.TrimRight(strings.TrimSpace(v), "/")
		u, err := url.Parse(v)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			p.Addf("PUBLIC_URL: %q is not an origin like https://abc.trycloudflare.com", v)
		case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			p.Addf("PUBLIC_URL: %q must be an origin only (scheme://host[:port]), without path, query or credentials", v)
		default:
			s.PublicURL = strings.ToLower(u.Scheme + "://" + u.Host)
		}
	}
	list := []string{InspectorOrigin}
	if v, ok := lookup("DEV_ALLOWED_ORIGINS"); ok {
		list = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				list = append(list, strings.TrimRight(o, "/"))
			}
		}
	}
	s.AllowedOrigins = config.Origins(&p, "DEV_ALLOWED_ORIGINS", list, false)
	if v, _ := lookup("EXAMPLE_BACKEND"); strings.TrimSpace(v) != "" {
		on, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			p.Addf("EXAMPLE_BACKEND: %q is not 1, 0, true or false", v)
		}
		s.ExampleBackend = on
	}
	ext, err := ExternalRedisEnv(func(k string) string { v, _ := lookup(k); return v })
	if err != nil {
		p.Addf("%v", err)
	}
	s.ExternalRedis = ext
	checkFleetSettings(lookup, &p)
	return s, p.Err()
}

// checkFleetSettings runs the platform's own parsers (config.LoadCommon,
// LoadRedis, LoadBackends, LoadRevocation and their Validate) over the
// variables of make dev's environment that reach every service as they
// are — CAPABILITY_BACKENDS, CAPABILITY_REFRESH_INTERVAL, REDIS_*_TIMEOUT,
// LOG_LEVEL, OTEL_*, … — so that a wrong one stops make dev before the
// build, Redis and the dev IdP, with the message the service would have
// given. What make dev sets itself (Components) is given its value here;
// a service's own settings (DYNAMIC_CLIENT_RESOURCES, …) are still checked
// by that service when it starts.
func checkFleetSettings(lookup func(string) (string, bool), p *config.Problems) {
	set := map[string]string{
		"TOLLGATE_ENV": "development", "LOG_FORMAT": "text", "ADMIN_ADDR": "127.0.0.1:0",
		"SHUTDOWN_TIMEOUT": "15s",
	}
	env := func(k string) string {
		if v, ok := set[k]; ok {
			return v
		}
		v, _ := lookup(k)
		return v
	}
	if env("REDIS_URL") == "" && env("REDIS_URL_FILE") == "" {
		// The fleet's own redis-server. The external Redis settings are
		// not its (ExternalRedisEnv refuses them without REDIS_URL).
		for _, k := range externalRedisVars {
			set[k] = ""
		}
		set["REDIS_URL"] = "redis://127.0.0.1:6379/0"
	}
	if env("REDIS_COMMAND_TIMEOUT") == "" {
		set["REDIS_COMMAND_TIMEOUT"] = DevRedisCommandTimeout
	}
	src := config.NewSource(env)
	common := config.LoadCommon(src, "make dev")
	redis := config.LoadRedis(src, false)
	config.LoadBackends(src, "", true)
	revocation := config.LoadRevocation(src)
	*p = append(*p, src.Problems()...)
	common.Validate(p)
	redis.Validate(p, false)
	revocation.Validate(p)
}

// allowedOrigins is ALLOWED_ORIGINS of every service: the public origin,
// the local one when they differ, and the extra ones, without duplicates.
func allowedOrigins(public, local string, extra []string) []string {
	out := []string{public}
	for _, o := range append([]string{local}, extra...) {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}
