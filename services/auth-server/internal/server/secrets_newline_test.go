package server_test

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// hashUnder is a client secret's hash under the key derived from token
// secret v (docs/reference/oauth.md, CLIENT_SECRET_HMAC_KEY's default).
func hashUnder(t *testing.T, v, secret string) string {
	t.Helper()
	k, err := hkdf.Key(sha256.New, []byte(v), nil, "tollgate auth-server client secret hmac", 32)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(secret))
	return "$hmac-sha256$" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// registeredUnder registers a client at f and rewrites its stored hash as
// a replica whose token secret was v made it.
func registeredUnder(t *testing.T, f *fleet, rdb *redisx.Client, v string) devClient {
	t.Helper()
	c := registerConfidential(t, f)
	raw, rec := readDCR(t, rdb, c.ClientID)
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	if rec.SecretHash == hashUnder(t, v, c.ClientSecret) {
		t.Fatalf("the registration is already hashed under %q's key", v)
	}
	m["secret_hash"] = hashUnder(t, v, c.ClientSecret)
	b, _ := json.Marshal(m)
	if err := rdb.Set(context.Background(), dcrKey(c.ClientID), b, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSecretsHMACSecretEnvNewline: registrations hashed while
// TOKEN_HMAC_SECRET was given in the environment with a trailing newline
// and used as given (a Kubernetes secretKeyRef to a key created with
// --from-file, before the value was trimmed) still authenticate: with the
// value unchanged, after the operator gives it without the newline, and
// through a rotation's step 2 whether the old secret is moved to
// TOKEN_HMAC_SECRETS_ROTATED with or without its newline. One used at a
// step-2 replica is rewritten under the new secret's key and works at
// step 3 (the old secret dropped); one not used since step 2 is refused
// there, as key-rotation.md says of every registration. Registrations
// made now are hashed under the trimmed value's key. No secret is in any
// log line; start-up refusals of a secret too short once trimmed, or only
// white space, name no secret.
func TestSecretsHMACSecretEnvNewline(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA + "\n"})
	rdb := f.Redis.Client()
	unchanged := registeredUnder(t, f, rdb, hmacBreakA+"\n")
	trimmed := registeredUnder(t, f, rdb, hmacBreakA+"\n")
	movedPlain := registeredUnder(t, f, rdb, hmacBreakA+"\n")
	movedNewline := registeredUnder(t, f, rdb, hmacBreakA+"\n")
	crlf := registeredUnder(t, f, rdb, hmacBreakA+"\r\n")
	idle := registeredUnder(t, f, rdb, hmacBreakA+"\n")
	fresh := registerConfidential(t, f)
	if _, rec := readDCR(t, rdb, fresh.ClientID); rec.SecretHash != hashUnder(t, hmacBreakA, fresh.ClientSecret) {
		t.Error("a registration made now is not hashed under the trimmed secret's key")
	}

	if !authenticates(t, f, unchanged) {
		t.Error("the secret with its newline unchanged: a registration made under it is refused")
	}
	plain := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA})
	if !authenticates(t, plain, trimmed) || !authenticates(t, plain, crlf) {
		t.Error("the secret given without its newline: a registration made under it with the newline is refused")
	}
	step2 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA})
	step2NL := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakA + "\n"})
	if !authenticates(t, step2, movedPlain) {
		t.Error("step 2, the old secret rotated without its newline: a registration made under it with the newline is refused")
	}
	if !authenticates(t, step2NL, movedNewline) {
		t.Error("step 2, the old secret rotated with its newline: a registration made under it is refused")
	}
	for name, c := range map[string]devClient{"unchanged": unchanged, "fresh": fresh} {
		if !authenticates(t, step2, c) {
			t.Errorf("step 2: registration %s refused", name)
		}
	}
	// The step-2 uses rewrote those hashes under the new secret's key.
	dropped := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB})
	for name, c := range map[string]devClient{"moved without newline": movedPlain, "moved with newline": movedNewline, "unchanged": unchanged, "fresh": fresh} {
		if !authenticates(t, dropped, c) {
			t.Errorf("step 3: registration %s, used at a step-2 replica, refused", name)
		}
	}
	for name, c := range map[string]devClient{"trimmed": trimmed, "crlf": crlf, "idle": idle} {
		if authenticates(t, dropped, c) {
			t.Errorf("step 3: registration %s, not used at a step-2 replica, authenticates: update key-rotation.md", name)
		}
	}

	for _, g := range []*fleet{f, plain, step2, step2NL, dropped} {
		logs := g.AS.Logs.String()
		for _, s := range []string{hmacBreakA, hmacBreakB, unchanged.ClientSecret, movedPlain.ClientSecret, fresh.ClientSecret} {
			if strings.Contains(logs, s) {
				t.Errorf("a secret in the logs of %s", g.Base)
			}
		}
	}

	short := "secrets-newline-31-byte-secret!" // 31 bytes
	for name, tc := range map[string]struct{ given, want string }{
		"short once trimmed": {short + "\n", "TOKEN_HMAC_SECRET: must be at least 32 bytes"},
		"only white space":   {" \t\r\n", "TOKEN_HMAC_SECRET: is only white space"},
	} {
		t.Run(name, func(t *testing.T) {
			startRefused(t, f, map[string]string{"TOKEN_HMAC_SECRET": tc.given}, tc.want, short)
		})
	}
}

// startRefused runs the auth-server's start-up (server.Run, on a free
// port, at most 30 s) with f's environment changed by set, and checks
// that it is refused with a configuration error (*pconfig.Error) whose
// text has want, and that none of secrets is in the error or in anything
// written while starting.
func startRefused(t *testing.T, f *fleet, set map[string]string, want string, secrets ...string) {
	t.Helper()
	env := maps.Clone(f.env)
	maps.Copy(env, set)
	env["HTTP_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	err := server.Run(ctx, pconfig.MapEnv(env), &out, nil)
	var ce *pconfig.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run: %v, want a configuration error with %q", err, want)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) || strings.Contains(out.String(), s) {
			t.Errorf("a secret's value in the start-up error or output:\n%s\n%s", err, out.String())
		}
	}
}
