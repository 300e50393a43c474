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
