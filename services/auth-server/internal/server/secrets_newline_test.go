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
	"net/http"
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
	return hashWithKey(string(k), secret)
}

// hashWithKey is a client secret's hash under CLIENT_SECRET_HMAC_KEY key.
func hashWithKey(key, secret string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(secret))
	return "$hmac-sha256$" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// registeredUnder registers a client at f and rewrites its stored hash as
// a replica whose token secret was v made it.
func registeredUnder(t *testing.T, f *fleet, rdb *redisx.Client, v string) devClient {
	t.Helper()
	return registeredAs(t, f, rdb, func(secret string) string { return hashUnder(t, v, secret) })
}

// registeredWithKey registers a client at f and rewrites its stored hash
// as a replica whose CLIENT_SECRET_HMAC_KEY was key made it.
func registeredWithKey(t *testing.T, f *fleet, rdb *redisx.Client, key string) devClient {
	t.Helper()
	return registeredAs(t, f, rdb, func(secret string) string { return hashWithKey(key, secret) })
}

// registeredAs registers a client at f and rewrites its stored hash to
// hash(its secret).
func registeredAs(t *testing.T, f *fleet, rdb *redisx.Client, hash func(secret string) string) devClient {
	t.Helper()
	c := registerConfidential(t, f)
	raw, rec := readDCR(t, rdb, c.ClientID)
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	if rec.SecretHash == hash(c.ClientSecret) {
		// The rewrite would prove nothing for this registration.
		t.Error("a registration made now is hashed under the old spelling's key")
	}
	m["secret_hash"] = hash(c.ClientSecret)
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

// TestSecretsClientKeyEnvNewline: CLIENT_SECRET_HMAC_KEY given in the
// environment with a trailing newline (a Kubernetes secretKeyRef to a key
// created with --from-file) is the key without it, as
// CLIENT_SECRET_HMAC_KEYS_ROTATED's trimmed items and _FILE give it —
// TOKEN_HMAC_SECRET's treatment (TestSecretsHMACSecretEnvNewline).
// Registrations hashed while the key was used with its newline still
// authenticate: with the value unchanged, after the operator gives it
// without the newline, and through a rotation's step 2 with the old key
// moved to the rotated list; one used at a step-2 replica is rewritten
// under the new key and works at step 3, one not used since is refused
// there. Registrations made now are hashed under the trimmed key. No key
// or client secret is in any log line; start-up refusals of a key too
// short once trimmed, or only white space, name no key.
func TestSecretsClientKeyEnvNewline(t *testing.T) {
	const key = "secrets-newline-client-key-0123456789abcdef"
	const next = "secrets-newline-client-key-B-fedcba98765432"
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA, "CLIENT_SECRET_HMAC_KEY": key + "\n"})
	rdb := f.Redis.Client()
	unchanged := registeredWithKey(t, f, rdb, key+"\n")
	trimmed := registeredWithKey(t, f, rdb, key+"\n")
	crlf := registeredWithKey(t, f, rdb, key+"\r\n")
	moved := registeredWithKey(t, f, rdb, key+"\n")
	idle := registeredWithKey(t, f, rdb, key+"\n")
	fresh := registerConfidential(t, f)
	if _, rec := readDCR(t, rdb, fresh.ClientID); rec.SecretHash != hashWithKey(key, fresh.ClientSecret) {
		t.Error("a registration made now is not hashed under the trimmed key")
	}

	if !authenticates(t, f, unchanged) {
		t.Error("the key with its newline unchanged: a registration made under it is refused")
	}
	plain := f.replica(map[string]string{"CLIENT_SECRET_HMAC_KEY": key})
	if !authenticates(t, plain, trimmed) || !authenticates(t, plain, crlf) {
		t.Error("the key given without its newline: a registration made under it with the newline is refused")
	}
	step2 := f.replica(map[string]string{"CLIENT_SECRET_HMAC_KEY": next, "CLIENT_SECRET_HMAC_KEYS_ROTATED": key + "\n"})
	for name, c := range map[string]devClient{"moved": moved, "unchanged": unchanged, "fresh": fresh} {
		if !authenticates(t, step2, c) {
			t.Errorf("step 2, the old key rotated: registration %s refused", name)
		}
	}
	// The step-2 uses rewrote those hashes under the new key.
	dropped := f.replica(map[string]string{"CLIENT_SECRET_HMAC_KEY": next})
	for name, c := range map[string]devClient{"moved": moved, "unchanged": unchanged, "fresh": fresh} {
		if !authenticates(t, dropped, c) {
			t.Errorf("step 3: registration %s, used at a step-2 replica, refused", name)
		}
	}
	for name, c := range map[string]devClient{"trimmed": trimmed, "crlf": crlf, "idle": idle} {
		if authenticates(t, dropped, c) {
			t.Errorf("step 3: registration %s, not used at a step-2 replica, authenticates: update key-rotation.md", name)
		}
	}

	for _, g := range []*fleet{f, plain, step2, dropped} {
		logs := g.AS.Logs.String()
		for _, s := range []string{key, next, unchanged.ClientSecret, moved.ClientSecret, fresh.ClientSecret} {
			if strings.Contains(logs, s) {
				t.Errorf("a key or client secret in the logs of %s", g.Base)
			}
		}
	}

	short := "secrets-newline-31-byte-key!!!!" // 31 bytes
	for name, tc := range map[string]struct{ given, want string }{
		"short once trimmed": {" " + short + "\n", "CLIENT_SECRET_HMAC_KEY: must be at least 32 bytes"},
		"only white space":   {" \t\r\n", "CLIENT_SECRET_HMAC_KEY: is only white space"},
	} {
		t.Run(name, func(t *testing.T) {
			startRefused(t, f, map[string]string{"CLIENT_SECRET_HMAC_KEY": tc.given}, tc.want, short, key)
		})
	}
}

// TestSecretsHMACSecretLeadingWhiteSpace: TOKEN_HMAC_SECRET and
// TOKEN_HMAC_SECRETS_ROTATED are normalised by one rule, so a secret
// given with leading white space is the same value current and rotated.
// Moved from the one to the other at step 2, it keeps authenticating the
// registrations made under it and refreshing its refresh tokens — before,
// the current value kept its leading white space and the rotated item
// lost it: another client secret key, and other token HMAC key bytes.
// Registrations and refresh tokens made when the value was used with the
// white space (earlier releases) still work while it is current.
func TestSecretsHMACSecretLeadingWhiteSpace(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": " \t" + hmacBreakA + "\n"})
	rdb := f.Redis.Client()
	made := registerConfidential(t, f)
	if _, rec := readDCR(t, rdb, made.ClientID); rec.SecretHash != hashUnder(t, hmacBreakA, made.ClientSecret) {
		t.Error("a registration made now is not hashed under the normalised secret's key")
	}
	earlier := registeredUnder(t, f, rdb, " \t"+hmacBreakA)
	earlierNL := registeredUnder(t, f, rdb, " \t"+hmacBreakA+"\n")
	c := f.Clients["test-public"]
	tr := f.fullFlow(c, newAuthRequest(c))
	if !authenticates(t, f, earlier) || !authenticates(t, f, earlierNL) {
		t.Error("a registration hashed under the secret's spelling with its white space is refused")
	}

	step2 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakB, "TOKEN_HMAC_SECRETS_ROTATED": " \t" + hmacBreakA})
	for name, g := range map[string]devClient{"made": made, "earlier (used since)": earlier, "earlier with newline (used since)": earlierNL} {
		if !authenticates(t, step2, g) {
			t.Errorf("step 2, the secret moved to the rotated list: registration %s refused", name)
		}
	}
	if r := step2.refresh(c, tr.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("step 2: a refresh token of the moved secret: %d %s: %s", r.Status, r.Error, r.Description)
	}
	a := newAuthRequest(c)
	if r := step2.exchange(c, a, f.authorize(a)); r.Status != http.StatusOK {
		t.Errorf("step 2: a code of the moved secret: %d %s: %s", r.Status, r.Error, r.Description)
	}
}
