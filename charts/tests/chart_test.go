package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestLint runs `helm lint --strict` with every values case.
func TestLint(t *testing.T) {
	helm := tool(t, "helm")
	env := helmEnv(t)
	for name, values := range valuesCases(t) {
		t.Run(name, func(t *testing.T) {
			out, err := run(timeout(t, time.Minute), env, helm, "lint", "--strict", chartDir(t), "-f", values)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("unexpected lint output:\n%s", out)
			}
		})
	}
}

// TestHelmUnittest runs the helm-unittest suites of charts/tollgate/tests.
func TestHelmUnittest(t *testing.T) {
	bin := tool(t, "helm-unittest")
	// A bound, not a measurement: 150 cases take ~30 s of CPU, but over a
	// minute and a half on a loaded 2-core machine.
	out, err := run(timeout(t, 6*time.Minute), helmEnv(t), bin, "--strict", "--color=false", chartDir(t))
	t.Log(out)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`Test Suites:\s+\d+ passed, \d+ total`).MatchString(out) {
		t.Fatalf("helm-unittest ran no suite")
	}
}

// generated matches Secret values the chart makes at random on first install.
var generated = regexp.MustCompile(`(?m)^(\s+(?:generated\.pem|redis-password|token-hmac-secret|password|redis-url)): "[^"]*"$`)

func render(t *testing.T, values ...string) (string, error) {
	t.Helper()
	args := []string{"template", "tollgate", chartDir(t), "--namespace", "tollgate"}
	for _, v := range values {
		args = append(args, "-f", v)
	}
	return run(timeout(t, time.Minute), helmEnv(t), tool(t, "helm"), args...)
}

// TestTemplateGolden compares `helm template` of every values case with
// testdata/golden/<case>.yaml. Run with -update to accept a change.
func TestTemplateGolden(t *testing.T) {
	for name, values := range valuesCases(t) {
		t.Run(name, func(t *testing.T) {
			out, err := render(t, values)
			if err != nil {
				t.Fatal(err)
			}
			got := generated.ReplaceAllString(out, `$1: "<generated>"`)
			golden := filepath.Join("testdata", "golden", name+".yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run `make chart-golden-update` to create it)", err)
			}
			if got != string(want) {
				t.Errorf("helm template differs from %s; review the change and run `make chart-golden-update`:\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

// TestTemplateRefuses checks that the schema and the fail guards bite.
func TestTemplateRefuses(t *testing.T) {
	minimal := valuesCases(t)["minimal"]
	cases := []struct {
		name, values, want string
	}{
		{"defaults", "", "hosts.gateway is required"},
		{"unknown key", "authServer:\n  replica: 3\n", "additional properties 'replica' not allowed"},
		{"wrong type", "mcpGateway:\n  replicas: two\n", "replicas"},
		{"bad environment", "environment: staging\n", "environment"},
		{"unknown tool-name style", "mcpGateway:\n  toolNameStyle: camel\n", "toolNameStyle"},
		{"tenant not a GUID", "upstream:\n  issuerUrl: https://login.microsoftonline.com/common/v2.0\n  allowedTenants: [contoso.onmicrosoft.com]\n", "allowedTenants"},
		{"previous issuer not https", "upstream:\n  previousIssuers: [http://old-idp.example.com]\n", "previousIssuers"},
		{"unknown response mode", "upstream:\n  responseMode: fragment\n", "responseMode"},
		{"key prefix with a hash tag", "redis:\n  keyPrefix: \"{tollgate}:\"\n", "keyPrefix"},
		// ACTIONS_PUBLIC_URL is an origin: the actions-api refuses a path
		// (docs/reference/actions.md, "Public URL").
		{"actions URL with a path", "publicUrls:\n  actions: https://api.example.com/tollgate\n", "/publicUrls/actions"},
		// PUBLIC_ISSUER_URL is an origin too: the auth-server refuses a
		// path at start (17f5c75), which helm install --wait would only
		// show as a crash-looping pod.
		{"issuer URL with a path", "publicUrls:\n  issuer: https://gateway.example.com/tenant1\n", "/publicUrls/issuer"},
		{"actions OAuth base with a path", "publicUrls:\n  actionsOAuthBase: https://api.example.com/tenant1\n", "/publicUrls/actionsOAuthBase"},
		{"volatile redis in production", "redis:\n  bundled:\n    persistence:\n      enabled: false\n", "production requires durable Redis"},
		// A misspelt field of a NetworkPolicy peer is dropped by the API
		// server under helm install: matchLabel left namespaceSelector {},
		// every namespace; podSelectr left the whole namespace admitted.
		{"peer selector typo", "networkPolicy:\n  ingressFrom:\n    - namespaceSelector:\n        matchLabel:\n          kubernetes.io/metadata.name: ingress-nginx\n", "additional properties 'matchLabel' not allowed"},
		{"peer field typo", "networkPolicy:\n  metricsFrom:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n      podSelectr: {matchLabels: {app: prometheus}}\n", "additional properties 'podSelectr' not allowed"},
		{"empty peer", "networkPolicy:\n  backendsFrom:\n    - {}\n", "/networkPolicy/backendsFrom/0"},
		// Pass-through Kubernetes fields: a misspelt field is dropped by
		// the API server (a toleration {keys: x, operator: Exists} loses
		// its key and tolerates every taint — with Equal the key-less
		// toleration is refused; a security setting is lost), so the
		// schema holds their core/v1 shapes.
		{"toleration typo", "authServer:\n  tolerations:\n    - {keys: dedicated, operator: Exists, effect: NoSchedule}\n", "additional properties 'keys' not allowed"},
		{"toleration typo with Equal", "authServer:\n  tolerations:\n    - {keys: dedicated, operator: Equal, value: edge, effect: NoSchedule}\n", "additional properties 'keys' not allowed"},
		{"toleration operator", "mcpGateway:\n  tolerations:\n    - {key: dedicated, operator: Equals, value: edge}\n", "/mcpGateway/tolerations/0/operator"},
		{"redis toleration typo", "redis:\n  bundled:\n    tolerations:\n      - {key: dedicated, efect: NoSchedule}\n", "additional properties 'efect' not allowed"},
		{"pod security context typo", "podSecurityContext:\n  runAsNonroot: true\n", "additional properties 'runAsNonroot' not allowed"},
		{"seccomp type", "podSecurityContext:\n  seccompProfile: {type: runtimeDefault}\n", "/podSecurityContext/seccompProfile/type"},
		{"container security context typo", "containerSecurityContext:\n  readOnlyRootFileSystem: true\n", "additional properties 'readOnlyRootFileSystem' not allowed"},
		{"capabilities typo", "containerSecurityContext:\n  capabilities: {drops: [ALL]}\n", "additional properties 'drops' not allowed"},
		{"affinity typo", "actionsApi:\n  affinity:\n    podAntiAffinity:\n      requiredDuringScheduling:\n        - topologyKey: kubernetes.io/hostname\n", "additional properties 'requiredDuringScheduling' not allowed"},
		{"affinity term selector typo", "capabilityCore:\n  affinity:\n    podAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n        - weight: 10\n          podAffinityTerm: {topologyKey: zone, labelSelector: {matchLabel: {app: x}}}\n", "additional properties 'matchLabel' not allowed"},
		{"node affinity without terms", "devIdp:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution: {}\n", "nodeSelectorTerms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := []string{}
			if c.name != "defaults" {
				files = append(files, minimal)
			}
			if c.values != "" {
				f := filepath.Join(t.TempDir(), "values.yaml")
				if err := os.WriteFile(f, []byte(c.values), 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
			_, err := render(t, files...)
			if err == nil {
				t.Fatalf("helm template accepted %q", c.values)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not mention %q:\n%v", c.want, err)
			}
		})
	}
}

// TestTemplateAcceptsKubernetesShapes: the schema of the pass-through
// fields admits what core/v1 admits (TestTemplateRefuses: and refuses a
// misspelt field), and the chart renders it as given.
func TestTemplateAcceptsKubernetesShapes(t *testing.T) {
	values := `authServer:
  tolerations:
    - {operator: Exists, effect: NoExecute, tolerationSeconds: 30}
    - {key: dedicated, operator: Equal, value: identity, effect: NoSchedule}
    - {key: pool, operator: "", value: identity-empty-op}
    - {key: cpu.example.com/gen, operator: Gt, value: "3", effect: NoSchedule}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]
            matchFields: [{key: metadata.name, operator: NotIn, values: [node-1]}]
      preferredDuringSchedulingIgnoredDuringExecution:
        - {weight: 1, preference: {matchExpressions: [{key: cpu.example.com/gen, operator: Gt, values: ["3"]}]}}
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app.kubernetes.io/component: auth-server}}
          matchLabelKeys: [pod-template-hash]
    podAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: topology.kubernetes.io/zone
            namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}
            namespaces: [tollgate]
            labelSelector: {matchExpressions: [{key: app, operator: In, values: [redis]}]}
podSecurityContext:
  fsGroupChangePolicy: OnRootMismatch
  supplementalGroups: [1000]
  sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
  appArmorProfile: {type: RuntimeDefault}
containerSecurityContext:
  procMount: Default
  seLinuxOptions: {level: "s0:c123,c456"}
`
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := render(t, valuesCases(t)["minimal"], f)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tolerationSeconds: 30", "value: identity-empty-op", "operator: Gt", "matchLabelKeys:", "fsGroupChangePolicy: OnRootMismatch", "procMount: Default", "runAsNonRoot: true", "- ALL"} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered manifests lack %q", want)
		}
	}
}

// TestRenderedWorkloads checks every rendered pod template of every case for
// the hardening the chart promises, whatever template produced it.
func TestRenderedWorkloads(t *testing.T) {
	for name, values := range valuesCases(t) {
		t.Run(name, func(t *testing.T) {
			out, err := render(t, values)
			if err != nil {
				t.Fatal(err)
			}
			docs := splitDocs(t, out)
			workloads := 0
			for _, d := range docs {
				kind, _ := d["kind"].(string)
				if kind != "Deployment" && kind != "StatefulSet" {
					continue
				}
				workloads++
				id := kind + "/" + str(d, "metadata", "name")
				pod := dig(d, "spec", "template", "spec")
				if dig(pod, "securityContext")["runAsNonRoot"] != true {
					t.Errorf("%s: pod may run as root", id)
				}
				if str(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
					t.Errorf("%s: no RuntimeDefault seccomp profile", id)
				}
				if pod["automountServiceAccountToken"] != false {
					t.Errorf("%s: mounts a ServiceAccount token", id)
				}
				for _, c := range list(pod, "containers") {
					sc := dig(c, "securityContext")
					if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
						t.Errorf("%s/%v: writable root filesystem or privilege escalation", id, c["name"])
					}
					if drop, _ := dig(sc, "capabilities")["drop"].([]any); len(drop) != 1 || drop[0] != "ALL" {
						t.Errorf("%s/%v: capabilities not all dropped", id, c["name"])
					}
					if dig(c, "readinessProbe") == nil || dig(c, "livenessProbe") == nil {
						t.Errorf("%s/%v: missing probes", id, c["name"])
					}
					if dig(c, "resources", "requests") == nil || dig(c, "resources", "limits")["memory"] == nil {
						t.Errorf("%s/%v: missing requests or memory limit", id, c["name"])
					}
					// Server-side apply and Helm 4 refuse a name twice.
					seen := map[any]bool{}
					for _, e := range list(c, "env") {
						if seen[e["name"]] {
							t.Errorf("%s/%v: env %v listed twice", id, c["name"], e["name"])
						}
						seen[e["name"]] = true
					}
				}
			}
			if workloads < 4 {
				t.Fatalf("only %d workloads rendered", workloads)
			}
		})
	}
}

func splitDocs(t *testing.T, manifests string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for _, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(manifests, -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(part, "")) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(part), &m); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, part)
		}
		docs = append(docs, m)
	}
	return docs
}

func dig(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, _ := m[p].(map[string]any)
		if next == nil {
			return nil
		}
		m = next
	}
	return m
}

func str(m map[string]any, path ...string) string {
	s, _ := dig(m, path[:len(path)-1]...)[path[len(path)-1]].(string)
	return s
}

func list(m map[string]any, key string) []map[string]any {
	var out []map[string]any
	items, _ := m[key].([]any)
	for _, i := range items {
		if mi, ok := i.(map[string]any); ok {
			out = append(out, mi)
		}
	}
	return out
}

// lineDiff shows the first lines where a and b differ, with context.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var buf bytes.Buffer
	shown := 0
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x == y {
			continue
		}
		buf.WriteString("line " + itoa(i+1) + ":\n- " + x + "\n+ " + y + "\n")
		if shown++; shown == 20 {
			buf.WriteString("...\n")
			break
		}
	}
	return buf.String()
}

func itoa(i int) string { return strconv.Itoa(i) }
