package tests

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path"
	"strings"
	"testing"
	"time"
)

// keyInSecret is a key setting of the auth-server kept in a Secret the
// operator owns, which docs/operations/key-rotation.md rotates in place in
// two rollouts: step 1 adds a new key under accepted and names it in
// rotatedSecretKey, step 2 swaps the two.
type keyInSecret struct {
	what    string // what the key is, in failures
	heading string // the guide's section
	value   string // the authServer value naming the Secret: authServer.<value>.existingSecret
	// The Secret and its two keys.
	secret, current, accepted string
	// The auth-server's setting (mounted at <setting>_FILE) and the
	// variable of its older values.
	setting, rotated string
}

// refs is where the auth-server in ns takes k from.
func (k keyInSecret) refs(cp *controlPlane, t *testing.T, ns string) keyRefs {
	t.Helper()
	return cp.authServerKeyRefs(t, ns, k.setting, k.rotated)
}

// keyRotation is a rotation of a keyInSecret run by rotateKey: the
// checkout it runs in, the guide's steps, the operator's my-values.yaml
// (own) and the key's values at install (original) and from step 1 on
// (added).
type keyRotation struct {
	t               *testing.T
	cp              *controlPlane
	g               *guideCheckout
	k               keyInSecret
	steps           []string
	own             string
	original, added string
}

// rotateKey installs the chart in namespace ns with k in its Secret (made
// with a random key, named in the values case's authServer), then runs the
// guide's steps 1 and 2 for it, each in its own shell, checking after
// each what the Secret holds, where the auth-server takes k from and that
// the Deployment was restarted. heads are the guide's numbered steps
// (docsRotationSteps); the steps after 2 are the caller's.
func rotateKey(t *testing.T, cp *controlPlane, helm string, helmEnv []string, valuesCase, ns string, k keyInSecret, heads ...string) *keyRotation {
	t.Helper()
	r := &keyRotation{t: t, cp: cp, g: newGuideCheckout(t, cp, helm, helmEnv, ns), k: k}
	r.steps = docsRotationSteps(t, k.heading, heads...)

	raw := make([]byte, 48)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	r.original = base64.StdEncoding.EncodeToString(raw)
	cp.kubectlOK(timeout(t, time.Minute), "create", "secret", "generic", k.secret, "-n", ns,
		"--from-literal="+k.current+"="+r.original)
	v, err := os.ReadFile(valuesCase)
	if err != nil {
		t.Fatal(err)
	}
	r.own = strings.Replace(string(v), "\nauthServer:\n", "\nauthServer:\n  "+k.value+":\n    existingSecret: "+k.secret+"\n", 1)
	if r.own == string(v) {
		t.Fatalf("the values case %s has no top-level authServer: to add %s.existingSecret to", valuesCase, k.value)
	}
	r.g.install([]byte(r.own))
	current, accepted := r.want()
	if got := k.refs(cp, t, ns); got.current != current || got.rotated != (secretKeyRef{}) || got.restartedAt != "" {
		t.Fatalf("after install: the %s from %+v, the older ones from %+v, restarted at %q; want %+v, none, never", k.what, got.current, got.rotated, got.restartedAt, current)
	}

	// 1. Accept a new key on every pod; the old one stays current.
	r.g.step("accept (1)", r.steps[0])
	cur, acc := r.secretValues("after step 1")
	if cur != r.original || len(acc) < 32 || acc == r.original || strings.ContainsAny(acc, ",\n") {
		t.Fatalf("after step 1 %s=%q (was %q), %s=%q: want it unchanged and a new key of at least 32 bytes, one value", k.current, cur, r.original, k.accepted, acc)
	}
	r.added = acc
	got := k.refs(cp, t, ns)
	if got.current != current || got.rotated != accepted || got.restartedAt == "" {
		t.Fatalf("after step 1: the %s from %+v, the older ones from %+v, restarted at %q; want %+v, %+v and a rollout restart", k.what, got.current, got.rotated, got.restartedAt, current, accepted)
	}
	restarted1, err := time.Parse(time.RFC3339, got.restartedAt)
	if err != nil {
		t.Fatal(err)
	}
	// kubectl stamps the restart to the second: an operator's step 2 comes
	// later, and so does this one (else its restart would change nothing).
	for !time.Now().Truncate(time.Second).After(restarted1) {
		time.Sleep(100 * time.Millisecond)
	}

	// 2. Make it current, the old one accepted.
	r.g.step("swap (2)", r.steps[1])
	if cur2, acc2 := r.secretValues("after step 2"); cur2 != r.added || acc2 != r.original {
		t.Fatalf("after step 2 %s=%q and %s=%q; want the two of step 1 swapped (%q, %q)", k.current, cur2, k.accepted, acc2, r.added, r.original)
	}
	got = k.refs(cp, t, ns)
	restarted2, err := time.Parse(time.RFC3339, got.restartedAt)
	if got.current != current || got.rotated != accepted || err != nil || !restarted2.After(restarted1) {
		t.Fatalf("after step 2: the %s from %+v, the older ones from %+v, restarted at %q (%v); want %+v, %+v, after step 1's %s: the pods read the swapped Secret only when they start", k.what, got.current, got.rotated, got.restartedAt, err, current, accepted, restarted1.Format(time.RFC3339))
	}
	return r
}

// want is where the auth-server should take the key and its older values
// from during the rotation.
func (r *keyRotation) want() (current, accepted secretKeyRef) {
	return secretKeyRef{Name: r.k.secret, Key: r.k.current}, secretKeyRef{Name: r.k.secret, Key: r.k.accepted}
}

// secretValues are the Secret's two keys' values, which must be all it
// holds; when says which step in a failure.
func (r *keyRotation) secretValues(when string) (cur, acc string) {
	r.t.Helper()
	s := r.cp.secretFiles(r.t, r.g.ns, r.k.secret)
	if ks := keysOf(s); strings.Join(ks, ",") != r.k.current+","+r.k.accepted {
		r.t.Fatalf("%s the Secret %s holds %v, want %s and %s", when, r.k.secret, ks, r.k.current, r.k.accepted)
	}
	return s[r.k.current], s[r.k.accepted]
}

// upgrades checks what the guide says of upgrades while rotating: with
// rotatedSecretKey in my-values.yaml the older key stays; with
// my-values.yaml as it was, its variable is gone.
func (r *keyRotation) upgrades() {
	r.t.Helper()
	current, accepted := r.want()
	existing := "    existingSecret: " + r.k.secret + "\n"
	kept := strings.Replace(r.own, existing, existing+"    rotatedSecretKey: "+r.k.accepted+"\n", 1)
	r.g.upgrade([]byte(kept))
	if got := r.k.refs(r.cp, r.t, r.g.ns); got.current != current || got.rotated != accepted {
		r.t.Fatalf("helm upgrade with rotatedSecretKey in my-values.yaml: the %s from %+v, the older ones from %+v; want %+v, %+v", r.k.what, got.current, got.rotated, current, accepted)
	}
	r.g.upgrade([]byte(r.own))
	if got := r.k.refs(r.cp, r.t, r.g.ns); got.current != current || got.rotated != (secretKeyRef{}) {
		r.t.Fatalf("helm upgrade with my-values.yaml as it was: the %s from %+v, the older ones from %+v; want %+v and none, as the guide says", r.k.what, got.current, got.rotated, current)
	}
}

// keyRefs is where the auth-server Deployment's pod template takes a key
// setting from: the Secret and key mounted at <setting>_FILE, the Secret
// and key of its older values (<rotated>), and the rollout-restart stamp.
type keyRefs struct {
	current, rotated secretKeyRef
	restartedAt      string
}

type secretKeyRef struct{ Name, Key string }

// authServerKeyRefs reads keyRefs of the auth-server's key setting given
// as setting_FILE (a projected Secret key) with its older values in
// rotated (a secretKeyRef).
func (cp *controlPlane) authServerKeyRefs(t *testing.T, ns, setting, rotated string) keyRefs {
	t.Helper()
	d, c, out := cp.authServerPod(t, ns)
	var h keyRefs
	var file string
	mounts := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.Name == setting+"_FILE":
			file = e.Value
		case e.Name == setting || e.Name == rotated+"_FILE":
			t.Fatalf("the auth-server container sets %s, which this test does not follow:\n%s", e.Name, out)
		case e.Name == rotated:
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("%s is not taken from a Secret:\n%s", rotated, out)
			}
			h.rotated = *e.ValueFrom.SecretKeyRef
		}
	}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if file == "" {
		t.Fatalf("the auth-server container has no %s_FILE:\n%s", setting, out)
	}
	// The Secret key projected at setting_FILE.
	for _, v := range d.Spec.Template.Spec.Volumes {
		for _, s := range v.Projected.Sources {
			if s.Secret == nil {
				continue
			}
			for _, it := range s.Secret.Items {
				if mounts[v.Name] != "" && path.Join(mounts[v.Name], it.Path) == file {
					h.current = secretKeyRef{Name: s.Secret.Name, Key: it.Key}
				}
			}
		}
	}
	if h.current.Name == "" {
		t.Fatalf("no Secret key is mounted at %s_FILE %s:\n%s", setting, file, out)
	}
	h.restartedAt = d.restartedAt()
	return h
}
