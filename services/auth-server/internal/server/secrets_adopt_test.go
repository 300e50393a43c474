package server_test

// Setting CLIENT_SECRET_HMAC_KEY on a release that already has dynamic
// registrations (RFC 7591) hashed under a derived key — TOKEN_HMAC_SECRET's
// or, in development, the signing keys' (oauth.NewSecretHasher): through a
// real auth-server restarted on the same real redis-server, real HTTP.

import (
	"net/http"
	"strings"
	"testing"
)

const adoptKey = "secrets-adopt-client-key-0123456789abcdef0123"

// TestSecretsExplicitKeySetOverDerived: registrations made while
// CLIENT_SECRET_HMAC_KEY was unset (hashed under the key derived from
// TOKEN_HMAC_SECRET, and one under its rotated secret's key) still
// authenticate after the server restarts with the key set; the first
// success rewrites the hash under the explicit key, and nothing else
// does: a wrong secret is refused (401 invalid_client) and writes
// nothing; a registration made now is hashed under the explicit key.
// Once TOKEN_HMAC_SECRET is rotated away (its derived key gone), a
// rewritten registration authenticates and one never used since the key
// was set is refused with 401 invalid_client — as is every registration
// at a replica of the explicit key alone without TOKEN_HMAC_SECRET's
// derived key, the old rule this replaces (docs/reference/oauth.md).
//
// Fails without the derived keys kept (oauth.NewSecretHasher before
// this): "a registration hashed under TOKEN_HMAC_SECRET's derived key is
// refused once CLIENT_SECRET_HMAC_KEY is set".
func TestSecretsExplicitKeySetOverDerived(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA, "TOKEN_HMAC_SECRETS_ROTATED": hmacBreakB})
	rdb := f.Redis.Client()
	used, idle := registerConfidential(t, f), registerConfidential(t, f)
	older := registeredUnder(t, f, rdb, hmacBreakB) // under the rotated secret's key
	for _, c := range []devClient{used, idle} {
		if _, rec := readDCR(t, rdb, c.ClientID); rec.SecretHash != hashUnder(t, hmacBreakA, c.ClientSecret) {
			t.Fatalf("registration %s is not hashed under TOKEN_HMAC_SECRET's derived key", c.ClientID)
		}
	}
	m := monitorRedis(t, f.Redis)

	f.restart(map[string]string{"CLIENT_SECRET_HMAC_KEY": adoptKey})
	wrong := used
	wrong.ClientSecret = used.ClientSecret[:len(used.ClientSecret)-1] + "x"
	if strings.HasSuffix(used.ClientSecret, "x") {
		wrong.ClientSecret = used.ClientSecret[:len(used.ClientSecret)-1] + "y"
	}
	before, _ := readDCR(t, rdb, used.ClientID)
	_ = m.commands() // the restart's own
	for i := range 2 {
		if authenticates(t, f, wrong) {
			t.Fatalf("wrong secret %d accepted", i)
		}
	}
	if n := m.writesTo(dcrKey(used.ClientID)); n != 0 {
		t.Errorf("a wrong secret: %d writes of the registration, want none", n)
	}
	if raw, _ := readDCR(t, rdb, used.ClientID); raw != before {
		t.Errorf("a wrong secret changed the record\n%s\n%s", before, raw)
	}
	for _, c := range []devClient{used, older} {
		if !authenticates(t, f, c) {
			t.Fatalf("a registration hashed under TOKEN_HMAC_SECRET's derived key is refused once CLIENT_SECRET_HMAC_KEY is set (%s)", c.ClientID)
		}
		if n := m.writesTo(dcrKey(c.ClientID)); n != 1 {
			t.Errorf("its first authentication with the key set: %d writes of the registration, want 1", n)
		}
		if _, rec := readDCR(t, rdb, c.ClientID); rec.SecretHash != hashWithKey(adoptKey, c.ClientSecret) {
			t.Errorf("registration %s: after authenticating, its hash is not under CLIENT_SECRET_HMAC_KEY", c.ClientID)
		}
		if !authenticates(t, f, c) {
			t.Errorf("registration %s refused once rewritten", c.ClientID)
		}
		if n := m.writesTo(dcrKey(c.ClientID)); n != 0 {
			t.Errorf("an authentication under the explicit key: %d writes, want none", n)
		}
	}
	fresh := registerConfidential(t, f)
	if _, rec := readDCR(t, rdb, fresh.ClientID); rec.SecretHash != hashWithKey(adoptKey, fresh.ClientSecret) {
		t.Error("a registration made with CLIENT_SECRET_HMAC_KEY set is not hashed under it")
	}

	// TOKEN_HMAC_SECRET rotated away: its derived keys are gone.
	f.restart(map[string]string{"TOKEN_HMAC_SECRET": hmacRollNew, "TOKEN_HMAC_SECRETS_ROTATED": ""})
	for _, c := range []devClient{used, older, fresh} {
		if !authenticates(t, f, c) {
			t.Errorf("registration %s, hashed under the explicit key, refused once TOKEN_HMAC_SECRET is rotated away", c.ClientID)
		}
	}
	tr := f.refresh(idle, "ory_rt_unknown.unknown")
	if tr.Status != http.StatusUnauthorized || tr.Error != "invalid_client" {
		t.Errorf("a registration never used since the key was set, its token secret rotated away: %d %s: %s, want 401 invalid_client", tr.Status, tr.Error, tr.Description)
	}
	for _, s := range []string{used.ClientSecret, idle.ClientSecret, older.ClientSecret, fresh.ClientSecret, adoptKey, hmacBreakA, hmacBreakB} {
		if strings.Contains(f.AS.Logs.String(), s) {
			t.Error("a secret in the logs")
		}
	}
}

// TestSecretsExplicitKeySetOverDevKeys: in development without
// TOKEN_HMAC_SECRET the derived keys are the signing keys'
// (clients.DevSecretKeys): a registration made then, and dev-init's
// client (a static one, hashed by dev-init under the same key), still
// authenticate once CLIENT_SECRET_HMAC_KEY is set; the registration's
// hash is rewritten under the explicit key, the static one is not
// (the registry file is dev-init's). With TOKEN_HMAC_SECRET set as well
// the dev keys are not tried, as without the explicit key.
//
// Fails without the dev keys kept: "a registration hashed under the
// signing keys' derived key is refused once CLIENT_SECRET_HMAC_KEY is set".
func TestSecretsExplicitKeySetOverDevKeys(t *testing.T) {
	f := startFleet(t, nil)
	rdb := f.Redis.Client()
	reg, idle := registerConfidential(t, f), registerConfidential(t, f)
	local := f.Clients["local-test"]
	if !authenticates(t, f, local) || !authenticates(t, f, reg) {
		t.Fatal("a dev-key client refused without CLIENT_SECRET_HMAC_KEY")
	}
	f.restart(map[string]string{"CLIENT_SECRET_HMAC_KEY": adoptKey})
	if !authenticates(t, f, reg) {
		t.Fatal("a registration hashed under the signing keys' derived key is refused once CLIENT_SECRET_HMAC_KEY is set")
	}
	if _, rec := readDCR(t, rdb, reg.ClientID); rec.SecretHash != hashWithKey(adoptKey, reg.ClientSecret) {
		t.Error("after authenticating, the registration's hash is not under CLIENT_SECRET_HMAC_KEY")
	}
	if !authenticates(t, f, local) {
		t.Error("dev-init's client refused once CLIENT_SECRET_HMAC_KEY is set")
	}
	wrong := local
	wrong.ClientSecret += "x"
	if authenticates(t, f, wrong) {
		t.Error("dev-init's client with a wrong secret accepted")
	}
	f.restart(map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA})
	if !authenticates(t, f, reg) {
		t.Error("the rewritten registration refused with TOKEN_HMAC_SECRET set")
	}
	if authenticates(t, f, idle) || authenticates(t, f, local) {
		t.Error("with TOKEN_HMAC_SECRET set, a hash under the signing keys' derived key still authenticates")
	}
}
