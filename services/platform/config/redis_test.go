package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/config"
)

func TestRedisURLForms(t *testing.T) {
	for _, tc := range []struct {
		mode, url string
		want      config.RedisTarget
	}{
		{"", "redis://u:pw@redis.internal:6379/2", config.RedisTarget{Addrs: []string{"redis.internal:6379"}, Username: "u", Password: "pw", DB: 2}},
		{"standalone", "rediss://redis.internal:6380/0", config.RedisTarget{Addrs: []string{"redis.internal:6380"}, TLS: true}},
		{"cluster", "rediss://u:pw@n1:7000?addr=n2:7001&addr=n3:7002", config.RedisTarget{Addrs: []string{"n1:7000", "n2:7001", "n3:7002"}, Username: "u", Password: "pw", TLS: true}},
		{"sentinel", "redis://su:spw@s1:26379/1?master_name=tg&addr=s2:26379&addr=s3:26379&username=u&password=pw",
			config.RedisTarget{Addrs: []string{"s1:26379", "s2:26379", "s3:26379"}, MasterName: "tg", Username: "u", Password: "pw", SentinelUsername: "su", SentinelPassword: "spw", DB: 1}},
	} {
		got, err := config.Redis{Mode: tc.mode, URL: tc.url}.ParseTarget()
		if err != nil {
			t.Errorf("%s %s: %v", tc.mode, tc.url, err)
			continue
		}
		if strings.Join(got.Addrs, ",") != strings.Join(tc.want.Addrs, ",") || got.MasterName != tc.want.MasterName ||
			got.Username != tc.want.Username || got.Password != tc.want.Password || got.SentinelUsername != tc.want.SentinelUsername ||
			got.SentinelPassword != tc.want.SentinelPassword || got.TLS != tc.want.TLS || got.DB != tc.want.DB {
			t.Errorf("%s %s:\n got %+v\nwant %+v", tc.mode, tc.url, got, tc.want)
		}
	}
}

func TestRedisRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    config.Redis
		want string
	}{
		{"unknown mode", config.Redis{Mode: "replicated", URL: "redis://h:1"}, `REDIS_MODE: "replicated" is not one of`},
		{"addr= in standalone", config.Redis{URL: "redis://h:1?addr=h2:2"}, "set REDIS_MODE=cluster or REDIS_MODE=sentinel"},
		{"sentinel without master", config.Redis{Mode: "sentinel", URL: "redis://s1:26379?addr=s2:26379"}, "needs master_name="},
		{"cluster db", config.Redis{Mode: "cluster", URL: "redis://n1:7000/3"}, "only database 0"},
		{"cluster master_name", config.Redis{Mode: "cluster", URL: "redis://n1:7000?master_name=x"}, "master_name= is for REDIS_MODE=sentinel"},
		{"bad addr", config.Redis{Mode: "cluster", URL: "redis://n1:7000?addr=nope"}, "unable to parse addr param"},
		{"unknown option", config.Redis{Mode: "sentinel", URL: "redis://s1:1?master_name=m&colour=red"}, "unexpected option: colour"},
		{"tuned option", config.Redis{URL: "redis://h:1?read_timeout=5s"}, "read_timeout is set by REDIS_COMMAND_TIMEOUT"},
		{"dialer retries", config.Redis{Mode: "cluster", URL: "redis://n1:7000?dialer_retries=5"}, "dialer_retries is set by the client (one dial"},
		{"concurrent dials", config.Redis{URL: "redis://h:1?max_concurrent_dials=2"}, "max_concurrent_dials is set by the client (dials are not queued"},
		{"concurrent dials sentinel", config.Redis{Mode: "sentinel", URL: "redis://s1:1?master_name=m&max_concurrent_dials=2"}, "max_concurrent_dials is set by the client"},
		{"pipeline pool", config.Redis{Mode: "cluster", URL: "redis://n1:7000?pipeline_pool_size=4"}, "pipeline_pool_size is set by the client (pipelines share the commands' pool"},
		{"warm pool", config.Redis{URL: "redis://h:1?min_idle_conns=4"}, "min_idle_conns is set by the client (no warm pool"},
		{"warm pool cluster", config.Redis{Mode: "cluster", URL: "redis://n1:7000?min_idle_conns=4"}, "min_idle_conns is set by the client"},
		{"connection cap", config.Redis{URL: "redis://h:1?pool_size=20&max_active_conns=10"}, "max_active_conns is set by the client (no cap on connections"},
		{"connection cap sentinel", config.Redis{Mode: "sentinel", URL: "redis://s1:1?master_name=m&max_active_conns=10"}, "max_active_conns is set by the client"},
		{"unix cluster", config.Redis{Mode: "cluster", URL: "unix:///run/redis.sock"}, "standalone only"},
		{"sentinel password elsewhere", config.Redis{Mode: "cluster", URL: "redis://n1:7000", SentinelPassword: "x"}, "only used with REDIS_MODE=sentinel"},
		{"ca without tls", config.Redis{URL: "redis://h:1", TLSCAFile: "/nonexistent/ca.pem"}, "REDIS_TLS_CA_FILE: set, but REDIS_URL is not rediss://"},
		{"ca missing", config.Redis{URL: "rediss://h:1", TLSCAFile: "/nonexistent/ca.pem"}, `REDIS_TLS_CA_FILE: cannot read "/nonexistent/ca.pem"`},
		{"brace prefix", config.Redis{URL: "redis://h:1", KeyPrefix: "{x}:"}, "REDIS_KEY_PREFIX: must not contain spaces or braces"},
	} {
		var p config.Problems
		tc.r.Validate(&p, false)
		if got := strings.Join(p, "\n"); !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems lack %q:\n%s", tc.name, tc.want, got)
		}
	}
}

// The pool's own settings are the operator's in every mode: pool_size,
// max_idle_conns, conn_max_idle_time, conn_max_lifetime and pool_fifo are
// accepted (min_idle_conns and max_active_conns are refused above).
func TestRedisPoolOptionsAccepted(t *testing.T) {
	const pool = "pool_size=20&max_idle_conns=5&conn_max_idle_time=5m&conn_max_lifetime=1h&pool_fifo=true"
	for _, r := range []config.Redis{
		{URL: "redis://h:1/0?" + pool},
		{Mode: "cluster", URL: "redis://n1:7000?addr=n2:7000&" + pool},
		{Mode: "sentinel", URL: "redis://s1:26379?master_name=m&" + pool},
	} {
		var p config.Problems
		r.Validate(&p, false)
		if len(p) > 0 {
			t.Errorf("%s %s: %v, want it accepted", r.Mode, r.URL, p)
		}
	}
}

func TestRedisProblemsAtOnceAndRedacted(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := config.NewSource(config.MapEnv(map[string]string{
		"REDIS_MODE":              "cluster",
		"REDIS_URL":               "redis://:hunter2@n1:7000?addr=bad&pool_size=x",
		"REDIS_SENTINEL_PASSWORD": "s",
		"REDIS_TLS_CA_FILE":       ca,
		"REDIS_KEY_PREFIX":        "a b",
		"REDIS_COMMAND_TIMEOUT":   "2m",
	}))
	r := config.LoadRedis(s, true)
	p := s.Problems()
	r.Validate(&p, true)
	got := strings.Join(p, "\n")
	if strings.Contains(got, "hunter2") {
		t.Errorf("a problem shows the password:\n%s", got)
	}
	for _, want := range []string{"REDIS_URL (REDIS_MODE=cluster)", "REDIS_SENTINEL_PASSWORD", "holds no PEM certificate", "REDIS_KEY_PREFIX", "REDIS_COMMAND_TIMEOUT"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if len(p) != 5 {
		t.Errorf("%d problems, want 5:\n%s", len(p), got)
	}
}

func TestRedisProductionPassword(t *testing.T) {
	for _, tc := range []struct {
		r  config.Redis
		ok bool
	}{
		{config.Redis{Mode: "cluster", URL: "redis://n1:7000?addr=n2:7000"}, false},
		// Seeds on loopback say nothing about the nodes the slot map
		// names: a cluster is never taken as loopback, like sentinels.
		{config.Redis{Mode: "cluster", URL: "redis://127.0.0.1:7000?addr=127.0.0.1:7001"}, false},
		{config.Redis{Mode: "standalone", URL: "redis://127.0.0.1:6379"}, true},
		{config.Redis{Mode: "cluster", URL: "rediss://n1:7000", Password: "pw"}, true},
		// Over plain redis:// the password is readable on the network
		// (TestRedisPlaintextPasswordInProduction).
		{config.Redis{Mode: "cluster", URL: "redis://n1:7000", Password: "pw"}, false},
		{config.Redis{Mode: "cluster", URL: "redis://n1:7000", Password: "pw", AllowPlaintextPassword: true}, true},
		// The sentinels' password is not the master's.
		{config.Redis{Mode: "sentinel", URL: "redis://:spw@127.0.0.1:26379?master_name=m", AllowPlaintextPassword: true}, false},
		{config.Redis{Mode: "sentinel", URL: "redis://127.0.0.1:26379?master_name=m&password=pw", AllowPlaintextPassword: true}, true},
		{config.Redis{Mode: "sentinel", URL: "rediss://127.0.0.1:26379?master_name=m&password=pw"}, true},
		{config.Redis{Mode: "sentinel", URL: "rediss://s1:26379?master_name=m"}, true},
	} {
		var p config.Problems
		tc.r.Validate(&p, true)
		if (len(p) == 0) != tc.ok {
			t.Errorf("%s %s: ok=%v, problems: %v", tc.r.Mode, tc.r.URL, tc.ok, p)
		}
	}
}

// TestRedisPlaintextPasswordInProduction: in production a password (the
// data nodes' or the sentinels', in the URL or in REDIS_PASSWORD,
// REDIS_SENTINEL_PASSWORD or their _FILE forms) is refused over plain
// redis:// to a server not on loopback, naming REDIS_URL and both ways
// out, unless REDIS_ALLOW_PLAINTEXT_PASSWORD=true; development accepts it
// as before. Read through the real environment parsing.
func TestRedisPlaintextPasswordInProduction(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		refused bool
	}{
		{"password in the URL", map[string]string{"REDIS_URL": "redis://:hunter2@redis.internal:6379/0"}, true},
		{"user and password in the URL", map[string]string{"REDIS_URL": "redis://tollgate:hunter2@10.0.0.7:6379/0"}, true},
		{"REDIS_PASSWORD_FILE", map[string]string{"REDIS_URL": "redis://redis.internal:6379/0", "REDIS_PASSWORD_FILE": pwFile}, true},
		{"cluster", map[string]string{"REDIS_MODE": "cluster", "REDIS_URL": "redis://n1:7000?addr=n2:7000", "REDIS_PASSWORD": "hunter2"}, true},
		{"sentinel, data nodes' password", map[string]string{"REDIS_MODE": "sentinel", "REDIS_URL": "redis://s1:26379?master_name=m&password=hunter2"}, true},
		{"sentinel, sentinels' password", map[string]string{"REDIS_MODE": "sentinel", "REDIS_URL": "redis://s1:26379?master_name=m&password=x", "REDIS_SENTINEL_PASSWORD": "hunter2", "REDIS_ALLOW_PLAINTEXT_PASSWORD": "no"}, true},
		{"opt-out", map[string]string{"REDIS_URL": "redis://:hunter2@redis.internal:6379/0", "REDIS_ALLOW_PLAINTEXT_PASSWORD": "true"}, false},
		{"TLS", map[string]string{"REDIS_URL": "rediss://:hunter2@redis.internal:6380/0"}, false},
		{"sentinel over TLS", map[string]string{"REDIS_MODE": "sentinel", "REDIS_URL": "rediss://:spw@s1:26379?master_name=m&password=hunter2"}, false},
		{"loopback", map[string]string{"REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0"}, false},
		{"loopback, 127.0.0.0/8", map[string]string{"REDIS_URL": "redis://:hunter2@127.3.2.1:6379/0"}, false},
		{"loopback, IPv6", map[string]string{"REDIS_URL": "redis://:hunter2@[::1]:6379/0"}, false},
		{"loopback, IPv6 long form", map[string]string{"REDIS_URL": "redis://:hunter2@[0:0:0:0:0:0:0:1]:6379/0"}, false},
		{"localhost", map[string]string{"REDIS_URL": "redis://:hunter2@localhost:6379/0"}, false},
		{"a name that begins with 127.", map[string]string{"REDIS_URL": "redis://:hunter2@127.attacker.example:6379/0"}, true},
		{"a name that begins with 127., REDIS_PASSWORD", map[string]string{"REDIS_URL": "redis://127.0.0.1.nip.io:6379/0", "REDIS_PASSWORD": "hunter2"}, true},
		{"cluster seeded on loopback", map[string]string{"REDIS_MODE": "cluster", "REDIS_URL": "redis://127.0.0.1:7000?addr=127.0.0.1:7001", "REDIS_PASSWORD": "hunter2"}, true},
		{"unix socket", map[string]string{"REDIS_URL": "unix:///run/redis.sock", "REDIS_PASSWORD": "hunter2"}, false},
	} {
		for _, env := range []string{"production", "development"} {
			e := map[string]string{"TOLLGATE_ENV": env}
			for k, v := range tc.env {
				e[k] = v
			}
			s := config.NewSource(config.MapEnv(e))
			c := config.LoadCommon(s, "svc")
			r := config.LoadRedis(s, c.Production())
			p := s.Problems()
			r.Validate(&p, c.Production())
			got := strings.Join(p, "\n")
			if strings.Contains(got, "hunter2") {
				t.Errorf("%s (%s): a problem shows the password:\n%s", tc.name, env, got)
			}
			refused := strings.Contains(got, "REDIS_URL: a password over plain redis:// is readable on the network")
			if want := tc.refused && env == "production"; refused != want {
				t.Errorf("%s (%s): refused=%v, want %v; problems:\n%s", tc.name, env, refused, want, got)
			}
			if refused && (!strings.Contains(got, "rediss://") || !strings.Contains(got, "REDIS_ALLOW_PLAINTEXT_PASSWORD=true")) {
				t.Errorf("%s: the refusal does not name both ways out: %s", tc.name, got)
			}
			if len(p) > 0 && !refused {
				t.Errorf("%s (%s): unexpected problems:\n%s", tc.name, env, got)
			}
			// The warning the services log when the opt-out is in use.
			if want := tc.refused || tc.name == "opt-out"; r.PlaintextPassword() != want {
				t.Errorf("%s: PlaintextPassword() = %v, want %v", tc.name, r.PlaintextPassword(), want)
			}
		}
	}
}

// TestRedisURLPoolSettingsOutOfRange: REDIS_URL's pool options are the
// operator's (docs/reference/configuration.md), but a negative or oversized
// one passed Validate and every service then panicked in go-redis at start
// ("panic: makechan: size out of range", "PoolSize value … exceeds maximum
// allowed value") — a goroutine dump instead of the problem list naming
// REDIS_URL. In every mode; 0 and ordinary sizes are accepted.
func TestRedisURLPoolSettingsOutOfRange(t *testing.T) {
	urls := map[string]string{
		"standalone": "redis://127.0.0.1:6379/0?",
		"cluster":    "redis://127.0.0.1:7000?",
		"sentinel":   "redis://127.0.0.1:26379/0?master_name=m&",
	}
	for mode, base := range urls {
		for _, q := range []string{"pool_size=-1", "pool_size=100000000000", "max_idle_conns=-1"} {
			var p config.Problems
			config.Redis{Mode: mode, URL: base + q, KeyPrefix: "t:"}.Validate(&p, false)
			name := strings.SplitN(q, "=", 2)[0]
			if err := p.Err(); err == nil || !strings.Contains(err.Error(), "REDIS_URL") || !strings.Contains(err.Error(), name+" ") {
				t.Errorf("%s %s: Validate = %v; want a problem naming REDIS_URL's %s", mode, q, err, name)
			}
		}
		for _, q := range []string{"pool_size=0", "pool_size=64", "max_idle_conns=8"} {
			var p config.Problems
			config.Redis{Mode: mode, URL: base + q, KeyPrefix: "t:"}.Validate(&p, false)
			if err := p.Err(); err != nil {
				t.Errorf("%s %s: Validate = %v; want it accepted", mode, q, err)
			}
		}
	}
}

// REDIS_DIAL_TIMEOUT, REDIS_COMMAND_TIMEOUT and REDIS_BREAKER_OPEN are each
// more than 0 and at most 1m; unset, the default. Set to 0 (meant as "no
// timeout", say) or less, each is refused, naming the variable and the
// range: a zero timeout is redisx's default, so 0 was silently 80ms (or
// 500ms).
func TestRedisTimeoutsRange(t *testing.T) {
	keys := []string{"REDIS_DIAL_TIMEOUT", "REDIS_COMMAND_TIMEOUT", "REDIS_BREAKER_OPEN"}
	load := func(env map[string]string) (config.Redis, string) {
		env["REDIS_URL"] = "redis://h:1"
		s := config.NewSource(config.MapEnv(env))
		r := config.LoadRedis(s, false)
		p := s.Problems()
		r.Validate(&p, false)
		if err := p.Err(); err != nil {
			return r, err.Error()
		}
		return r, ""
	}
	r, problems := load(map[string]string{})
	if problems != "" || r.DialTimeout != config.DefaultRedisDialTimeout || r.CommandTimeout != config.DefaultRedisCommandTimeout || r.BreakerOpen != config.DefaultRedisBreakerOpen {
		t.Errorf("unset: %+v %s; want the defaults", r, problems)
	}
	defaults := map[string]string{"REDIS_DIAL_TIMEOUT": "80ms", "REDIS_COMMAND_TIMEOUT": "80ms", "REDIS_BREAKER_OPEN": "500ms"}
	for _, key := range keys {
		for _, v := range []string{"1ns", "1m"} {
			if _, problems := load(map[string]string{key: v}); problems != "" {
				t.Errorf("%s=%s: %s; want it accepted", key, v, problems)
			}
		}
		for v, want := range map[string]string{
			"0":     key + ": 0s is out of range: must be more than 0 and at most 1m (unset: " + defaults[key] + ")",
			"0s":    key + ": 0s is out of range: must be more than 0 and at most 1m (unset: " + defaults[key] + ")",
			"-1s":   key + ": -1s is out of range: must be more than 0 and at most 1m (unset: " + defaults[key] + ")",
			"1m1s":  key + ": 1m1s is out of range: must be more than 0 and at most 1m",
			"never": key + `: "never" is not a duration`,
		} {
			_, problems := load(map[string]string{key: v})
			if !strings.Contains(problems, want) {
				t.Errorf("%s=%s: problems %q, want %q", key, v, problems, want)
			}
			if n := strings.Count(problems, key); n != 1 {
				t.Errorf("%s=%s: %d problems name it, want 1: %s", key, v, n, problems)
			}
		}
	}
}
