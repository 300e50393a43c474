package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// TestEverySecretSettingTakesAFile: every secret setting X the auth-server
// reads may be given as X_FILE (docs/reference/configuration.md), and the
// file gives the same configuration as the variable, the rotated lists
// included (one item a line or comma-separated). The table must name every
// setting read with a _FILE form, and every setting whose name says it is a
// secret must have one.
func TestEverySecretSettingTakesAFile(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tollgate"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})))
	secret := func(c byte) string { return strings.Repeat(string(c), 40) }

	for _, tc := range []struct {
		setting, value, file string            // file: the file's content when not value+"\n"
		with                 map[string]string // other settings the value needs
	}{
		{setting: "UPSTREAM_CLIENT_SECRET", value: "upstream-secret"},
		{setting: "UPSTREAM_CLIENT_KEY", value: keyPEM},
		{setting: "UPSTREAM_CLIENT_CERT", value: certPEM, with: map[string]string{"UPSTREAM_CLIENT_KEY": keyPEM}},
		{setting: "TOKEN_HMAC_SECRET", value: secret('t')},
		{setting: "TOKEN_HMAC_SECRETS_ROTATED", value: secret('a') + "," + secret('b')},
		{setting: "TOKEN_HMAC_SECRETS_ROTATED", value: secret('a') + "," + secret('b'), file: secret('a') + "\n" + secret('b') + "\n"},
		{setting: "CLIENT_SECRET_HMAC_KEY", value: secret('k')},
		{setting: "CLIENT_SECRET_HMAC_KEYS_ROTATED", value: secret('c') + "," + secret('d'), with: map[string]string{"CLIENT_SECRET_HMAC_KEY": secret('k')}},
		{setting: "CLIENT_SECRET_HMAC_KEYS_ROTATED", value: secret('c') + "," + secret('d'), file: secret('c') + "\r\n" + secret('d') + "\r\n",
			with: map[string]string{"CLIENT_SECRET_HMAC_KEY": secret('k')}},
		{setting: "REDIS_URL", value: "redis://:pw@127.0.0.1:6379/0"},
		{setting: "REDIS_PASSWORD", value: "redis-pw"},
		{setting: "REDIS_SENTINEL_PASSWORD", value: "sentinel-pw",
			with: map[string]string{"REDIS_MODE": "sentinel", "REDIS_URL": "redis://127.0.0.1:26379/0?master_name=m"}},
		{setting: "OTEL_EXPORTER_OTLP_HEADERS", value: "api-key=k1"},
		{setting: "OTEL_EXPORTER_OTLP_TRACES_HEADERS", value: "api-key=k2"},
	} {
		name := tc.setting
		if tc.file != "" {
			name += " one a line"
		}
		t.Run(name, func(t *testing.T) {
			env := base()
			maps.Copy(env, tc.with)
			without, err := Load(pconfig.MapEnv(env))
			if err != nil {
				t.Fatalf("without %s: %v", tc.setting, err)
			}
			env[tc.setting] = tc.value
			fromEnv, err := Load(pconfig.MapEnv(env))
			if err != nil {
				t.Fatalf("%s: %v", tc.setting, err)
			}
			if reflect.DeepEqual(fromEnv, without) {
				t.Fatalf("%s changes nothing in the configuration", tc.setting)
			}
			content := tc.file
			if content == "" {
				content = tc.value + "\n"
			}
			path := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			delete(env, tc.setting)
			env[tc.setting+"_FILE"] = path
			fromFile, err := Load(pconfig.MapEnv(env))
			if err != nil {
				t.Fatalf("%s_FILE: %v", tc.setting, err)
			}
			if !reflect.DeepEqual(fromFile, fromEnv) {
				t.Errorf("%s_FILE gives another configuration than %s:\nfile: %+v\nenv:  %+v", tc.setting, tc.setting, fromFile, fromEnv)
			}
		})
	}

	// Which settings Load reads, and which of them with a _FILE form.
	var mu sync.Mutex
	read := map[string]bool{}
	env := base()
	if _, err := Load(func(k string) string {
		mu.Lock()
		read[k] = true
		mu.Unlock()
		return env[k]
	}); err != nil {
		t.Fatal(err)
	}
	var withFile []string
	for k := range read {
		if s, ok := strings.CutSuffix(k, "_FILE"); ok && read[s] {
			withFile = append(withFile, s)
		}
	}
	sort.Strings(withFile)
	want := []string{"CLIENT_SECRET_HMAC_KEY", "CLIENT_SECRET_HMAC_KEYS_ROTATED", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
		"REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD", "REDIS_URL", "TOKEN_HMAC_SECRET", "TOKEN_HMAC_SECRETS_ROTATED",
		"UPSTREAM_CLIENT_CERT", "UPSTREAM_CLIENT_KEY", "UPSTREAM_CLIENT_SECRET"}
	if !slices.Equal(withFile, want) {
		t.Errorf("settings read with a _FILE form: %q, the table above tests %q", withFile, want)
	}
	// A setting named like a secret but read without its _FILE form.
	secretName := regexp.MustCompile(`SECRET|PASSWORD|_KEYS?$|_KEYS_|HEADERS|_CERT$`)
	notSecret := map[string]bool{"UPSTREAM_CLIENT_KEY_ID": true, "SIGNING_KEYS_DIR": true, "REDIS_ALLOW_PLAINTEXT_PASSWORD": true,
		"CLIENT_SECRET_SLOW_CHECKS": true, "CLIENT_SECRET_SLOW_CHECK_NICE": true, "CLIENT_SECRET_CACHE_TTL": true}
	for k := range read {
		if secretName.MatchString(k) && !strings.HasSuffix(k, "_FILE") && !notSecret[k] && !read[k+"_FILE"] {
			t.Errorf("%s looks like a secret setting but %s_FILE is not read", k, k)
		}
	}
}
