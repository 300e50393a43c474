package registry_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// TestEveryToolDecidesConsequential: an operation is consequential unless
// every tool of its RPC is read-only. A read-only card listed first and a
// destructive tool second, with consequential: false, was accepted (only
// the first tool was looked at): the GPT would call the destructive
// operation without asking the user.
func TestEveryToolDecidesConsequential(t *testing.T) {
	fd := protoFile(t, func(m *descriptorpb.MethodOptions) {
		proto.SetExtension(m, optionsv1.E_McpTool, []*optionsv1.McpTool{
			{Name: "x.card", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{ReadOnly: true}},
			{Name: "x.wipe", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{Destructive: true}},
		})
		setAction(m, &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/x", OperationId: "wipe", Summary: "s", Consequential: false})
	})
	_, err := registry.New(fd.Services().Get(0))
	if want := `action is declared not consequential but tool "x.wipe" is not read-only`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
	// Marked consequential, the same RPC is accepted.
	fd = protoFileNamed(t, "consequential", func(m *descriptorpb.MethodOptions) {
		proto.SetExtension(m, optionsv1.E_McpTool, []*optionsv1.McpTool{
			{Name: "x.card", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{ReadOnly: true}},
			{Name: "x.wipe", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{Destructive: true}},
		})
		setAction(m, &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/x", OperationId: "wipe", Summary: "s", Consequential: true})
	})
	if _, err := registry.New(fd.Services().Get(0)); err != nil {
		t.Errorf("a consequential operation of a destructive tool: %v", err)
	}
}

// TestReadOnlyNotConsequential: a read-only capability (every tool
// read_only) must not be marked consequential (docs/guides/add-a-capability.md):
// ChatGPT Apps run its tools unasked while GPT Actions would ask before
// every read. An operation without tools decides for itself.
func TestReadOnlyNotConsequential(t *testing.T) {
	fd := protoFile(t, func(m *descriptorpb.MethodOptions) {
		setTool(m, &optionsv1.McpTool{Name: "x.get", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{ReadOnly: true}})
		setAction(m, &optionsv1.ActionsOperation{Method: "GET", Path: "/actions/x", OperationId: "getX", Summary: "s", Consequential: true})
	})
	_, err := registry.New(fd.Services().Get(0))
	if want := "a read-only capability must not be marked consequential"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
	fd = protoFileNamed(t, "notools", func(m *descriptorpb.MethodOptions) {
		setAction(m, &optionsv1.ActionsOperation{Method: "GET", Path: "/actions/x", OperationId: "getX", Summary: "s", Consequential: true})
	})
	if _, err := registry.New(fd.Services().Get(0)); err != nil {
		t.Errorf("a consequential operation without tools: %v", err)
	}
}

// TestReadOnlyAndDestructiveRefused: a tool declared both read_only and
// destructive was accepted, and its read_only made the operation not
// consequential: GPT Actions would call a destructive operation without
// asking the user.
func TestReadOnlyAndDestructiveRefused(t *testing.T) {
	fd := protoFile(t, func(m *descriptorpb.MethodOptions) {
		setTool(m, &optionsv1.McpTool{Name: "x.wipe", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{ReadOnly: true, Destructive: true}})
		setAction(m, &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/x", OperationId: "wipe", Summary: "s", Consequential: false})
	})
	_, err := registry.New(fd.Services().Get(0))
	if want := `tool "x.wipe" is declared both read_only and destructive`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestMissingAnnotationsAreMCPDefaults: a tool without an annotations
// message was published with every hint false (proto3's zero values):
// not destructive, closed world. It gets MCP's defaults for a tool that
// says nothing instead, and its operation must be consequential.
func TestMissingAnnotationsAreMCPDefaults(t *testing.T) {
	fd := protoFile(t, func(m *descriptorpb.MethodOptions) {
		setTool(m, &optionsv1.McpTool{Name: "x.do", Title: "t", Description: "d"})
		setAction(m, &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/x", OperationId: "doX", Summary: "s", Consequential: true})
	})
	r, err := registry.New(fd.Services().Get(0))
	if err != nil {
		t.Fatal(err)
	}
	var got *registry.Tool
	for _, tool := range r.Tools() {
		if tool.Name == "x.do" {
			got = tool
		}
	}
	if got == nil {
		t.Fatal("tool x.do not registered")
	}
	if want := (registry.Annotations{Destructive: true, OpenWorld: true}); got.Annotations != want {
		t.Errorf("annotations = %+v, want MCP's defaults %+v", got.Annotations, want)
	}
	if got.RetrySafe() {
		t.Error("a tool declaring nothing is retry-safe")
	}
	// Declared explicitly, the hints are the declared ones.
	fd = protoFileNamed(t, "declared", func(m *descriptorpb.MethodOptions) {
		setTool(m, &optionsv1.McpTool{Name: "x.do", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{Idempotent: true}})
		setAction(m, &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/x", OperationId: "doX", Summary: "s", Consequential: true})
	})
	if r, err = registry.New(fd.Services().Get(0)); err != nil {
		t.Fatal(err)
	}
	for _, tool := range r.Tools() {
		if tool.Name == "x.do" && tool.Annotations != (registry.Annotations{Idempotent: true}) {
			t.Errorf("declared annotations = %+v", tool.Annotations)
		}
	}
}
