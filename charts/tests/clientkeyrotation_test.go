package tests

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The client secret HMAC key as docs/operations/key-rotation.md rotates
// it: its section, and the Secret and keys its commands work on (the
// deployment guide's).
var clientSecretHMACKey = keyInSecret{
	what:    "client secret HMAC key",
	heading: "### The client secret HMAC key",
	value:   "clientSecretKey",
	secret:  "tollgate-client-hmac", current: "client-secret-hmac-key", accepted: "client-secret-hmac-key-accepted",
	setting: "CLIENT_SECRET_HMAC_KEY", rotated: "CLIENT_SECRET_HMAC_KEYS_ROTATED",
}

// testDocsClientKeyRotation installs the chart with the client secret HMAC
// key in the Secret the deployment guide makes, then runs the key-rotation
// guide's commands for it, each step in its own shell: steps 1 and 2 as
// rotateKey checks them; step 3 (auth-server hash-client-secret -stdin,
// built from this repository, on the GPT's secret kept as the deployment
// guide's my-gpt.secret) must print only the secret's $hmac-sha256$ hash
// under the new key and leave no key file behind. Then what the guide says
// of upgrades while rotating.
func testDocsClientKeyRotation(t *testing.T, cp *controlPlane, helm string, helmEnv []string, values string) {
	const ns = "tollgate-clientkeyrot"
	r := rotateKey(t, cp, helm, helmEnv, values, ns, clientSecretHMACKey, "# 1.", "# 2.", "# 3.")

	// 3. The GPT's secret, kept as at install (the secret, then its old
	// hash), hashed again under the new key.
	g := r.g
	g.path = filepath.Dir(buildAuthServer(t)) + string(os.PathListSeparator) + g.path
	secret := strings.Repeat("GPTSECRET", 6)
	writeFile(t, filepath.Join(g.dir, "my-gpt.secret"), []byte(secret+"\n$hmac-sha256$old\n"))
	sh := exec.CommandContext(timeout(t, 8*time.Minute), "bash", "-euo", "pipefail", "-c", inNamespace(t, r.steps[2], ns))
	sh.Dir = g.dir
	sh.Env = append(append([]string{}, g.helmEnv...), "PATH="+g.path, "KUBECONFIG="+cp.kubeconfig)
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("the guide's re-hash (3) commands failed: %v\n%s", err, out)
	}
	m := hmac.New(sha256.New, []byte(r.added))
	m.Write([]byte(secret))
	if want := "$hmac-sha256$" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "\n"; string(out) != want {
		t.Fatalf("step 3 printed %q, want only the secret's hash under the new key, %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(g.dir, clientSecretHMACKey.current)); !os.IsNotExist(err) {
		t.Fatalf("step 3 left the key file %s behind (%v)", clientSecretHMACKey.current, err)
	}

	// While rotating, rotatedSecretKey in my-values.yaml keeps the older
	// key through an upgrade; my-values.yaml as it was drops it (step 4's
	// upgrade).
	r.upgrades()
}
