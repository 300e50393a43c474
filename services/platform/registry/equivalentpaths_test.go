package registry_test

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

// twoOperations builds a service bad.<name>.BadService whose RPCs A and B
// declare a and b; their request holds the strings id and item_id.
func twoOperations(t *testing.T, name string, a, b *optionsv1.ActionsOperation) (*registry.Registry, error) {
	t.Helper()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name string, n int32) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: str, Label: opt, JsonName: proto.String(name)}
	}
	method := func(mname string, op *optionsv1.ActionsOperation) *descriptorpb.MethodDescriptorProto {
		mo := &descriptorpb.MethodOptions{}
		setAction(mo, op)
		return &descriptorpb.MethodDescriptorProto{Name: proto.String(mname), InputType: proto.String(".bad." + name + ".Req"), OutputType: proto.String(".bad." + name + ".Resp"), Options: mo}
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("bad/" + name + ".proto"), Package: proto.String("bad." + name), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Req"), Field: []*descriptorpb.FieldDescriptorProto{field("id", 1), field("item_id", 2)}},
			{Name: proto.String("Resp")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("BadService"), Method: []*descriptorpb.MethodDescriptorProto{method("A", a), method("B", b)}}},
	}, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return registry.New(fd.Services().Get(0))
}

// TestEquivalentPathTemplatesAreOneRoute: paths are compared with their
// parameters' names erased. /actions/items/{id} and
// /actions/items/{item_id} match the same requests: with one method they
// are one route (the actions-api's router sent one operation's calls to
// the other), with two they are one OpenAPI path under two names, which
// OpenAPI 3.1 forbids (Paths Object) and kin-openapi refuses. Both are
// refused with the reason; one path with both methods, and a literal
// segment beside a parameter, are not.
func TestEquivalentPathTemplatesAreOneRoute(t *testing.T) {
	op := func(method, path, id string) *optionsv1.ActionsOperation {
		return &optionsv1.ActionsOperation{Method: method, Path: path, OperationId: id, Summary: "s"}
	}
	for _, c := range []struct {
		name string
		a, b *optionsv1.ActionsOperation
		want string // "" accepted
	}{
		{"samemethod", op("GET", "/actions/items/{id}", "a"), op("GET", "/actions/items/{item_id}", "b"),
			"bad.samemethod.BadService.B: route GET /actions/items/{item_id} already declared by bad.samemethod.BadService.A as GET /actions/items/{id}: paths that differ only in their parameters' names are one route"},
		{"deeper", op("POST", "/actions/items/{id}/parts/{item_id}", "a"), op("POST", "/actions/items/{item_id}/parts/{id}", "b"),
			"bad.deeper.BadService.B: route POST /actions/items/{item_id}/parts/{id} already declared by bad.deeper.BadService.A as POST /actions/items/{id}/parts/{item_id}"},
		{"othermethod", op("GET", "/actions/items/{id}", "a"), op("DELETE", "/actions/items/{item_id}", "b"),
			"bad.othermethod.BadService.B: action path /actions/items/{item_id} differs from /actions/items/{id}, already declared by bad.othermethod.BadService.A, only in its parameters' names: an OpenAPI document cannot hold both (OpenAPI 3.1, Paths Object); use the same names"},
		{"samepath", op("GET", "/actions/items/{id}", "a"), op("GET", "/actions/items/{id}", "b"),
			"bad.samepath.BadService.B: route GET /actions/items/{id} already declared by bad.samepath.BadService.A"},
		{"bothmethods", op("GET", "/actions/items/{id}", "a"), op("DELETE", "/actions/items/{id}", "b"), ""},
		{"literal", op("GET", "/actions/items/{id}", "a"), op("GET", "/actions/items/latest", "b"), ""},
	} {
		r, err := twoOperations(t, c.name, c.a, c.b)
		if c.want == "" {
			if err != nil || len(r.Actions()) != 2 {
				t.Errorf("%s: %v, want both operations accepted", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}
