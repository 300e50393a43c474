package api_test

import (
	"net/http"
	"strings"
	"testing"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/actions-api/internal/api"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// reservedService declares an operation at path, one the actions-api
// serves itself.
func reservedService(path string) registrytest.Service {
	return registrytest.Service{
		Package: "reserved", Name: "ReservedService",
		Methods: []registrytest.Method{
			{Name: "Get", Action: &optionsv1.ActionsOperation{Method: "GET", Path: path, OperationId: "getReserved", Summary: "Reserved"}},
		},
	}
}

// TestReservedPathAtStartRefusesOnlyThatService: one backend declaring an
// operation at /privacy made the actions-api exit at start ("capability
// … declares GET /privacy, which the actions-api serves itself"): the
// whole Actions API down (every pod crash-looping) for one backend's
// option. Now that service is refused, logged like a duplicate route
// ("capability service refused" with its reason), and every other
// backend's operations are served; /privacy stays the privacy policy.
func TestReservedPathAtStartRefusesOnlyThatService(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	bad := registrytest.Start(t, "bad", []registrytest.Service{reservedService(api.PathPrivacy)})
	f := start(t, map[string]string{
		"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr + ",bad=" + bad.Addr,
	})
	if op := f.doc.Paths.Find("/actions/notes"); op == nil || op.Get == nil {
		t.Fatalf("notes operations not served beside a backend declaring /privacy; logs:\n%s", f.logs.String())
	}
	if f.doc.Paths.Find(api.PathPrivacy) != nil {
		t.Error("the refused service's GET /privacy is in the document")
	}
	if r := f.do(t, http.MethodGet, api.PathPrivacy, nil); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /privacy: %d %s %s, want the privacy policy", r.status, r.header.Get("Content-Type"), r.body)
	}
	logs := f.logs.String()
	for _, want := range []string{`"msg":"capability service refused"`, `"backend":"bad"`, `"service":"reserved.ReservedService"`,
		`reserved.ReservedService.Get: action path \"/privacy\" is served by the actions-api itself`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

// TestReservedPathAtRefreshFreezesNoOtherBackend: a backend that started
// declaring /actions/openapi.json while the actions-api ran made the whole
// new registry "not served": every other backend's new, changed and
// removed operations were frozen until it was fixed. Now only its service
// is refused; the notes backend's new operations are served, and the
// document is still the document.
func TestReservedPathAtRefreshFreezesNoOtherBackend(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	other := registrytest.Start(t, "other", []registrytest.Service{notesService("misc")})
	f := start(t, map[string]string{
		"CAPABILITY_BACKENDS":         "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr + ",other=" + other.Addr,
		"CAPABILITY_REFRESH_INTERVAL": "1s",
	})
	// Another team's backend ships a service declaring
	// /actions/openapi.json; then the notes team adds its todo operations.
	other.Serve(t, notesService("misc"), reservedService(api.PathOpenAPI))
	notes.Serve(t, notesService("notes"), notesService("todo"))
	eventually(t, "the notes backend's new operations to be served", func() bool {
		f.loadDocument(t) // fails the test unless the document is served
		return f.doc.Paths.Find("/actions/todo") != nil
	})
	if f.doc.Paths.Find("/actions/misc") == nil {
		t.Error("the other backend's accepted service is gone")
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "todo.read"})
	if r := f.do(t, http.MethodGet, "/actions/todo?text=x", bearer(tok)); r.status != 200 {
		t.Errorf("GET /actions/todo: %d %s", r.status, r.body)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `action path \"/actions/openapi.json\" is served by the actions-api itself`) || strings.Contains(logs, "capability registry not served") {
		t.Errorf("logs, want the service refused and no registry kept back:\n%s", logs)
	}
}
