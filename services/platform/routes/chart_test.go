package routes_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/tollgate/tollgate/services/platform/routes"
)

// TestChartIngressesMatchTheTable closes the loop between the two users of
// the path table: charts/tests checks that `helm template` renders exactly
// the golden manifests, and this test checks that the Ingresses in those
// manifests route exactly the table's paths to the table's services — the
// same table the local ingress of `make dev` routes by.
func TestChartIngressesMatchTheTable(t *testing.T) {
	root := repoRoot(t)
	table, err := routes.Load(filepath.Join(root, routes.RelPath))
	if err != nil {
		t.Fatal(err)
	}
	goldens, _ := filepath.Glob(filepath.Join(root, "charts", "tests", "testdata", "golden", "*.yaml"))
	if len(goldens) == 0 {
		t.Fatal("no rendered chart manifests in charts/tests/testdata/golden")
	}
	checked := 0
	for _, path := range goldens {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			var obj struct {
				Kind     string
				Metadata struct{ Name string }
				Spec     struct {
					Rules []struct {
						HTTP struct {
							Paths []struct {
								Path     string
								PathType string `json:"pathType"`
								Backend  struct {
									Service struct{ Name string }
								}
							}
						}
					}
				}
			}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || obj.Kind != "Ingress" {
				continue
			}
			var ingress string
			for name := range table.Ingresses {
				if strings.HasSuffix(obj.Metadata.Name, "-"+name) {
					ingress = name
				}
			}
			if ingress == "" {
				t.Errorf("%s: Ingress %s matches no ingress of the table", filepath.Base(path), obj.Metadata.Name)
				continue
			}
			var got []string
			for _, r := range obj.Spec.Rules {
				for _, p := range r.HTTP.Paths {
					got = append(got, p.PathType+" "+p.Path+" → "+serviceOf(p.Backend.Service.Name, table))
				}
			}
			var want []string
			for _, r := range table.Ingresses[ingress] {
				want = append(want, r.PathType+" "+r.Path+" → "+r.Service)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s: Ingress %s routes\n%s\nbut the table says\n%s", filepath.Base(path), obj.Metadata.Name, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			checked++
		}
	}
	if checked == 0 {
		t.Error("no Ingress found in the rendered manifests")
	}
}

// serviceOf maps a Kubernetes Service name (<release>-<component>) back to
// the component named in the table.
func serviceOf(name string, table *routes.Table) string {
	for _, rules := range table.Ingresses {
		for _, r := range rules {
			if strings.HasSuffix(name, "-"+r.Service) {
				return r.Service
			}
		}
	}
	return "?" + name
}
