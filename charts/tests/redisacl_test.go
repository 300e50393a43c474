package tests

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundledRedisBackendUser renders the chart, starts a real
// redis-server exactly as the bundled Redis's container does — its
// ConfigMap's redis.conf, its `sh -c` command and the passwords from the
// rendered Secrets — and checks, with redis-cli as a backend would log in
// (the backend Secret's username and password), that the user the chart
// creates reads the revoked grants and nothing else. The same rules run the
// real revocation follower in services/platform/revocation's
// TestBackendACLUser.
func TestBundledRedisBackendUser(t *testing.T) {
	server := lookRedis(t)
	for _, tc := range []struct {
		name, prefix string
		// A key the user must not read although a careless pattern would
		// match it (the prefix's glob characters taken as globs).
		outside string
	}{
		{"default prefix", "tollgate:", "tollgate:as:grant2:{g}"},
		{"prefix with glob characters", "t*[a]?:", "tXa!:revocation:grants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(values, []byte("redis:\n  keyPrefix: \""+tc.prefix+"\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := render(t, filepath.Join(chartDir(t), "ci", "minimal-values.yaml"), values)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			var conf string
			var command []string
			secrets := map[string]map[string]string{}
			for _, d := range splitDocs(t, out) {
				name := str(d, "metadata", "name")
				switch d["kind"] {
				case "ConfigMap":
					if c := str(d, "data", "redis.conf"); c != "" {
						conf = c
					}
				case "Secret":
					data := map[string]string{}
					for k, v := range dig(d, "data") {
						b, err := base64.StdEncoding.DecodeString(v.(string))
						if err != nil {
							t.Fatalf("Secret %s: %s: %v", name, k, err)
						}
						data[k] = string(b)
					}
					secrets[name] = data
				case "StatefulSet":
					for _, c := range list(dig(d, "spec", "template", "spec"), "containers") {
						if c["name"] == "redis" {
							for _, a := range c["command"].([]any) {
								command = append(command, a.(string))
							}
						}
					}
				}
			}
			backend := secrets["tollgate-redis-backend"]
			fleetPassword := secrets["tollgate-redis"]["redis-password"]
			if conf == "" || len(command) < 4 || backend == nil || fleetPassword == "" {
				t.Fatalf("no bundled Redis rendered (redis.conf %t, command %q, Secrets %v)", conf != "", command, keys(secrets))
			}
			if backend["username"] != "tollgate-backend" || len(backend["password"]) < 32 {
				t.Fatalf("backend Secret: username %q, a %d-character password", backend["username"], len(backend["password"]))
			}
			u, err := url.Parse(backend["redis-url"])
			if err != nil || u.User.Username() != "tollgate-backend" || u.Host != "tollgate-redis.tollgate.svc:6379" {
				t.Errorf("backend Secret's redis-url %q (%v): want the user at tollgate-redis.tollgate.svc:6379", backend["redis-url"], err)
			} else if p, _ := u.User.Password(); p != backend["password"] {
				t.Errorf("backend Secret's redis-url carries another password than its password key")
			}

			// The container's config on a free loopback port, data in a
			// temporary directory.
			dir := t.TempDir()
			port := freePort(t)
			confFile := localRedisConf(t, conf, dir, port)
			if command[0] != "sh" || command[1] != "-c" {
				t.Fatalf("the container's command %q is not sh -c", command)
			}
			script := localRedisScript(t, command[2], server, confFile, dir)
			cmd := exec.Command("sh", append([]string{"-c", script}, command[3:]...)...)
			cmd.Env = append(os.Environ(), "REDIS_PASSWORD="+fleetPassword, "REDIS_BACKEND_PASSWORD="+backend["password"])
			startLocalRedis(t, cmd, dir, port, fleetPassword, "the rendered command")
			cli := func(user, password string, args ...string) string { return redisCLI(port, user, password, args...) }

			records := tc.prefix + "revocation:grants"
			if got := cli("default", fleetPassword, "ZADD", records, "9999999999999", "grant-1"); got != "1" {
				t.Fatalf("the fleet's ZADD: %q", got)
			}
			for _, k := range []string{tc.outside, tc.prefix + "as:code:{c}"} {
				if got := cli("default", fleetPassword, "ZADD", k, "1", "x"); got != "1" {
					t.Fatalf("the fleet's ZADD %s: %q", k, got)
				}
			}
			user, password := backend["username"], backend["password"]
			if got := cli(user, password, "ZRANGE", records, "0", "-1"); got != "grant-1" {
				t.Errorf("the backend's ZRANGE of %s: %q, want grant-1", records, got)
			}
			for what, args := range map[string][]string{
				"ZREM of the revocation set": {"ZREM", records, "grant-1"},
				"ZADD to the revocation set": {"ZADD", records, "1", "y"},
				"ZRANGE of " + tc.outside:    {"ZRANGE", tc.outside, "0", "-1"},
				"ZRANGE of a code's key":     {"ZRANGE", tc.prefix + "as:code:{c}", "0", "-1"},
				"CONFIG GET requirepass":     {"CONFIG", "GET", "requirepass"},
				"ACL LIST":                   {"ACL", "LIST"},
				"KEYS":                       {"KEYS", "*"},
			} {
				if got := cli(user, password, args...); !strings.HasPrefix(got, "NOPERM") {
					t.Errorf("the backend's %s: %q, want NOPERM", what, got)
				}
			}
			if got := cli(user, "wrong-password", "PING"); !strings.Contains(got, "WRONGPASS") {
				t.Errorf("the backend user with a wrong password: %q, want WRONGPASS", got)
			}
			if got := cli("default", fleetPassword, "ZCARD", records); got != "1" {
				t.Errorf("the revocation set holds %s records after the backend's refused writes, want 1", got)
			}
		})
	}
}

// TestBundledRedisBackendUserSources: with an existing Secret the chart
// writes none and the container reads the password from it; disabled, the
// bundled Redis runs as before, with its one password.
func TestBundledRedisBackendUserSources(t *testing.T) {
	for _, tc := range []struct {
		name, values     string
		wantSecret       bool
		wantEnv          string // secretKeyRef of REDIS_BACKEND_PASSWORD, "" for none
		wantUserArgument bool   // the script writes the backend's user line
		// capability-core's REDIS_URL override and the Secret its
		// redis-password file comes from.
		wantCoreURL, wantCoreSecret string
	}{
		{"generated", "", true, "tollgate-redis-backend/password", true,
			"redis://tollgate-backend@tollgate-redis:6379/0", "tollgate-redis-backend/password"},
		{"existing Secret", "redis:\n  bundled:\n    backendUser:\n      existingSecret: mine\n      existingSecretKey: pw\n", false, "mine/pw", true,
			"redis://tollgate-backend@tollgate-redis:6379/0", "mine/pw"},
		{"disabled", "redis:\n  bundled:\n    backendUser:\n      enabled: false\n", false, "", false,
			"", "tollgate-redis/redis-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(values, []byte(tc.values), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := render(t, filepath.Join(chartDir(t), "ci", "minimal-values.yaml"), values)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			var secret bool
			var env, coreURL, coreSecret, coreDurable string
			var command []any
			for _, d := range splitDocs(t, out) {
				switch {
				case d["kind"] == "Secret" && str(d, "metadata", "name") == "tollgate-redis-backend":
					secret = true
				case d["kind"] == "Deployment" && str(d, "metadata", "name") == "tollgate-capability-core":
					pod := dig(d, "spec", "template", "spec")
					for _, e := range list(list(pod, "containers")[0], "env") {
						switch e["name"] {
						case "REDIS_URL":
							coreURL, _ = e["value"].(string)
						case "REDIS_CHECK_DURABLE":
							coreDurable, _ = e["value"].(string)
						}
					}
					for _, v := range list(pod, "volumes") {
						for _, src := range list(dig(v, "projected"), "sources") {
							for _, item := range list(dig(src, "secret"), "items") {
								if item["path"] == "redis-password" {
									coreSecret = fmt.Sprint(dig(src, "secret")["name"], "/", item["key"])
								}
							}
						}
					}
				case d["kind"] == "StatefulSet":
					for _, c := range list(dig(d, "spec", "template", "spec"), "containers") {
						command, _ = c["command"].([]any)
						for _, e := range list(c, "env") {
							if e["name"] == "REDIS_BACKEND_PASSWORD" {
								ref := dig(e, "valueFrom", "secretKeyRef")
								env = fmt.Sprint(ref["name"], "/", ref["key"])
							}
						}
					}
				}
			}
			if secret != tc.wantSecret || env != tc.wantEnv {
				t.Errorf("backend Secret rendered %t (want %t), REDIS_BACKEND_PASSWORD from %q (want %q)", secret, tc.wantSecret, env, tc.wantEnv)
			}
			if coreURL != tc.wantCoreURL || coreSecret != tc.wantCoreSecret || (coreURL != "") != (coreDurable == "false") {
				t.Errorf("capability-core: REDIS_URL %q (want %q), redis-password from %q (want %q), REDIS_CHECK_DURABLE %q",
					coreURL, tc.wantCoreURL, coreSecret, tc.wantCoreSecret, coreDurable)
			}
			if got := strings.Contains(fmt.Sprint(command), `line="user `); got != tc.wantUserArgument {
				t.Errorf("redis-server script %v: writes the user %t, want %t", command, got, tc.wantUserArgument)
			}
		})
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("redis:\n  bundled:\n    backendUser:\n      name: default\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := render(t, filepath.Join(chartDir(t), "ci", "minimal-values.yaml"), values); err == nil || !strings.Contains(err.Error()+out, "backendUser/name") {
		t.Errorf("backendUser.name default (the fleet's own user) was not refused: %v\n%.400s", err, out)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
