package registry_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
			{Name: "x.card", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}},
			{Name: "x.wipe", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{Destructive: proto.Bool(true)}},
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
			{Name: "x.card", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}},
			{Name: "x.wipe", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{Destructive: proto.Bool(true)}},
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
		setTool(m, &optionsv1.McpTool{Name: "x.get", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}})
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
		setTool(m, &optionsv1.McpTool{Name: "x.wipe", Title: "t", Description: "d", Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true), Destructive: proto.Bool(true)}})
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
	got := onlyTool(t, fd)
	if g, w := mcpHints(got.Annotations), "readOnly=false destructive=true idempotent=false openWorld=true"; g != w {
		t.Errorf("annotations = %s, want MCP's defaults %s", g, w)
	}
	if got.RetrySafe() {
		t.Error("a tool declaring nothing is retry-safe")
	}
}

// TestPartialAnnotationsAreMCPDefaults: a tool that declares some hints
// had the others read as proto3's false: {idempotent: true} alone made
// the tool not destructive and closed world, the opposite of MCP's
// defaults. Each hint has presence (optional in options.proto): one left
// out is MCP's default, one declared false stays false.
func TestPartialAnnotationsAreMCPDefaults(t *testing.T) {
	for i, tc := range []struct {
		ann             *optionsv1.ToolAnnotations
		consequential   bool
		declared, hints string
	}{
		{&optionsv1.ToolAnnotations{Idempotent: proto.Bool(true)}, true,
			"readOnly=- destructive=- idempotent=true openWorld=-", "readOnly=false destructive=true idempotent=true openWorld=true"},
		{&optionsv1.ToolAnnotations{ReadOnly: proto.Bool(false)}, true,
			"readOnly=false destructive=- idempotent=- openWorld=-", "readOnly=false destructive=true idempotent=false openWorld=true"},
		{&optionsv1.ToolAnnotations{}, true,
			"readOnly=- destructive=- idempotent=- openWorld=-", "readOnly=false destructive=true idempotent=false openWorld=true"},
		// A read-only tool is not destructive, declared or not.
		{&optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}, false,
			"readOnly=true destructive=- idempotent=- openWorld=-", "readOnly=true destructive=false idempotent=false openWorld=true"},
		// Declared false stays false.
		{&optionsv1.ToolAnnotations{Destructive: proto.Bool(false), OpenWorld: proto.Bool(false)}, true,
			"readOnly=- destructive=false idempotent=- openWorld=false", "readOnly=false destructive=false idempotent=false openWorld=false"},
		{&optionsv1.ToolAnnotations{ReadOnly: proto.Bool(false), Destructive: proto.Bool(true), Idempotent: proto.Bool(false), OpenWorld: proto.Bool(true)}, true,
			"readOnly=false destructive=true idempotent=false openWorld=true", "readOnly=false destructive=true idempotent=false openWorld=true"},
	} {
		fd := protoFileNamed(t, fmt.Sprintf("p%d", i), func(m *descriptorpb.MethodOptions) {
			setTool(m, &optionsv1.McpTool{Name: "x.do", Title: "t", Description: "d", Annotations: tc.ann})
			setAction(m, &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/x", OperationId: "doX", Summary: "s", Consequential: tc.consequential})
		})
		got := onlyTool(t, fd)
		if g := declared(got.Annotations); g != tc.declared {
			t.Errorf("%v: declared %s, want %s", tc.ann, g, tc.declared)
		}
		if g := mcpHints(got.Annotations); g != tc.hints {
			t.Errorf("%v: read as %s, want %s", tc.ann, g, tc.hints)
		}
	}
}

// onlyTool is the one tool of fd's service, registered.
func onlyTool(t *testing.T, fd protoreflect.FileDescriptor) *registry.Tool {
	t.Helper()
	r, err := registry.New(fd.Services().Get(0))
	if err != nil {
		t.Fatal(err)
	}
	tools := r.Tools()
	if len(tools) != 1 {
		t.Fatalf("%d tools registered, want 1", len(tools))
	}
	return tools[0]
}
