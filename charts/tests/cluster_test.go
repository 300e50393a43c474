package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCluster installs the chart with every values case on a real control
// plane and waits for every Deployment and StatefulSet to become Available;
// then checks that the server rejects invalid objects, so the installs above
// prove something, and that generated secrets survive an upgrade.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: -short leaves out the control-plane test")
	}
	helm := tool(t, "helm")
	cp := startControlPlane(t)
	helmEnv := append(helmEnv(t), "KUBECONFIG="+cp.kubeconfig)

	cases := valuesCases(t)
	for _, name := range []string{"minimal", "production", "dev"} {
		values, ok := cases[name]
		if !ok {
			t.Fatalf("values case %q is missing from charts/tollgate/ci", name)
		}
		t.Run("install/"+name, func(t *testing.T) {
			ns := "tollgate-" + name
			cp.t = t
			cp.kubectlOK(timeout(t, time.Minute), "create", "namespace", ns)
			if name == "production" {
				cp.kubectlOK(timeout(t, time.Minute), "apply", "-n", ns, "-f", filepath.Join("testdata", "cluster", "production-secrets.yaml"))
			}

			// Every rendered object passes the server's own validation with
			// unknown fields treated as errors (helm install alone is lenient).
			manifests, err := run(timeout(t, time.Minute), helmEnv, helm, "template", "tollgate", chartDir(t), "-n", ns, "-f", values)
			if err != nil {
				t.Fatal(err)
			}
			cp.applyDryRun(t, ns, manifests, "")

			start := time.Now()
			out, err := run(timeout(t, 6*time.Minute), helmEnv, helm, "install", "tollgate", chartDir(t),
				"-n", ns, "-f", values, "--wait", "--timeout=5m")
			if err != nil {
				t.Log(cp.describe(ns))
				t.Fatal(err)
			}
			t.Logf("helm install --wait (%s) took %s", name, time.Since(start).Round(time.Second))
			if !strings.Contains(out, "STATUS: deployed") {
				t.Fatalf("helm install did not report deployed:\n%s", out)
			}
			want := 4
			if name == "dev" {
				want = 6 // with the dev IdP and the dev edge
			}
			cp.expectAvailable(t, ns, want)
			cp.expectStatefulSets(t, ns, map[bool]int{true: 0, false: 1}[name == "production"])

			if name == "minimal" {
				// Generated secrets are read back from the cluster on upgrade.
				generatedSecrets := func() string {
					return cp.secretData(t, ns, "tollgate-signing-keys") + cp.secretData(t, ns, "tollgate-redis") + cp.secretData(t, ns, "tollgate-auth-server")
				}
				before := generatedSecrets()
				if _, err := run(timeout(t, 6*time.Minute), helmEnv, helm, "upgrade", "tollgate", chartDir(t),
					"-n", ns, "-f", values, "--set", "logLevel=debug", "--wait", "--timeout=5m"); err != nil {
					t.Fatal(err)
				}
				after := generatedSecrets()
				if before != after || before == "" {
					t.Fatal("helm upgrade replaced a generated secret (signing key, Redis password or token HMAC key)")
				}
				cp.expectAvailable(t, ns, 4)
			}
		})
	}

	// The deployment guide, followed literally: its minimal values without
	// the Secrets they name are refused at once, naming them; after its own
	// secret commands (run by bash, in namespace tollgate as written) the
	// install deploys.
	t.Run("install/docs-minimal", func(t *testing.T) {
		cp.t = t
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			if strict() {
				t.Fatal("openssl is needed to run the guide's commands")
			}
			t.Skip("SKIPPED: openssl is not installed")
		}
		authServer := buildAuthServer(t)
		const ns = "tollgate" // the guide's namespace
		values := filepath.Join(t.TempDir(), "my-values.yaml")
		writeFile(t, values, []byte(docsBlock(t, docsMinimalValues, "yaml")))
		cp.kubectlOK(timeout(t, time.Minute), "create", "namespace", "tollgate-precheck")
		start := time.Now()
		out, err := run(timeout(t, 6*time.Minute), helmEnv, helm, "install", "tollgate", chartDir(t), "-n", "tollgate-precheck", "-f", values, "--wait", "--timeout=5m")
		if err == nil || !strings.Contains(err.Error()+out, `Secret "tollgate-upstream" (upstream.existingSecret) does not exist in namespace tollgate-precheck`) ||
			!strings.Contains(err.Error()+out, `Secret "tollgate-clients" (authServer.clients.existingSecret) does not exist`) ||
			!strings.Contains(err.Error()+out, `Secret "tollgate-client-hmac" (authServer.clientSecretKey.existingSecret) does not exist`) {
			t.Fatalf("install without the referenced Secrets: err=%v\n%s", err, out)
		}
		t.Logf("refused in %s", time.Since(start).Round(time.Millisecond))

		// The guide's commands, with kubectl, openssl and auth-server on PATH.
		script := docsBlock(t, docsSecretCommands, "bash")
		kubectl := tool(t, "kubectl")
		path := strings.Join([]string{filepath.Dir(kubectl), filepath.Dir(openssl), filepath.Dir(authServer), os.Getenv("PATH")}, string(os.PathListSeparator))
		sh := exec.CommandContext(timeout(t, 2*time.Minute), "bash", "-euo", "pipefail", "-c", script)
		sh.Dir = t.TempDir()
		sh.Env = append(os.Environ(), "PATH="+path, "KUBECONFIG="+cp.kubeconfig)
		// The operator types the IdP's client secret at the guide's prompt.
		const idpSecret = "the-secret-your-IdP-issued"
		sh.Stdin = strings.NewReader(idpSecret + "\n")
		if b, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("the guide's secret commands failed: %v\n%s", err, b)
		}
		if got := cp.secretFiles(t, ns, "tollgate-upstream"); len(got) != 1 || got["client-secret"] != idpSecret {
			t.Fatalf("the guide's tollgate-upstream holds %q, want client-secret %q alone, as typed", got, idpSecret)
		}
		// The files holding a secret are the operator's alone (umask 077).
		for _, name := range []string{"client-secret-hmac-key", "my-gpt.secret"} {
			fi, err := os.Stat(filepath.Join(sh.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Fatalf("the guide's %s is %v, want a file for its owner alone", name, fi.Mode().Perm())
			}
		}
		// kwok runs no auth-server: at least check that the registry the
		// commands wrote holds the hash hash-client-secret made
		// (TestHashClientSecretForTheStaticRegistry checks that one
		// authenticates).
		if b, err := os.ReadFile(filepath.Join(sh.Dir, "clients.yaml")); err != nil ||
			!regexp.MustCompile(`client_secret_hash: "\$hmac-sha256\$[A-Za-z0-9_-]{43}"`).Match(b) {
			t.Fatalf("the guide's clients.yaml holds no $hmac-sha256$ hash (%v):\n%s", err, b)
		}
		if out, err := run(timeout(t, 6*time.Minute), helmEnv, helm, "install", "tollgate", chartDir(t), "-n", ns, "-f", values, "--wait", "--timeout=5m"); err != nil {
			t.Log(cp.describe(ns))
			t.Fatalf("%v\n%s", err, out)
		}
		cp.expectAvailable(t, ns, 4)
	})

	// The key-rotation guide's steps for a chart-generated signing key,
	// run as written after an install with generate: true.
	t.Run("rotate/docs-generated-key", func(t *testing.T) {
		cp.t = t
		testDocsGeneratedKeyRotation(t, cp, helm, helmEnv, cases["minimal"])
	})

	// The key-rotation guide's two rollouts of the token HMAC key, run as
	// written after an install with the key in a Secret the operator owns.
	t.Run("rotate/docs-hmac-secret", func(t *testing.T) {
		cp.t = t
		testDocsHMACKeyRotation(t, cp, helm, helmEnv, cases["minimal"])
	})

	// The key-rotation guide's rotation of the client secret HMAC key, run
	// as written after an install with the key in the deployment guide's
	// Secret.
	t.Run("rotate/docs-client-secret-key", func(t *testing.T) {
		cp.t = t
		testDocsClientKeyRotation(t, cp, helm, helmEnv, cases["minimal"])
	})

	// The variants case (an operator's changes to the defaults: another
	// ingress controller on a non-standard port, Redis Sentinel over TLS,
	// ES256, autoscaled auth-server, percentage budgets, placement) is not
	// installed — its Secrets and Redis are an operator's — but every object
	// it renders, as the longest release name Helm allows, passes the
	// server's validation.
	t.Run("validate/variants", func(t *testing.T) {
		cp.t = t
		values, ok := cases["variants"]
		if !ok {
			t.Fatal(`values case "variants" is missing from charts/tollgate/ci`)
		}
		const ns = "tollgate-variants"
		cp.kubectlOK(timeout(t, time.Minute), "create", "namespace", ns)
		manifests, err := run(timeout(t, time.Minute), helmEnv, helm, "template", "tollgate-production-eu-west-1-customer-facing-edge001",
			chartDir(t), "-n", ns, "-f", values)
		if err != nil {
			t.Fatal(err)
		}
		cp.applyDryRun(t, ns, manifests, "")
	})

	t.Run("server rejects invalid objects", func(t *testing.T) {
		cp.t = t
		manifests, err := run(timeout(t, time.Minute), helmEnv, helm, "template", "tollgate", chartDir(t), "-f", cases["minimal"])
		if err != nil {
			t.Fatal(err)
		}
		// A misspelt field, as a template typo would produce.
		typo := strings.Replace(manifests, "readOnlyRootFilesystem: true", "readOnlyRootFilesytem: true", 1)
		if typo == manifests {
			t.Fatal("the rendered chart has no readOnlyRootFilesystem to misspell")
		}
		cp.applyDryRun(t, "default", typo, `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem"`)
		// A Deployment whose selector does not select its own pods.
		bad := strings.Replace(manifests, "app.kubernetes.io/component: auth-server\n  strategy:", "app.kubernetes.io/component: not-auth-server\n  strategy:", 1)
		if bad == manifests {
			t.Fatal("could not find the auth-server Deployment selector to break")
		}
		cp.applyDryRun(t, "default", bad, "selector` does not match template `labels`")
	})
}

// applyDryRun sends manifests to the server with strict field validation;
// wantErr "" expects success, else an error containing wantErr.
func (cp *controlPlane) applyDryRun(t *testing.T, ns, manifests, wantErr string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifests.yaml")
	writeFile(t, f, []byte(manifests))
	out, err := cp.kubectl_(timeout(t, 2*time.Minute), "apply", "-n", ns, "--dry-run=server", "--validate=strict", "-f", f)
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("the server rejected the rendered chart: %v", err)
	case wantErr != "" && err == nil:
		t.Fatalf("the server accepted an invalid object (wanted %q):\n%s", wantErr, out)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Fatalf("the server rejected the object, but not with %q:\n%v", wantErr, err)
	}
}

type workloadList struct {
	Items []struct {
		Metadata struct{ Name string }
		Spec     struct{ Replicas *int }
		Status   struct {
			ReadyReplicas     int
			AvailableReplicas int
			Conditions        []struct{ Type, Status string }
		}
	}
}

func (cp *controlPlane) list(t *testing.T, ns, kind string) workloadList {
	t.Helper()
	var l workloadList
	cp.getJSON(t, ns, &l, kind)
	return l
}

// getJSON decodes `kubectl get <what> -n ns -o json` into v and returns
// the JSON, for failure messages.
func (cp *controlPlane) getJSON(t *testing.T, ns string, v any, what ...string) string {
	t.Helper()
	out := cp.kubectlOK(timeout(t, time.Minute), append(append([]string{"get"}, what...), "-n", ns, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatal(err)
	}
	return out
}

// expectAvailable waits until want Deployments in ns are Available with
// every replica (an HPA may scale one up to its minimum right after install).
func (cp *controlPlane) expectAvailable(t *testing.T, ns string, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var problems []string
		l := cp.list(t, ns, "deployments")
		if len(l.Items) != want {
			t.Fatalf("%d Deployments in %s, want %d", len(l.Items), ns, want)
		}
		for _, d := range l.Items {
			available := false
			for _, c := range d.Status.Conditions {
				available = available || (c.Type == "Available" && c.Status == "True")
			}
			if !available || d.Spec.Replicas == nil || d.Status.AvailableReplicas != *d.Spec.Replicas {
				problems = append(problems, fmt.Sprintf("Deployment %s/%s is not Available: %+v", ns, d.Metadata.Name, d.Status))
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Log(cp.describe(ns))
			t.Fatal(strings.Join(problems, "\n"))
		}
		time.Sleep(2 * time.Second)
	}
}

func (cp *controlPlane) expectStatefulSets(t *testing.T, ns string, want int) {
	t.Helper()
	l := cp.list(t, ns, "statefulsets")
	if len(l.Items) != want {
		t.Fatalf("%d StatefulSets in %s, want %d", len(l.Items), ns, want)
	}
	for _, s := range l.Items {
		if s.Spec.Replicas == nil || s.Status.ReadyReplicas != *s.Spec.Replicas {
			t.Errorf("StatefulSet %s/%s is not ready: %+v", ns, s.Metadata.Name, s.Status)
		}
	}
}

func (cp *controlPlane) secretData(t *testing.T, ns, name string) string {
	t.Helper()
	return cp.kubectlOK(timeout(t, time.Minute), "get", "secret", name, "-n", ns, "-o", "jsonpath={.data}")
}

// describe collects what explains a failed install.
func (cp *controlPlane) describe(ns string) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"get", "all,pvc,pv", "-n", ns, "-o", "wide"},
		{"get", "events", "-n", ns, "--sort-by=.lastTimestamp"},
		{"get", "nodes", "-o", "wide"},
	} {
		out, err := cp.kubectl_(timeout(cp.t, 30*time.Second), args...)
		b.WriteString("$ kubectl " + strings.Join(args, " ") + "\n" + out)
		if err != nil {
			b.WriteString(err.Error() + "\n")
		}
	}
	for _, p := range cp.procs {
		if p.name == "kube-controller-manager" || p.name == "kwok" || p.name == "kube-scheduler" {
			b.WriteString("--- " + p.name + " log tail\n" + tail(p.log, 15) + "\n")
		}
	}
	return b.String()
}

// buildAuthServer builds the auth-server binary, whose hash-client-secret
// the deployment guide's secret commands run, into a directory of its own
// (for PATH), with the repository's workspace (this module's tests run
// with GOWORK=off).
func buildAuthServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "auth-server")
	cmd := exec.CommandContext(timeout(t, 10*time.Minute), "go", "build", "-o", bin, "./services/auth-server/cmd/auth-server")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(repoRoot(t), "go.work"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build auth-server: %v\n%s", err, out)
	}
	return bin
}
