package tests

import "testing"

// The token HMAC key as docs/operations/key-rotation.md rotates it: its
// section, and the Secret and keys its commands work on.
var tokenHMACKey = keyInSecret{
	what:    "HMAC secret",
	heading: "### The token HMAC key",
	value:   "tokenSecret",
	secret:  "tollgate-auth", current: "token-hmac-secret", accepted: "token-hmac-secret-accepted",
	setting: "TOKEN_HMAC_SECRET", rotated: "TOKEN_HMAC_SECRETS_ROTATED",
}

// testDocsHMACKeyRotation installs the chart with the token HMAC key in a
// Secret the operator owns, then runs the key-rotation guide's own commands
// for it (kubectl, openssl, helm upgrade, rollout restart and status; each
// step in its own shell, as the guide says they may run), checking after
// each of its two steps what the cluster holds, and then what it says of
// later upgrades (rotateKey).
func testDocsHMACKeyRotation(t *testing.T, cp *controlPlane, helm string, helmEnv []string, values string) {
	// The guide's namespace is taken by install/docs-minimal.
	r := rotateKey(t, cp, helm, helmEnv, values, "tollgate-hmacrot", tokenHMACKey, "# 1.", "# 2.")
	r.upgrades()
}
