package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTiltfile loads the repository's Tiltfile with `tilt alpha
// tiltfile-result`, which evaluates it offline, helm() render included, and
// checks the resources it declares.
func TestTiltfile(t *testing.T) {
	tilt := tool(t, "tilt")
	helm := tool(t, "helm")
	// tilt needs a current context; it does not contact the cluster here.
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: kind-tollgate, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: kind-tollgate, user: {token: unused}}]
contexts: [{name: kind-tollgate, context: {cluster: kind-tollgate, user: kind-tollgate}}]
current-context: kind-tollgate
`))
	env := append(helmEnv(t),
		"KUBECONFIG="+kubeconfig,
		"PATH="+filepath.Dir(helm)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TILT_DISABLE_ANALYTICS=1",
		"HOME="+dir, // keeps ~/.tilt-dev out of the user's home
	)
	cmd := []string{"alpha", "tiltfile-result", "-f", filepath.Join(repoRoot(t), "Tiltfile")}
	out, err := runIn(timeout(t, 3*time.Minute), repoRoot(t), env, tilt, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	var result struct {
		Manifests []struct {
			Name         string
			ImageTargets []json.RawMessage
			DeployTarget struct {
				PortForwardTemplateSpec struct {
					Forwards []struct{ LocalPort, ContainerPort int }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil {
		t.Fatalf("tiltfile-result is not JSON: %v\n%.2000s", err, out)
	}
	byName := map[string]int{}
	forwards := map[string][]int{} // resource -> local ports
	for _, m := range result.Manifests {
		byName[m.Name] = len(m.ImageTargets)
		for _, f := range m.DeployTarget.PortForwardTemplateSpec.Forwards {
			forwards[m.Name] = append(forwards[m.Name], f.LocalPort, f.ContainerPort)
		}
	}
	// The make dev layout: the fleet on 4000, the dev IdP on 4500, admin ports.
	for name, want := range map[string][]int{
		"edge":            {4000, 8080},
		"dev-idp":         {4502, 9100, 4500, 8080},
		"mcp-gateway":     {4302, 9100},
		"auth-server":     {4102, 9100},
		"actions-api":     {4402, 9100},
		"capability-core": {4202, 9100},
		"redis":           {4379, 6379},
	} {
		if got := forwards[name]; !slices.Equal(got, want) {
			t.Errorf("%s port-forwards (local, container...) = %v, want %v", name, got, want)
		}
	}
	for _, svc := range imageServices {
		if n, ok := byName[svc]; !ok || n != 1 {
			t.Errorf("resource %s: present=%v with %d image targets, want 1", svc, ok, n)
		}
		if _, ok := byName[svc+"-compile"]; !ok {
			t.Errorf("no %s-compile resource", svc)
		}
	}
	for _, r := range []string{"redis", "edge"} {
		if _, ok := byName[r]; !ok {
			t.Errorf("no %s resource", r)
		}
	}
	for _, want := range []string{
		"tollgate-dev/auth-server", "tollgate-dev/dev-idp", "tollgate-dev-edge",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tiltfile-result does not mention %s", want)
		}
	}
	t.Logf("Tiltfile declares %d resources", len(result.Manifests))
}

// tiltfileResult evaluates the Tiltfile offline with the settings file
// settings (TOLLGATE_TILT_SETTINGS) and returns tilt's output and error.
func tiltfileResult(t *testing.T, settings string) (string, error) {
	t.Helper()
	tilt, helm := tool(t, "tilt"), tool(t, "helm")
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: tollgate-e2e, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: tollgate-e2e, user: {token: unused}}]
contexts: [{name: tollgate-e2e, context: {cluster: tollgate-e2e, user: tollgate-e2e}}]
current-context: tollgate-e2e
`))
	p := filepath.Join(dir, "tilt-settings.yaml")
	writeFile(t, p, []byte(settings))
	env := append(helmEnv(t),
		"KUBECONFIG="+kubeconfig, "TOLLGATE_TILT_SETTINGS="+p,
		"PATH="+filepath.Dir(helm)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TILT_DISABLE_ANALYTICS=1", "HOME="+dir,
	)
	return runIn(timeout(t, 3*time.Minute), repoRoot(t), env, tilt, "alpha", "tiltfile-result", "-f", filepath.Join(repoRoot(t), "Tiltfile"))
}

// TestTiltfileContainerd: image_loader containerd (a node without Docker,
// as in the real-cluster test) builds each service with ko and imports it
// (custom_build, no compile resources), names images so that the kubelet
// finds them as written, and with dev_edge and port_forwards off declares
// no edge and no localhost port.
func TestTiltfileContainerd(t *testing.T) {
	out, err := tiltfileResult(t, "allow_k8s_contexts: [tollgate-e2e]\nimage_loader: containerd\ndev_edge: false\nport_forwards: false\n")
	if err != nil {
		t.Fatal(err)
	}
	var result struct {
		Manifests []struct {
			Name         string
			ImageTargets []struct{ Selector string }
			DeployTarget struct {
				PortForwardTemplateSpec struct{ Forwards []json.RawMessage }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil {
		t.Fatalf("tiltfile-result is not JSON: %v\n%.2000s", err, out)
	}
	images := map[string]string{}
	for _, m := range result.Manifests {
		if strings.HasSuffix(m.Name, "-compile") || m.Name == "edge" {
			t.Errorf("resource %s declared with image_loader containerd and dev_edge false", m.Name)
		}
		if n := len(m.DeployTarget.PortForwardTemplateSpec.Forwards); n > 0 {
			t.Errorf("resource %s has %d port-forwards with port_forwards false", m.Name, n)
		}
		for _, it := range m.ImageTargets {
			images[m.Name] = it.Selector
		}
	}
	for _, svc := range imageServices {
		if want := "tollgate.test/tilt/" + svc; images[svc] != want {
			t.Errorf("%s image %q, want %q", svc, images[svc], want)
		}
	}
	if !strings.Contains(out, "containerd-load.sh") {
		t.Error("the images are not built by charts/images/containerd-load.sh")
	}
	if strings.Contains(out, "tollgate-dev-edge") {
		t.Error("dev_edge false: the chart's dev edge is still rendered")
	}
}

// TestTiltfileRefusesBadSettings: an unknown image loader, and containerd
// with a registry to push to, fail the Tiltfile with the reason.
func TestTiltfileRefusesBadSettings(t *testing.T) {
	for settings, want := range map[string]string{
		"image_loader: podman\n": `image_loader "podman" is not one of docker, containerd`,
		"image_loader: containerd\ndefault_registry: registry.example.com/me\n": "cannot be combined with default_registry",
		"services: [billing]\n": `unknown service "billing"`,
	} {
		out, err := tiltfileResult(t, settings)
		if err == nil || !strings.Contains(out+err.Error(), want) {
			t.Errorf("settings %q: err %v, want a failure saying %q\n%s", settings, err, want, lastLines(out, 10))
		}
	}
}
