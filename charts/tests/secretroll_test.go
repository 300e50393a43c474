package tests

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestRenderedPodsHideInlineSecrets: no pod template carries an inline
// secret of the values, nor anything computed from one — the checksum
// annotations used to hash the values holding them, an unsalted digest any
// reader of pods could test guesses against offline. Each case renders
// twice with only the inline secrets changed: every Deployment's and
// StatefulSet's pod template must come out byte for byte the same, and
// contain neither the secret nor its SHA-256. secretsGeneration, bumped,
// still rolls every workload that reads a secret
// (docs/operations/secrets-rollout.md).
func TestRenderedPodsHideInlineSecrets(t *testing.T) {
	minimal := filepath.Join(chartDir(t), "ci", "minimal-values.yaml")
	pemKey := func() string {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	}
	keyA, keyB := pemKey(), pemKey()
	cases := map[string]func(secret, key string) map[string]any{
		"bundled Redis, inline upstream secret and signing key": func(secret, key string) map[string]any {
			return map[string]any{
				"upstream":   map[string]any{"clientSecret": "upstream-" + secret},
				"authServer": map[string]any{"signingKeys": map[string]any{"generate": false, "keys": map[string]any{"k1": key}}},
				"redis": map[string]any{"bundled": map[string]any{
					"password": "redis-" + secret, "backendUser": map[string]any{"enabled": true, "password": "backend-" + secret}}},
			}
		},
		"external Redis URL with passwords": func(secret, _ string) map[string]any {
			return map[string]any{"redis": map[string]any{"bundled": map[string]any{"enabled": false}, "external": map[string]any{
				"mode": "sentinel", "url": "rediss://u:sentinel-" + secret + "@s1:26379/0?master_name=m&addr=s2:26379&username=tg&password=data-" + secret}}}
		},
		// go-redis splits the URL's user info at its last '@' (net/url,
		// parseAuthority) and the user name from the password at the
		// first ':': an '@' may sit in the user name or in the password.
		"external Redis URL, '@' in the user name": func(secret, _ string) map[string]any {
			return map[string]any{"redis": map[string]any{"bundled": map[string]any{"enabled": false}, "external": map[string]any{
				"url": "rediss://svc@corp:Hunter2-" + secret + "@redis:6379/0"}}}
		},
		"external Redis URL, '@' in the password": func(secret, _ string) map[string]any {
			return map[string]any{"redis": map[string]any{"bundled": map[string]any{"enabled": false}, "external": map[string]any{
				"url": "rediss://:p@ss-" + secret + "@redis.internal:6379/0"}}}
		},
		// The inline client registry is re-read by the running pods
		// (reload), which is what records a removed client for the
		// connectors: a change to it must not roll them.
		"inline client registry, a client removed": func(secret, _ string) map[string]any {
			client := func(id string) map[string]any {
				return map[string]any{"client_id": id, "client_name": id,
					"client_secret_hash": "$2a$10$" + strings.Repeat("x", 53-len(secret)) + secret,
					"redirect_uris":      []string{"https://chatgpt.com/connector_platform_oauth_redirect"},
					"grant_types":        []string{"authorization_code", "refresh_token"}, "scopes": []string{"openid"},
					"resources": []string{"https://mcp.example.com/mcp"}, "token_endpoint_auth_method": "client_secret_post"}
			}
			registry := []any{client("kept")}
			if secret == "Summer2026" {
				registry = append(registry, client("removed"))
			}
			return map[string]any{"authServer": map[string]any{"clients": map[string]any{"registry": registry}}}
		},
		"dev IdP": func(secret, _ string) map[string]any {
			return map[string]any{"environment": "development", "devIdp": map[string]any{"enabled": true, "clientSecret": "devidp-" + secret,
				"users": []any{map[string]any{"username": "dev", "password": "user-" + secret, "sub": "dev-1", "email": "dev@example.com"}}},
				"upstream": map[string]any{"issuerUrl": "", "clientId": "", "clientSecret": ""}}
		},
	}
	dir := t.TempDir()
	write := func(name string, v map[string]any) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, values := range cases {
		t.Run(name, func(t *testing.T) {
			slug := strings.NewReplacer(" ", "-", ",", "").Replace(name)
			pods := map[string]map[string]string{}
			for _, run := range []struct{ id, secret, key, gen string }{
				{"a", "Summer2026", keyA, ""}, {"b", "Winter2027", keyB, ""}, {"gen", "Winter2027", keyB, "2"},
			} {
				v := values(run.secret, run.key)
				if run.gen != "" {
					v["secretsGeneration"] = run.gen
				}
				out, err := render(t, minimal, write(slug+"-"+run.id+".yaml", v))
				if err != nil {
					t.Fatal(err)
				}
				if run.id != "gen" && !strings.Contains(out, "kind: Secret") {
					t.Fatal("no Secret rendered")
				}
				pods[run.id] = podTemplates(t, out)
				if run.id == "gen" {
					continue
				}
				for id, pod := range pods[run.id] {
					for _, s := range []string{run.secret, run.key, strings.TrimSpace(run.key)} {
						sum := sha256.Sum256([]byte(s))
						if strings.Contains(pod, s) || strings.Contains(pod, hex.EncodeToString(sum[:])) {
							t.Errorf("%s's pod template carries a secret (or its SHA-256):\n%s", id, pod)
						}
					}
				}
			}
			if len(pods["a"]) < 4 {
				t.Fatalf("only %d workloads rendered", len(pods["a"]))
			}
			rolled := 0
			for id, pod := range pods["a"] {
				if pods["b"][id] != pod {
					t.Errorf("%s's pod template changes with the inline secrets' values:\n%s", id, lineDiff(pod, pods["b"][id]))
				}
				if pods["gen"][id] != pods["b"][id] {
					rolled++
				}
			}
			for _, id := range []string{"Deployment/RELEASE-NAME-tollgate-auth-server", "Deployment/tollgate-auth-server"} {
				if _, ok := pods["a"][id]; ok && pods["gen"][id] == pods["b"][id] {
					t.Errorf("%s does not roll when secretsGeneration is bumped", id)
				}
			}
			if rolled < 4 {
				t.Errorf("secretsGeneration rolled %d workloads, want every fleet workload", rolled)
			}
		})
	}
}

// TestBundledRedisRollsOnItsOwnGeneration: secretsGeneration rolls every
// fleet Deployment but not the bundled Redis, whose restart is an outage
// for everything that needs Redis; redis.bundled.passwordGeneration rolls
// Redis and the fleet (docs/operations/secrets-rollout.md#the-bundled-redis-password).
func TestBundledRedisRollsOnItsOwnGeneration(t *testing.T) {
	base := minimalPodTemplates(t, "{}\n")
	fleet := minimalPodTemplates(t, "secretsGeneration: 2\n")
	redis := minimalPodTemplates(t, "redis:\n  bundled:\n    passwordGeneration: 2\n")
	const sts = "StatefulSet/tollgate-redis"
	if _, ok := base[sts]; !ok {
		t.Fatalf("no %s rendered", sts)
	}
	if fleet[sts] != base[sts] {
		t.Errorf("secretsGeneration restarts the bundled Redis:\n%s", lineDiff(base[sts], fleet[sts]))
	}
	if redis[sts] == base[sts] {
		t.Errorf("redis.bundled.passwordGeneration does not restart the bundled Redis")
	}
	deployments := 0
	for id, pod := range base {
		if id == sts {
			continue
		}
		deployments++
		if fleet[id] == pod {
			t.Errorf("%s does not roll when secretsGeneration is bumped", id)
		}
		if redis[id] == pod {
			t.Errorf("%s does not roll when redis.bundled.passwordGeneration is bumped (it reads the password at start)", id)
		}
	}
	if deployments < 4 {
		t.Fatalf("only %d Deployments rendered", deployments)
	}
}

// TestSecretSourcesRollOnlyTheirReaders: a Deployment's checksum/secrets
// covers only the values whose Secrets it mounts
// (docs/operations/secrets-rollout.md): a new secret source of the
// auth-server's own (the client secret HMAC key, the token HMAC key's
// Secret, the upstream client secret) changes the auth-server's pod
// template only; one of the dev IdP's (development) the dev IdP's and the
// auth-server's, which mounts its client secret; one of Redis's every
// fleet Deployment's. Fails with one key of every value for all
// Deployments: adding authServer.clientSecretKey rolled mcp-gateway,
// actions-api and capability-core too.
func TestSecretSourcesRollOnlyTheirReaders(t *testing.T) {
	// The Deployments' pod templates, by component.
	pods := func(t *testing.T, values string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for id, pod := range minimalPodTemplates(t, values) {
			if c, ok := strings.CutPrefix(id, "Deployment/tollgate-"); ok {
				m[c] = pod
			}
		}
		return m
	}
	const dev = "environment: development\nupstream:\n  issuerUrl: \"\"\n  clientId: \"\"\n  clientSecret: \"\"\ndevIdp:\n  enabled: true\n"
	for _, c := range []struct {
		name, base, changed string
		rolls               []string
	}{
		{"client secret HMAC key", "{}\n", "authServer:\n  clientSecretKey:\n    existingSecret: tollgate-client-hmac\n", []string{"auth-server"}},
		{"token HMAC key's Secret", "{}\n", "authServer:\n  tokenSecret:\n    existingSecret: tollgate-auth\n", []string{"auth-server"}},
		{"upstream client secret", "{}\n", "upstream:\n  clientSecret: \"\"\n  existingSecret: tollgate-upstream\n", []string{"auth-server"}},
		{"dev IdP user", dev, dev + "  users:\n    - {username: other, password: x, sub: other-1, email: other@example.com}\n", []string{"auth-server", "dev-idp"}},
		{"Redis backend user", "{}\n", "redis:\n  bundled:\n    backendUser:\n      existingSecret: tollgate-redis-backend\n      enabled: true\n", []string{"auth-server", "mcp-gateway", "actions-api", "capability-core"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, after := pods(t, c.base), pods(t, c.changed)
			if len(before) < 4 {
				t.Fatalf("only %d Deployments rendered", len(before))
			}
			for id, pod := range before {
				if rolls := slices.Contains(c.rolls, id); rolls != (after[id] != pod) {
					t.Errorf("%s: pod template changed = %v, want %v\n%s", id, !rolls, rolls, lineDiff(pod, after[id]))
				}
			}
		})
	}
}

// podTemplates is each Deployment's and StatefulSet's pod template
// (spec.template, as YAML) in the rendered manifests out, by
// "<kind>/<name>".
func podTemplates(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, d := range splitDocs(t, out) {
		kind, _ := d["kind"].(string)
		if kind != "Deployment" && kind != "StatefulSet" {
			continue
		}
		b, err := yaml.Marshal(dig(d, "spec", "template"))
		if err != nil {
			t.Fatal(err)
		}
		m[kind+"/"+str(d, "metadata", "name")] = string(b)
	}
	return m
}

// minimalPodTemplates is podTemplates of the minimal values case rendered
// with values (YAML) over it.
func minimalPodTemplates(t *testing.T, values string) map[string]string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := render(t, filepath.Join(chartDir(t), "ci", "minimal-values.yaml"), f)
	if err != nil {
		t.Fatal(err)
	}
	return podTemplates(t, out)
}
