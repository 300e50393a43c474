package clients

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegistryFieldNamesAreCaseSensitive: the YAML decoder matches field
// names without regard to case, so "Clients", "Client_Id" or
// "REDIRECT_URIS" were taken as the fields they resemble. A field whose
// name differs from a known one only in letter case is refused, in the
// document and in a client, each naming the file, the client, the field
// as written and its spelling; every one is reported at once. The same
// registry spelled right loads.
func TestRegistryFieldNamesAreCaseSensitive(t *testing.T) {
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	const client = `
  - %s: app
    client_name: App
    %s: ["https://app.example/cb"]
    token_endpoint_auth_method: none
    resources: ["https://mcp.example/mcp"]
`
	doc := func(clients, clientID, redirectURIs string) string {
		return clients + ":" + strings.NewReplacer("%s: app", clientID+": app", "%s: [", redirectURIs+": [").Replace(client)
	}
	load := func(t *testing.T, content string) (*Static, []string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "clients.yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		s, problems := LoadFile(path, rules)
		for i, p := range problems {
			problems[i] = strings.ReplaceAll(p, path, "FILE")
		}
		return s, problems
	}

	if s, problems := load(t, doc("clients", "client_id", "redirect_uris")); len(problems) != 0 || s.Len() != 1 {
		t.Fatalf("the registry spelled right: %d clients, problems %q", s.Len(), problems)
	}
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"top-level", doc("Clients", "client_id", "redirect_uris"), []string{
			`FILE: field "Clients" is spelled "clients": field names are case-sensitive, and one that differs from a field only in letter case is refused`,
		}},
		{"in a client", doc("clients", "Client_Id", "REDIRECT_URIS"), []string{
			`FILE: client "app" (entry 1): field "Client_Id" is spelled "client_id": field names are case-sensitive, and one that differs from a field only in letter case is refused`,
			`FILE: client "app" (entry 1): field "REDIRECT_URIS" is spelled "redirect_uris": field names are case-sensitive, and one that differs from a field only in letter case is refused`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, problems := load(t, tc.doc)
			if len(problems) != len(tc.want) {
				t.Fatalf("problems %q, want %q", problems, tc.want)
			}
			for i, p := range problems {
				if p != tc.want[i] {
					t.Errorf("problem %d:\n got %s\nwant %s", i+1, p, tc.want[i])
				}
			}
		})
	}
	// Parse, which reads no file, names none.
	_, problems := Parse([]byte(doc("clients", "client_id", "Redirect_URIs")), rules)
	if len(problems) != 1 || !strings.HasPrefix(problems[0], `client "app" (entry 1): field "Redirect_URIs" is spelled "redirect_uris"`) {
		t.Errorf("Parse: problems %q", problems)
	}
}
