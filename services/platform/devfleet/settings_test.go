package devfleet

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// TestSettingsFromEnv: make dev's PUBLIC_URL and DEV_ALLOWED_ORIGINS as
// docs/development.md states them — normalized origins, the Inspector's
// origin by default, empty for none — and every mistake reported at once.
func TestSettingsFromEnv(t *testing.T) {
	for name, tc := range map[string]struct {
		env     map[string]string
		public  string
		origins []string
	}{
		"unset":                         {map[string]string{}, "", []string{InspectorOrigin}},
		"tunnel, trailing slash, case":  {map[string]string{"PUBLIC_URL": " HTTPS://Abc.TryCloudflare.com/ "}, "https://abc.trycloudflare.com", []string{InspectorOrigin}},
		"port kept":                     {map[string]string{"PUBLIC_URL": "https://abc.example:8443"}, "https://abc.example:8443", []string{InspectorOrigin}},
		"empty PUBLIC_URL is unset":     {map[string]string{"PUBLIC_URL": "  "}, "", []string{InspectorOrigin}},
		"empty origins: none":           {map[string]string{"DEV_ALLOWED_ORIGINS": ""}, "", []string{}},
		"list, spaces, slashes, case":   {map[string]string{"DEV_ALLOWED_ORIGINS": "http://localhost:6274, HTTP://LocalHost:5173/ ,,"}, "", []string{InspectorOrigin, "http://localhost:5173"}},
		"the Inspector not listed: off": {map[string]string{"DEV_ALLOWED_ORIGINS": "https://app.example"}, "", []string{"https://app.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := SettingsFromEnv(lookupFrom(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if s.PublicURL != tc.public || !slices.Equal(s.AllowedOrigins, tc.origins) {
				t.Errorf("settings %+v, want PublicURL %q, AllowedOrigins %q", s, tc.public, tc.origins)
			}
		})
	}

	_, err := SettingsFromEnv(lookupFrom(map[string]string{
		"PUBLIC_URL":          "https://abc.example/mcp",
		"DEV_ALLOWED_ORIGINS": "javascript:alert(1),*,https://ok.example/path,http://fine.example",
	}))
	want := []string{
		`PUBLIC_URL: "https://abc.example/mcp" must be an origin only (scheme://host[:port]), without path, query or credentials`,
		`DEV_ALLOWED_ORIGINS: "javascript:alert(1)" is not an http(s) origin (scheme://host[:port])`,
		`DEV_ALLOWED_ORIGINS: "*" is a wildcard; list every allowed origin explicitly`,
		`DEV_ALLOWED_ORIGINS: "https://ok.example/path" must be an origin only, without path, query or credentials`,
	}
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	for name, v := range map[string]string{
		"scheme":      "ftp://abc.example",
		"no host":     "https://",
		"credentials": "https://u:p@abc.example",
		"query":       "https://abc.example?x=1",
	} {
		if _, err := SettingsFromEnv(lookupFrom(map[string]string{"PUBLIC_URL": v})); err == nil || !strings.Contains(err.Error(), "PUBLIC_URL: ") {
			t.Errorf("%s: PUBLIC_URL=%s: %v, want a PUBLIC_URL problem", name, v, err)
		}
	}
}

// TestBusyPortsAreNamed: make dev checks its ports before building; a
// port something else holds is named with its listener, the others not.
func TestBusyPortsAreNamed(t *testing.T) {
	p, lns, err := ListenFreePorts()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	// All held here: every listener is named, example backend's included.
	if busy := p.Busy(true, true); len(busy) != len(lns) {
		t.Fatalf("with every port held, busy %v: want all %d named", busy, len(lns))
	}
	// Only the ingress's and Redis's still held (the others were released
	// just now, so nothing else had time to take them).
	for port, ln := range lns {
		if port != p.Ingress && port != p.Redis {
			ln.Close()
			delete(lns, port)
		}
	}
	want := []string{fmt.Sprintf("%d (local ingress)", p.Ingress), fmt.Sprintf("%d (redis-server)", p.Redis)}
	if busy := p.Busy(true, false); !slices.Equal(busy, want) {
		t.Errorf("busy %v, want %v", busy, want)
	}
	// With an external Redis its port is not make dev's.
	if busy := p.Busy(false, false); !slices.Equal(busy, want[:1]) {
		t.Errorf("busy with an external Redis %v, want %v", busy, want[:1])
	}
}

// TestHeldPortsKeepASecondMakeDevOut: make dev holds its ports from its
// check until the fleet takes them, so a second make dev started during
// the first one's build is refused at once, every port named; a refused
// Hold keeps none of the ports it could bind.
func TestHeldPortsKeepASecondMakeDevOut(t *testing.T) {
	var p Ports
	var held map[int]net.Listener
	// ListenFreePorts' ports, released and held again: another process may
	// take one in between, so try a few sets.
	for try := 0; held == nil; try++ {
		var lns map[int]net.Listener
		var err error
		if p, lns, err = ListenFreePorts(); err != nil {
			t.Fatal(err)
		}
		for _, ln := range lns {
			ln.Close()
		}
		var busy []string
		if held, busy = p.Hold(true, false); held == nil && try == 4 {
			t.Fatalf("no set of free ports could be held: last busy %v", busy)
		}
	}
	closeAll := func(m map[int]net.Listener) {
		for _, ln := range m {
			ln.Close()
		}
	}
	defer func() { closeAll(held) }()
	if len(held) != 13 {
		t.Fatalf("held %d listeners, want 13 (the fleet's and Redis's)", len(held))
	}
	second, busy := p.Hold(true, false)
	if second != nil || len(busy) != len(held) {
		closeAll(second)
		t.Fatalf("a second make dev while the first holds its ports: held %d, busy %v — want every port named", len(second), busy)
	}
	if busy := p.Busy(true, false); len(busy) != len(held) {
		t.Errorf("Busy while held: %v", busy)
	}
	// Only the ingress's port still taken: the second is refused naming it
	// alone, and holds nothing it bound meanwhile.
	for port, ln := range held {
		if port != p.Ingress {
			ln.Close()
			delete(held, port)
		}
	}
	second, busy = p.Hold(true, false)
	if want := []string{fmt.Sprintf("%d (local ingress)", p.Ingress)}; second != nil || !slices.Equal(busy, want) {
		closeAll(second)
		t.Fatalf("held %d, busy %v; want none held and %v", len(second), busy, want)
	}
	closeAll(held)
	held = nil
	third, busy := p.Hold(true, false)
	defer closeAll(third)
	if third == nil {
		t.Errorf("after a refused Hold, the ports are still taken: %v", busy)
	}
}

// TestSettingsCheckWhatEveryServiceReads: variables of make dev's
// environment that reach every service as they are (CAPABILITY_*,
// REDIS_*_TIMEOUT, LOG_LEVEL, …) are checked with the platform's own
// parsers before anything is built or started, each refusal worded as the
// service words it; a value make dev sets itself (TOLLGATE_ENV) is not
// the environment's to break, and good values pass.
func TestSettingsCheckWhatEveryServiceReads(t *testing.T) {
	_, err := SettingsFromEnv(lookupFrom(map[string]string{
		"CAPABILITY_BACKENDS":           "Bad=1",
		"CAPABILITY_REFRESH_INTERVAL":   "0",
		"REDIS_COMMAND_TIMEOUT":         "5h",
		"REVOCATION_RECONCILE_INTERVAL": "1h",
		"LOG_LEVEL":                     "loud",
		"GRPC_STREAM_WORKERS":           "-1",
		"OTEL_TRACES_EXPORTER":          "zipkin",
		"TOLLGATE_ENV":                  "staging",
	}))
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, w := range []string{
		`CAPABILITY_BACKENDS: "Bad=1": `,
		`CAPABILITY_REFRESH_INTERVAL: 0s is outside [1s, 1h0m0s]`,
		`REDIS_COMMAND_TIMEOUT: 5h0m0s is out of range: must be more than 0 and at most 1m`,
		`REVOCATION_RECONCILE_INTERVAL: 1h0m0s is outside [1s, 5m0s]`,
		`LOG_LEVEL: "loud" is not a level`,
		`GRPC_STREAM_WORKERS: -1 is outside 0–4096`,
		`OTEL_TRACES_EXPORTER: "zipkin" is not supported`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "TOLLGATE_ENV") {
		t.Errorf("TOLLGATE_ENV is make dev's own (development), yet refused: %v", err)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"bad name":               {map[string]string{"CAPABILITY_BACKENDS": "Notes=127.0.0.1:7001"}, `CAPABILITY_BACKENDS: "Notes=127.0.0.1:7001": name "Notes" must be lower-case`},
		"reserved name":          {map[string]string{"CAPABILITY_BACKENDS": "auth-server=127.0.0.1:7001"}, `the name "auth-server" is reserved`},
		"twice":                  {map[string]string{"CAPABILITY_BACKENDS": "a=127.0.0.1:7001,a=127.0.0.1:7002"}, `CAPABILITY_BACKENDS: backend name "a" appears twice`},
		"not a duration":         {map[string]string{"CAPABILITY_REFRESH_INTERVAL": "soon"}, `CAPABILITY_REFRESH_INTERVAL: `},
		"missing TLS file":       {map[string]string{"CAPABILITY_BACKENDS": "notes=127.0.0.1:7001", "CAPABILITY_BACKEND_NOTES_TLS_CA_FILE": "/nonexistent/ca.pem"}, `CAPABILITY_BACKEND_NOTES_TLS_CA_FILE: cannot read "/nonexistent/ca.pem"`},
		"external Redis URL":     {map[string]string{"REDIS_URL": "http://127.0.0.1:6379"}, `REDIS_URL: not a redis://, rediss:// or unix:// URL`},
		"sentinel without a URL": {map[string]string{"REDIS_MODE": "sentinel"}, `REDIS_* settings without REDIS_URL`},
	} {
		if _, err := SettingsFromEnv(lookupFrom(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v: %v, want %q", name, tc.env, err, tc.want)
		}
	}
	for name, env := range map[string]map[string]string{
		"none":                 {},
		"backends and refresh": {"CAPABILITY_BACKENDS": "capability-core=127.0.0.1:4201,notes=127.0.0.1:7001", "CAPABILITY_REFRESH_INTERVAL": "5s"},
		"timeouts":             {"REDIS_COMMAND_TIMEOUT": "500ms", "REDIS_DIAL_TIMEOUT": "1s", "LOG_LEVEL": "debug"},
		"external Redis":       {"REDIS_URL": "redis://127.0.0.1:6380/2"},
	} {
		if _, err := SettingsFromEnv(lookupFrom(env)); err != nil {
			t.Errorf("%s: %v refused: %v", name, env, err)
		}
	}
}

// TestSettingsReportEveryProblemInOneRun: a wrong make dev setting and
// REDIS_* settings without REDIS_URL are reported together, so one run of
// make dev names both (they took two runs: the external Redis was checked
// only once the other settings had passed).
func TestSettingsReportEveryProblemInOneRun(t *testing.T) {
	_, err := SettingsFromEnv(lookupFrom(map[string]string{
		"PUBLIC_URL": "abc.trycloudflare.com",
		"REDIS_MODE": "sentinel",
		"LOG_LEVEL":  "loud",
	}))
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, w := range []string{"PUBLIC_URL: ", "REDIS_* settings without REDIS_URL", `LOG_LEVEL: "loud" is not a level`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	s, err := SettingsFromEnv(lookupFrom(map[string]string{"REDIS_URL": "redis://127.0.0.1:6380/2", "REDIS_KEY_PREFIX": "dev:"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"REDIS_URL": "redis://127.0.0.1:6380/2", "REDIS_KEY_PREFIX": "dev:"}; !maps.Equal(s.ExternalRedis, want) {
		t.Errorf("ExternalRedis = %v, want %v", s.ExternalRedis, want)
	}
	if s, _ := SettingsFromEnv(lookupFrom(nil)); s.ExternalRedis != nil {
		t.Errorf("no REDIS_URL: ExternalRedis = %v, want nil (the fleet's own redis-server)", s.ExternalRedis)
	}
}
