package gateway

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// service builds, in memory, a service whose one RPC backs tool.
func service(t *testing.T, name string, tool *optionsv1.McpTool) *registry.Registry {
	t.Helper()
	mo := &descriptorpb.MethodOptions{}
	proto.SetExtension(mo, optionsv1.E_McpTool, []*optionsv1.McpTool{tool})
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("instr/" + name + ".proto"), Package: proto.String("instr." + name), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Req")}, {Name: proto.String("Resp")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S"), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Do"), InputType: proto.String(".instr." + name + ".Req"), OutputType: proto.String(".instr." + name + ".Resp"), Options: mo,
		}}}},
	}, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(fd.Services().Get(0))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestInstructionsFollowTheAnnotations: the server instructions say the
// tools are read-only only when every tool is, and name each tool that
// changes data with its hints.
func TestInstructionsFollowTheAnnotations(t *testing.T) {
	ro := service(t, "ro", &optionsv1.McpTool{Name: "things.list", Title: "List", Description: "Lists things.",
		Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true), Idempotent: proto.Bool(true)}})
	if got := (&catalog{reg: ro}).instructions(); !strings.Contains(got, "Every tool is read-only.") || strings.Contains(got, "Changes data") {
		t.Errorf("read-only registry:\n%s", got)
	}
	rw := service(t, "rw", &optionsv1.McpTool{Name: "things.delete", Title: "Delete", Description: "Deletes a thing.",
		Annotations: &optionsv1.ToolAnnotations{Destructive: proto.Bool(true), Idempotent: proto.Bool(true)}})
	got := (&catalog{reg: rw}).instructions()
	if strings.Contains(got, "read-only") || !strings.Contains(got, "- things.delete: Deletes a thing. Changes data (destructive; repeating it changes nothing more).") {
		t.Errorf("registry with a destructive tool:\n%s", got)
	}
}
