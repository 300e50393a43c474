package registry_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry"
)

func errorsAs(err error, target any) bool { return err != nil && errors.As(err, target) }

// declared writes a tool's hints as its registration declares them, "-"
// for one it leaves out: "readOnly=true destructive=- idempotent=true
// openWorld=false".
func declared(a registry.Annotations) string {
	v := func(b *bool) string {
		if b == nil {
			return "-"
		}
		return strconv.FormatBool(*b)
	}
	return "readOnly=" + v(a.ReadOnlyHint) + " destructive=" + v(a.DestructiveHint) + " idempotent=" + v(a.IdempotentHint) + " openWorld=" + v(a.OpenWorldHint)
}

// mcpHints writes a tool's hints as MCP reads them, defaults applied.
func mcpHints(a registry.Annotations) string {
	return fmt.Sprintf("readOnly=%t destructive=%t idempotent=%t openWorld=%t", a.ReadOnly(), a.Destructive(), a.Idempotent(), a.OpenWorld())
}

func setTool(m *descriptorpb.MethodOptions, t *optionsv1.McpTool) {
	proto.SetExtension(m, optionsv1.E_McpTool, []*optionsv1.McpTool{t})
}

func setAction(m *descriptorpb.MethodOptions, a *optionsv1.ActionsOperation) {
	proto.SetExtension(m, optionsv1.E_ActionsOperation, a)
}

func protoFile(t *testing.T, opts func(*descriptorpb.MethodOptions)) protoreflect.FileDescriptor {
	return protoFileNamed(t, "x", opts)
}

// protoFileNamed builds, in memory, a file with one service whose single
// RPC carries the options set by opts.
func protoFileNamed(t *testing.T, name string, opts func(*descriptorpb.MethodOptions)) protoreflect.FileDescriptor {
	t.Helper()
	return protoFileWith(t, name, nil, opts)
}

// protoFileWith is protoFileNamed whose service declares scopes.
func protoFileWith(t *testing.T, name string, scopes []*optionsv1.Scope, opts func(*descriptorpb.MethodOptions)) protoreflect.FileDescriptor {
	t.Helper()
	so := &descriptorpb.ServiceOptions{}
	if scopes != nil {
		proto.SetExtension(so, optionsv1.E_Scope, scopes)
	}
	mo := &descriptorpb.MethodOptions{}
	opts(mo)
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("bad/" + name + ".proto"),
		Package: proto.String("bad." + name),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Req")},
			{Name: proto.String("Resp")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:    proto.String("BadService"),
			Options: so,
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name: proto.String("Do"), InputType: proto.String(".bad." + name + ".Req"), OutputType: proto.String(".bad." + name + ".Resp"),
				Options: mo,
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}
