package tests

import (
	"encoding/base64"
	"os"
	"sort"
	"strings"
	"testing"
)

// Where docs/operations/key-rotation.md keeps the rotation of a key the
// chart generated.
const docsGeneratedKeyRotation = "### A key the chart generated"

// authServerSigning is what the auth-server Deployment's pod template says
// about signing keys: the Secret mounted as SIGNING_KEYS_DIR, the active kid
// (SIGNING_KEY_ACTIVE) and the rollout-restart stamp.
type authServerSigning struct {
	secret, active, restartedAt string
}

// authServerPod is the part of the auth-server Deployment (apps/v1, as
// kubectl get -o json gives it) that the rotation tests read: the pod
// template's annotations, Secret volumes and the containers' env and
// mounts. The field names are apps/v1's; the module does not depend on
// k8s.io/api for these few.
type authServerPod struct {
	Spec struct {
		Template struct {
			Metadata struct {
				Annotations map[string]string
			}
			Spec struct {
				Volumes []struct {
					Name      string
					Secret    struct{ SecretName string }
					Projected struct {
						Sources []struct {
							Secret *struct {
								Name  string
								Items []struct{ Key, Path string }
							}
						}
					}
				}
				Containers []podContainer
			}
		}
	}
}

type podContainer struct {
	Name string
	Env  []struct {
		Name      string
		Value     string
		ValueFrom *struct {
			SecretKeyRef *secretKeyRef
		}
	}
	VolumeMounts []struct{ Name, MountPath string }
}

// authServerPod reads the pod template of the auth-server Deployment in
// ns and returns it with kubectl's output (for failures) and the
// auth-server container, which it must have.
func (cp *controlPlane) authServerPod(t *testing.T, ns string) (d authServerPod, c podContainer, out string) {
	t.Helper()
	out = cp.getJSON(t, ns, &d, "deployment", "tollgate-auth-server")
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "auth-server" {
			return d, c, out
		}
	}
	t.Fatalf("the auth-server Deployment has no container auth-server:\n%s", out)
	return d, c, out
}

// restartedAt is the stamp kubectl rollout restart puts on the pod
// template ("" when never restarted).
func (d *authServerPod) restartedAt() string {
	return d.Spec.Template.Metadata.Annotations["kubectl.kubernetes.io/restartedAt"]
}

func (cp *controlPlane) authServerSigning(t *testing.T, ns string) authServerSigning {
	t.Helper()
	d, c, out := cp.authServerPod(t, ns)
	var s authServerSigning
	var mounted string
	for _, e := range c.Env {
		switch e.Name {
		case "SIGNING_KEY_ACTIVE":
			s.active = e.Value
		case "SIGNING_KEYS_DIR":
			mounted = e.Value
		}
	}
	if mounted == "" {
		t.Fatalf("the auth-server container has no SIGNING_KEYS_DIR:\n%s", out)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "signing-keys" {
			s.secret = v.Secret.SecretName
		}
	}
	s.restartedAt = d.restartedAt()
	return s
}

// secretFiles returns a Secret's entries, decoded.
func (cp *controlPlane) secretFiles(t *testing.T, ns, name string) map[string]string {
	t.Helper()
	var s struct{ Data map[string]string }
	cp.getJSON(t, ns, &s, "secret", name)
	files := map[string]string{}
	for k, v := range s.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("secret %s key %s: %v", name, k, err)
		}
		files[k] = string(b)
	}
	return files
}

func keysOf(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// testDocsGeneratedKeyRotation installs the chart with a generated signing
// key, then runs the key-rotation guide's own commands for that case
// (kubectl, openssl, helm upgrade; the waits between steps are comments and
// are not waited), checking after each step what the cluster holds.
func testDocsGeneratedKeyRotation(t *testing.T, cp *controlPlane, helm string, helmEnv []string, values string) {
	const ns = "tollgate-keyrot" // the guide's namespace is taken by install/docs-minimal
	g := newGuideCheckout(t, cp, helm, helmEnv, ns)
	// Step 1 adds, step 3 activates (its comment also names the wait of
	// step 2), step 4 retires.
	steps := docsRotationSteps(t, docsGeneratedKeyRotation, "# 1.", "# 2. ... 3.", "# 4.")
	add, activate, retire := steps[0], steps[1], steps[2]

	// The operator's my-values.yaml: here the minimal values case, which
	// sets generate: true.
	v, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	g.install(v)
	got := cp.authServerSigning(t, ns)
	if got.secret != "tollgate-signing-keys" || got.active != "generated" {
		t.Fatalf("after install with generate: true: auth-server mounts Secret %q with SIGNING_KEY_ACTIVE %q, want tollgate-signing-keys and generated", got.secret, got.active)
	}
	generated := cp.secretFiles(t, ns, "tollgate-signing-keys")
	if ks := keysOf(generated); strings.Join(ks, ",") != "generated.pem" || !strings.Contains(generated["generated.pem"], "PRIVATE KEY-----") {
		t.Fatalf("the generated Secret holds %v, want generated.pem with a PEM private key", ks)
	}

	// 1. Add: the old key under "generated" and a new one, "generated" active.
	g.step("add (1)", add)
	got = cp.authServerSigning(t, ns)
	if got.secret != "tollgate-signing-keys-v2" || got.active != "generated" {
		t.Fatalf("after step 1: auth-server mounts Secret %q with SIGNING_KEY_ACTIVE %q, want tollgate-signing-keys-v2 and generated", got.secret, got.active)
	}
	v2 := cp.secretFiles(t, ns, "tollgate-signing-keys-v2")
	if ks := keysOf(v2); strings.Join(ks, ",") != "2026-12.pem,generated.pem" {
		t.Fatalf("after step 1 the new Secret holds %v, want 2026-12.pem and generated.pem", ks)
	}
	if v2["generated.pem"] != generated["generated.pem"] {
		t.Fatal("after step 1 the new Secret's generated.pem is not the key the chart generated")
	}
	newKey := v2["2026-12.pem"]
	if !strings.Contains(newKey, "PRIVATE KEY-----") || newKey == generated["generated.pem"] {
		t.Fatal("after step 1 the new Secret's 2026-12.pem is not a new PEM private key")
	}
	if keysOf(cp.secretFiles(t, ns, "tollgate-signing-keys"))[0] != "generated.pem" {
		t.Fatal("after step 1 the generated Secret is gone (it should stay behind: helm.sh/resource-policy: keep)")
	}

	// 3. Activate the new key.
	g.step("activate (2, 3)", activate)
	got = cp.authServerSigning(t, ns)
	if got.secret != "tollgate-signing-keys-v2" || got.active != "2026-12" {
		t.Fatalf("after step 3: auth-server mounts Secret %q with SIGNING_KEY_ACTIVE %q, want tollgate-signing-keys-v2 and 2026-12", got.secret, got.active)
	}
	if ks := keysOf(cp.secretFiles(t, ns, "tollgate-signing-keys-v2")); strings.Join(ks, ",") != "2026-12.pem,generated.pem" {
		t.Fatalf("after step 3 the Secret holds %v, want both keys still published", ks)
	}

	// 4. Retire the old key: the Secret holds only the new one, rolled out.
	g.step("retire (4)", retire)
	got = cp.authServerSigning(t, ns)
	if got.secret != "tollgate-signing-keys-v2" || got.active != "2026-12" || got.restartedAt == "" {
		t.Fatalf("after step 4: auth-server mounts Secret %q with SIGNING_KEY_ACTIVE %q, restarted at %q; want tollgate-signing-keys-v2, 2026-12 and a rollout restart", got.secret, got.active, got.restartedAt)
	}
	final := cp.secretFiles(t, ns, "tollgate-signing-keys-v2")
	if ks := keysOf(final); strings.Join(ks, ",") != "2026-12.pem" {
		t.Fatalf("after step 4 the Secret holds %v, want only 2026-12.pem", ks)
	}
	if final["2026-12.pem"] != newKey {
		t.Fatal("after step 4 2026-12.pem is not the key step 1 added")
	}
}
