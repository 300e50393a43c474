package gateway_test

import (
	"testing"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// A backend tool that declares no annotations (notes.add here) is listed with
// MCP's defaults for a tool that says nothing — destructive, open world —
// not with every hint false, which told ChatGPT it changed nothing
// irreversible.
func TestUndeclaredAnnotationsListedAsMCPDefaults(t *testing.T) {
	f := newFleet(t)
	svc := notesService("notes")
	svc.Methods[1].Tool.Annotations = nil
	notes := registrytest.Start(t, "notes", []registrytest.Service{svc})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr)
	tok := f.Token("user-1", "openid notes.read notes.write")
	sid := g.initialize(t, tok)
	var list struct {
		Tools []listedTool `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &list)
	want := map[string]map[string]bool{
		"notes.add":  {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true},
		"notes.list": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false},
	}
	for _, lt := range list.Tools {
		hints, ok := want[lt.Name]
		if !ok {
			continue
		}
		delete(want, lt.Name)
		for hint, v := range hints {
			if got, ok := lt.Annotations[hint].(bool); !ok || got != v {
				t.Errorf("%s: %s = %v, want explicit %v", lt.Name, hint, lt.Annotations[hint], v)
			}
		}
	}
	for name := range want {
		t.Errorf("tool %s not listed", name)
	}
}
