package secrethash_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/secrethash"
	"github.com/tollgate/tollgate/services/platform/config"
)

const key = "0123456789abcdef0123456789abcdef-client-secret-key"

// keyFile writes the key as `openssl rand -base64 48 > file` would leave
// it: with a trailing newline, which the auth-server does not count.
func keyFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "client-secret-hmac-key")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// want is the documented hash: base64url (no padding) HMAC-SHA256 of the
// secret under the key (docs/operations/client-registry.md), computed here
// without the auth-server's code.
func want(k, secret string) string {
	m := hmac.New(sha256.New, []byte(k))
	m.Write([]byte(secret))
	return "$hmac-sha256$" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func run(t *testing.T, env map[string]string, stdin string, args ...string) ([]string, error) {
	t.Helper()
	var out bytes.Buffer
	err := secrethash.Main(args, config.MapEnv(env), strings.NewReader(stdin), &out)
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"), err
}

// TestMakesASecretAndItsHash: without -stdin it prints a new random secret
// (52 characters, 260 bits) and its hash under the key of
// CLIENT_SECRET_HMAC_KEY_FILE, the file's newline not part of the key as
// for the auth-server; -stdin hashes a secret given back to the same hash,
// and under a new key to that key's hash.
func TestMakesASecretAndItsHash(t *testing.T) {
	env := map[string]string{"CLIENT_SECRET_HMAC_KEY_FILE": keyFile(t, key+"\n")}
	lines, err := run(t, env, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 {
		t.Fatalf("printed %d lines, want the secret and its hash: %q", len(lines), lines)
	}
	secret, hash := lines[0], lines[1]
	if len(secret) != 52 {
		t.Errorf("secret %q has %d characters, want 52 (two crypto/rand.Text)", secret, len(secret))
	}
	if hash != want(key, secret) {
		t.Errorf("hash %s, want %s (HMAC-SHA256 under the key without its newline)", hash, want(key, secret))
	}
	again, err := run(t, env, "")
	if err != nil {
		t.Fatal(err)
	}
	if again[0] == secret {
		t.Errorf("two runs made the same secret %q", secret)
	}

	for _, in := range []string{secret + "\n", secret + "\r\n", secret} {
		lines, err := run(t, env, in, "-stdin")
		if err != nil {
			t.Fatalf("-stdin %q: %v", in, err)
		}
		if len(lines) != 1 || lines[0] != hash {
			t.Errorf("-stdin %q printed %q, want only %s", in, lines, hash)
		}
	}
	const next = "fedcba9876543210fedcba9876543210-the-next-key"
	lines, err = run(t, map[string]string{"CLIENT_SECRET_HMAC_KEY": next}, secret+"\n", "-stdin")
	if err != nil {
		t.Fatal(err)
	}
	if lines[0] != want(next, secret) {
		t.Errorf("-stdin under CLIENT_SECRET_HMAC_KEY: %q, want %s", lines, want(next, secret))
	}
}

// TestRefusals: no key (the auth-server's derived key is not one to hash
// a static registry's secrets under), a key the auth-server would refuse,
// a secret too short for a fast hash, one with white space around it, and
// a secret on the command line are each refused, printing nothing.
func TestRefusals(t *testing.T) {
	good := map[string]string{"CLIENT_SECRET_HMAC_KEY": key}
	long := strings.Repeat("s", secrethash.MinSecretLen)
	for _, tc := range []struct {
		name  string
		env   map[string]string
		stdin string
		args  []string
		want  string
	}{
		{"no key", map[string]string{"TOKEN_HMAC_SECRET": key}, "", nil, "CLIENT_SECRET_HMAC_KEY: not set"},
		{"short key", map[string]string{"CLIENT_SECRET_HMAC_KEY_FILE": keyFile(t, strings.Repeat("k", 31)+"\n")}, "", nil, "at least 32 bytes"},
		{"white space key", map[string]string{"CLIENT_SECRET_HMAC_KEY": " \n"}, "", nil, "only white space"},
		{"key twice", map[string]string{"CLIENT_SECRET_HMAC_KEY": key, "CLIENT_SECRET_HMAC_KEY_FILE": keyFile(t, key)}, "", nil, "both set"},
		{"missing key file", map[string]string{"CLIENT_SECRET_HMAC_KEY_FILE": "/nonexistent/key"}, "", nil, "cannot read"},
		{"short secret", good, long[1:] + "\n", []string{"-stdin"}, "fewer than 43"},
		{"no secret", good, "", []string{"-stdin"}, "no secret"},
		{"white space around the secret", good, " " + long + "\n", []string{"-stdin"}, "white space"},
		{"secret as an argument", good, "", []string{long}, "takes no arguments"},
		{"secret as a flag", good, "", []string{"-" + long}, "not echoed"},
		{"secret as a flag's value", good, "", []string{"-stdin=" + long}, "not echoed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := secrethash.Main(tc.args, config.MapEnv(tc.env), strings.NewReader(tc.stdin), &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), long) {
				t.Errorf("the error shows the key or the secret: %v", err)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q on a refusal", out.String())
			}
		})
	}
}
