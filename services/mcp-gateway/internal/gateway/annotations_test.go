package gateway_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// A backend's tools, over gRPC reflection, are listed by tools/list with
// each hint they leave out as MCP's default (MCP 2025-11-25, "Tool
// annotations": readOnlyHint false, destructiveHint true, idempotentHint
// false, openWorldHint true) — never as false, proto3's zero value, which
// told ChatGPT that a tool declaring only idempotent changed nothing
// irreversible. A declared false stays false; a read-only tool that
// leaves destructive out is listed without destructiveHint, which MCP
// reads only for a tool that is not read-only.
func TestUndeclaredAnnotationsListedAsMCPDefaults(t *testing.T) {
	f := newFleet(t)
	svc := notesService("notes")
	svc.Methods[0].Tool.Annotations = &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}
	svc.Methods[1].Tool.Annotations = nil
	svc.Methods = append(svc.Methods,
		registrytest.Method{Name: "TagNote", Tool: &optionsv1.McpTool{Name: "notes.tag", Title: "Tag a note", Description: "Tags a note.",
			RequiredScopes: []string{"notes.write"}, Annotations: &optionsv1.ToolAnnotations{Idempotent: proto.Bool(true)}}},
		registrytest.Method{Name: "PinNote", Tool: &optionsv1.McpTool{Name: "notes.pin", Title: "Pin a note", Description: "Pins a note.",
			RequiredScopes: []string{"notes.write"}, Annotations: &optionsv1.ToolAnnotations{Destructive: proto.Bool(false), OpenWorld: proto.Bool(false)}}})
	notes := registrytest.Start(t, "notes", []registrytest.Service{svc})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr)
	tok := f.Token("user-1", "openid notes.read notes.write")
	sid := g.initialize(t, tok)
	var list struct {
		Tools []listedTool `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &list)
	// nil: the hint is not listed.
	yes, no := proto.Bool(true), proto.Bool(false)
	want := map[string]map[string]*bool{
		// No annotations message: every default.
		"notes.add": {"readOnlyHint": no, "destructiveHint": yes, "idempotentHint": no, "openWorldHint": yes},
		// {idempotent: true} alone: destructive and open world, MCP's defaults.
		"notes.tag": {"readOnlyHint": no, "destructiveHint": yes, "idempotentHint": yes, "openWorldHint": yes},
		// {read_only: true} alone: no destructiveHint, open world.
		"notes.list": {"readOnlyHint": yes, "destructiveHint": nil, "idempotentHint": no, "openWorldHint": yes},
		// Declared false, listed false.
		"notes.pin": {"readOnlyHint": no, "destructiveHint": no, "idempotentHint": no, "openWorldHint": no},
	}
	for _, lt := range list.Tools {
		hints, ok := want[lt.Name]
		if !ok {
			continue
		}
		delete(want, lt.Name)
		for hint, v := range hints {
			got, listed := lt.Annotations[hint]
			switch {
			case v == nil && listed:
				t.Errorf("%s: %s = %v, want it not listed", lt.Name, hint, got)
			case v != nil && got != *v:
				t.Errorf("%s: %s = %v, want explicit %v", lt.Name, hint, got, *v)
			}
		}
	}
	for name := range want {
		t.Errorf("tool %s not listed", name)
	}
}
