package oauth

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/platform/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestMetadataGolden keeps the discovery document reviewable: any change
// shows up as a diff of testdata/*.json (regenerate with -update).
func TestMetadataGolden(t *testing.T) {
	// The scopes are those of a registry of the services this test links
	// (in a running auth-server: its own and its backends'): the OpenID
	// Connect ones and every declared one.
	caps, err := registry.FromFiles(protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]config.Config{
		"metadata-dcr.json":    {Issuer: "https://auth.example.com", CIMDEnabled: true, DCREnabled: true},
		"metadata-no-dcr.json": {Issuer: "https://auth.example.com", CIMDEnabled: true},
	} {
		t.Run(name, func(t *testing.T) {
			s := &Server{cfg: cfg, issuer: cfg.Issuer}
			s.UseRegistry(caps)
			got, err := json.MarshalIndent(s.Metadata(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from the golden file; review and run go test -update\n got: %s", name, got)
			}
		})
	}
}
