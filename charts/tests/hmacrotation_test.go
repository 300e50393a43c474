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

// Where docs/operations/key-rotation.md keeps the rotation of the token HMAC
// key, and the Secret and keys its commands work on.
const (
	docsHMACKeyRotation = "### The token HMAC key"
	hmacSecret          = "tollgate-auth"
	hmacCurrentKey      = "token-hmac-secret"
	hmacAcceptedKey     = "token-hmac-secret-accepted"
)

// authServerHMAC is where the auth-server Deployment's pod template takes
// its HMAC secrets from: the Secret and key mounted at TOKEN_HMAC_SECRET_FILE,
// the Secret and key of TOKEN_HMAC_SECRETS_ROTATED, and the rollout-restart
// stamp.
type authServerHMAC struct {
	current, rotated secretKeyRef
	restartedAt      string
}

type secretKeyRef struct{ Name, Key string }

func (cp *controlPlane) authServerHMAC(t *testing.T, ns string) authServerHMAC {
	t.Helper()
	return cp.authServerKeyRefs(t, ns, "TOKEN_HMAC_SECRET", "TOKEN_HMAC_SECRETS_ROTATED")
}

// authServerKeyRefs is authServerHMAC for any key setting of the
// auth-server given as setting_FILE (a projected Secret key) with its older
// values in rotated (a secretKeyRef).
func (cp *controlPlane) authServerKeyRefs(t *testing.T, ns, setting, rotated string) authServerHMAC {
	t.Helper()
	var d struct {
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string
				}
				Spec struct {
					Volumes []struct {
						Name      string
						Projected struct {
							Sources []struct {
								Secret *struct {
									Name  string
									Items []struct{ Key, Path string }
								}
							}
						}
					}
					Containers []struct {
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
				}
			}
		}
	}
	out := cp.getJSON(t, ns, &d, "deployment", "tollgate-auth-server")
	var h authServerHMAC
	var file string
	mounts := map[string]string{}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "auth-server" {
			continue
		}
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
	h.restartedAt = d.Spec.Template.Metadata.Annotations["kubectl.kubernetes.io/restartedAt"]
	return h
}

// testDocsHMACKeyRotation installs the chart with the token HMAC key in a
// Secret the operator owns, then runs the key-rotation guide's own commands
// for it (kubectl, openssl, helm upgrade, rollout restart and status; each
// step in its own shell, as the guide says they may run), checking after
// each of its two steps what the cluster holds, and then what it says of
// later upgrades.
func testDocsHMACKeyRotation(t *testing.T, cp *controlPlane, helm string, helmEnv []string, values string) {
	const ns = "tollgate-hmacrot" // the guide's namespace is taken by install/docs-minimal
	g := newGuideCheckout(t, cp, helm, helmEnv, ns)
	// Step 1 accepts the new secret everywhere, step 2 makes it current.
	steps := docsRotationSteps(t, docsHMACKeyRotation, "# 1.", "# 2.")
	accept, swap := steps[0], steps[1]

	// What the guide presupposes: the HMAC key in a Secret the operator
	// made, named by authServer.tokenSecret.existingSecret in the
	// operator's my-values.yaml (here the minimal values case and that).
	raw := make([]byte, 48)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	original := base64.StdEncoding.EncodeToString(raw)
	cp.kubectlOK(timeout(t, time.Minute), "create", "secret", "generic", hmacSecret, "-n", ns,
		"--from-literal="+hmacCurrentKey+"="+original)

	v, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	own := strings.Replace(string(v), "\nauthServer:\n", "\nauthServer:\n  tokenSecret:\n    existingSecret: "+hmacSecret+"\n", 1)
	if own == string(v) {
		t.Fatalf("the values case %s has no top-level authServer: to add tokenSecret.existingSecret to", values)
	}
	g.install([]byte(own))
	current := secretKeyRef{Name: hmacSecret, Key: hmacCurrentKey}
	accepted := secretKeyRef{Name: hmacSecret, Key: hmacAcceptedKey}
	got := cp.authServerHMAC(t, ns)
	if got.current != current || got.rotated != (secretKeyRef{}) || got.restartedAt != "" {
		t.Fatalf("after install: the HMAC secret from %+v, the rotated ones from %+v, restarted at %q; want %+v, none, never", got.current, got.rotated, got.restartedAt, current)
	}

	secretValues := func(when string) (cur, acc string) {
		t.Helper()
		s := cp.secretFiles(t, ns, hmacSecret)
		if ks := keysOf(s); strings.Join(ks, ",") != hmacCurrentKey+","+hmacAcceptedKey {
			t.Fatalf("%s the Secret %s holds %v, want %s and %s", when, hmacSecret, ks, hmacCurrentKey, hmacAcceptedKey)
		}
		return s[hmacCurrentKey], s[hmacAcceptedKey]
	}

	// 1. Accept a new secret on every pod; the old one stays current.
	g.step("accept (1)", accept)
	cur, acc := secretValues("after step 1")
	if cur != original {
		t.Fatalf("after step 1 %s changed (%q, was %q); it should stay current until step 2", hmacCurrentKey, cur, original)
	}
	if len(acc) < 32 || acc == original || strings.ContainsAny(acc, ",\n") {
		t.Fatalf("after step 1 %s is %q: want a new secret of at least 32 bytes, one value", hmacAcceptedKey, acc)
	}
	got = cp.authServerHMAC(t, ns)
	if got.current != current || got.rotated != accepted || got.restartedAt == "" {
		t.Fatalf("after step 1: the HMAC secret from %+v, the rotated ones from %+v, restarted at %q; want %+v, %+v and a rollout restart", got.current, got.rotated, got.restartedAt, current, accepted)
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
	g.step("swap (2)", swap)
	cur2, acc2 := secretValues("after step 2")
	if cur2 != acc || acc2 != original {
		t.Fatalf("after step 2 %s=%q and %s=%q; want the two of step 1 swapped (%q, %q)", hmacCurrentKey, cur2, hmacAcceptedKey, acc2, acc, original)
	}
	got = cp.authServerHMAC(t, ns)
	if got.current != current || got.rotated != accepted {
		t.Fatalf("after step 2: the HMAC secret from %+v, the rotated ones from %+v; want %+v, %+v", got.current, got.rotated, current, accepted)
	}
	restarted2, err := time.Parse(time.RFC3339, got.restartedAt)
	if err != nil || !restarted2.After(restarted1) {
		t.Fatalf("after step 2 the auth-server was restarted at %q (%v), want after step 1's %s: the pods read the swapped Secret only when they start", got.restartedAt, err, restarted1.Format(time.RFC3339))
	}

	// What the guide says of later upgrades: with rotatedSecretKey in
	// my-values.yaml the accepted secret stays; with my-values.yaml as it
	// was, TOKEN_HMAC_SECRETS_ROTATED is gone.
	upgrade := func(values string) authServerHMAC {
		t.Helper()
		g.upgrade([]byte(values))
		return cp.authServerHMAC(t, ns)
	}
	kept := strings.Replace(own, "    existingSecret: "+hmacSecret+"\n", "    existingSecret: "+hmacSecret+"\n    rotatedSecretKey: "+hmacAcceptedKey+"\n", 1)
	if got = upgrade(kept); got.current != current || got.rotated != accepted {
		t.Fatalf("helm upgrade with rotatedSecretKey in my-values.yaml: the HMAC secret from %+v, the rotated ones from %+v; want %+v, %+v", got.current, got.rotated, current, accepted)
	}
	if got = upgrade(own); got.current != current || got.rotated != (secretKeyRef{}) {
		t.Fatalf("helm upgrade with my-values.yaml as it was: the HMAC secret from %+v, the rotated ones from %+v; want %+v and none, as the guide says", got.current, got.rotated, current)
	}
}
