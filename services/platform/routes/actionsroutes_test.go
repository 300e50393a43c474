package routes_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/routes"
)

// TestRegistryActionsRoutesAreTheTables: the paths where the capability
// registry lets an operation be (registry.ActionsRoutes) are exactly those
// the actions ingress routes to the actions-api, outside /.well-known
// (where no operation path can be): a path the table adds or drops there
// must be added to or dropped from the registry's rule, or operations
// would be published that the ingress never sends to the actions-api.
func TestRegistryActionsRoutesAreTheTables(t *testing.T) {
	table, err := routes.Load(filepath.Join(repoRoot(t), routes.RelPath))
	if err != nil {
		t.Fatal(err)
	}
	var exact, prefixes []string
	for _, r := range table.Ingresses["actions"] {
		if r.Service != "actions-api" || r.Path == "/.well-known" || strings.HasPrefix(r.Path, "/.well-known/") {
			continue
		}
		if r.PathType == "Prefix" {
			prefixes = append(prefixes, strings.TrimRight(r.Path, "/"))
		} else {
			exact = append(exact, r.Path)
		}
	}
	gotExact, gotPrefixes := registry.ActionsRoutes()
	slices.Sort(exact)
	slices.Sort(prefixes)
	gotExact, gotPrefixes = slices.Sorted(slices.Values(gotExact)), slices.Sorted(slices.Values(gotPrefixes))
	if !slices.Equal(gotExact, exact) || !slices.Equal(gotPrefixes, prefixes) {
		t.Errorf("registry.ActionsRoutes() = exact %q, prefixes %q; the table routes to the actions-api exact %q, prefixes %q", gotExact, gotPrefixes, exact, prefixes)
	}
}
