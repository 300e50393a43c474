package tests

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Where docs/operations/key-rotation.md keeps the rotation of the client
// secret HMAC key, and the Secret and keys its commands work on (the
// deployment guide's).
const (
	docsClientKeyRotation = "### The client secret HMAC key"
	clientKeySecret       = "tollgate-client-hmac"
	clientKeyCurrent      = "client-secret-hmac-key"
	clientKeyAccepted     = "client-secret-hmac-key-accepted"
)

// testDocsClientKeyRotation installs the chart with the client secret HMAC
// key in the Secret the deployment guide makes, then runs the key-rotation
// guide's commands for it, each step in its own shell: after steps 1 and 2
// it checks the Secret's values, where the auth-server takes
// CLIENT_SECRET_HMAC_KEY_FILE and CLIENT_SECRET_HMAC_KEYS_ROTATED from and
// that the Deployment was restarted; step 3 (auth-server hash-client-secret
// -stdin, built from this repository, on the GPT's secret kept as the
// deployment guide's my-gpt.secret) must print only the secret's
// $hmac-sha256$ hash under the new key and leave no key file behind. Then
// what the guide says of upgrades while rotating.
func testDocsClientKeyRotation(t *testing.T, cp *controlPlane, helm string, helmEnv []string, values string) {
	const ns = "tollgate-clientkeyrot"
	g := newGuideCheckout(t, cp, helm, helmEnv, ns)
	g.path = filepath.Dir(buildAuthServer(t)) + string(os.PathListSeparator) + g.path
	steps := docsRotationSteps(t, docsClientKeyRotation, "# 1.", "# 2.", "# 3.")
	accept, swap, rehash := steps[0], steps[1], steps[2]

	random := func() string {
		raw := make([]byte, 48)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(raw)
	}
	original := random()
	cp.kubectlOK(timeout(t, time.Minute), "create", "secret", "generic", clientKeySecret, "-n", ns,
		"--from-literal="+clientKeyCurrent+"="+original)
	v, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	own := strings.Replace(string(v), "\nauthServer:\n", "\nauthServer:\n  clientSecretKey:\n    existingSecret: "+clientKeySecret+"\n", 1)
	if own == string(v) {
		t.Fatalf("the values case %s has no top-level authServer: to add clientSecretKey.existingSecret to", values)
	}
	g.install([]byte(own))
	refs := func() authServerHMAC {
		t.Helper()
		return cp.authServerKeyRefs(t, ns, "CLIENT_SECRET_HMAC_KEY", "CLIENT_SECRET_HMAC_KEYS_ROTATED")
	}
	current := secretKeyRef{Name: clientKeySecret, Key: clientKeyCurrent}
	accepted := secretKeyRef{Name: clientKeySecret, Key: clientKeyAccepted}
	if got := refs(); got.current != current || got.rotated != (secretKeyRef{}) || got.restartedAt != "" {
		t.Fatalf("after install: the key from %+v, the older ones from %+v, restarted at %q; want %+v, none, never", got.current, got.rotated, got.restartedAt, current)
	}
	secretValues := func(when string) (cur, acc string) {
		t.Helper()
		s := cp.secretFiles(t, ns, clientKeySecret)
		if ks := keysOf(s); strings.Join(ks, ",") != clientKeyCurrent+","+clientKeyAccepted {
			t.Fatalf("%s the Secret %s holds %v, want %s and %s", when, clientKeySecret, ks, clientKeyCurrent, clientKeyAccepted)
		}
		return s[clientKeyCurrent], s[clientKeyAccepted]
	}

	// 1. Accept a new key on every pod; the old one stays current.
	g.step("accept (1)", accept)
	cur, acc := secretValues("after step 1")
	if cur != original || len(acc) < 32 || acc == original || strings.ContainsAny(acc, ",\n") {
		t.Fatalf("after step 1 %s=%q (was %q), %s=%q: want the key unchanged and a new one of at least 32 bytes", clientKeyCurrent, cur, original, clientKeyAccepted, acc)
	}
	got := refs()
	if got.current != current || got.rotated != accepted || got.restartedAt == "" {
		t.Fatalf("after step 1: the key from %+v, the older ones from %+v, restarted at %q; want %+v, %+v and a rollout restart", got.current, got.rotated, got.restartedAt, current, accepted)
	}
	restarted1, err := time.Parse(time.RFC3339, got.restartedAt)
	if err != nil {
		t.Fatal(err)
	}
	// kubectl stamps the restart to the second (as for the token key).
	for !time.Now().Truncate(time.Second).After(restarted1) {
		time.Sleep(100 * time.Millisecond)
	}

	// 2. Make it current, the old one accepted.
	g.step("swap (2)", swap)
	if cur2, acc2 := secretValues("after step 2"); cur2 != acc || acc2 != original {
		t.Fatalf("after step 2 %s=%q and %s=%q; want the two of step 1 swapped", clientKeyCurrent, cur2, clientKeyAccepted, acc2)
	}
	got = refs()
	restarted2, err := time.Parse(time.RFC3339, got.restartedAt)
	if got.current != current || got.rotated != accepted || err != nil || !restarted2.After(restarted1) {
		t.Fatalf("after step 2: the key from %+v, the older ones from %+v, restarted at %q; want %+v, %+v, after %s", got.current, got.rotated, got.restartedAt, current, accepted, restarted1.Format(time.RFC3339))
	}

	// 3. The GPT's secret, kept as at install (the secret, then its old
	// hash), hashed again under the new key.
	secret := strings.Repeat("GPTSECRET", 6)
	writeFile(t, filepath.Join(g.dir, "my-gpt.secret"), []byte(secret+"\n$hmac-sha256$old\n"))
	sh := exec.CommandContext(timeout(t, 8*time.Minute), "bash", "-euo", "pipefail", "-c", inNamespace(t, rehash, ns))
	sh.Dir = g.dir
	sh.Env = append(append([]string{}, g.helmEnv...), "PATH="+g.path, "KUBECONFIG="+cp.kubeconfig)
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("the guide's re-hash (3) commands failed: %v\n%s", err, out)
	}
	m := hmac.New(sha256.New, []byte(acc))
	m.Write([]byte(secret))
	if want := "$hmac-sha256$" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "\n"; string(out) != want {
		t.Fatalf("step 3 printed %q, want only the secret's hash under the new key, %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(g.dir, clientKeyCurrent)); !os.IsNotExist(err) {
		t.Fatalf("step 3 left the key file %s behind (%v)", clientKeyCurrent, err)
	}

	// While rotating, rotatedSecretKey in my-values.yaml keeps the older
	// key through an upgrade; my-values.yaml as it was drops it (step 4's
	// upgrade).
	kept := strings.Replace(own, "    existingSecret: "+clientKeySecret+"\n", "    existingSecret: "+clientKeySecret+"\n    rotatedSecretKey: "+clientKeyAccepted+"\n", 1)
	g.upgrade([]byte(kept))
	if got = refs(); got.current != current || got.rotated != accepted {
		t.Fatalf("helm upgrade with rotatedSecretKey in my-values.yaml: the key from %+v, the older ones from %+v; want %+v, %+v", got.current, got.rotated, current, accepted)
	}
	g.upgrade([]byte(own))
	if got = refs(); got.current != current || got.rotated != (secretKeyRef{}) {
		t.Fatalf("helm upgrade with my-values.yaml as it was: the key from %+v, the older ones from %+v; want %+v and none", got.current, got.rotated, current)
	}
}
