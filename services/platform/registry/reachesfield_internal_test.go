package registry

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
)

// TestReachesFieldEndsInRecursiveMessages: the one walk behind hasRequired,
// hasFieldMask and hasAny ends in recursive messages — a message holding itself
// (as a field, a list, a map's values) or one holding another that holds
// it — walks each message type once, and still finds a field reached only
// after a recursive one (in the message, or through the cycle), or only as
// a map's value; it does not enter what enter refuses (an Any).
func TestReachesFieldEndsInRecursiveMessages(t *testing.T) {
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	req := descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	field := func(name string, n int32, label *descriptorpb.FieldDescriptorProto_Label, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Label: label, Type: typ}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	entry := func(name, valueType string) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			Field: []*descriptorpb.FieldDescriptorProto{field("key", 1, opt, str, ""), field("value", 2, opt, msg, valueType)}}
	}
	message := func(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
	}
	node := message("Node", field("child", 1, opt, msg, ".walk.Node"), field("kids", 2, rep, msg, ".walk.Node"),
		field("by_name", 3, rep, msg, ".walk.Node.ByNameEntry"), field("s", 4, opt, str, ""))
	node.NestedType = []*descriptorpb.DescriptorProto{entry("ByNameEntry", ".walk.Node")}
	tail := message("Tail", field("self", 1, opt, msg, ".walk.Tail"), field("more", 2, rep, msg, ".walk.Tail"),
		field("mask", 3, opt, msg, ".google.protobuf.FieldMask"))
	mapTo := message("MapTo", field("m", 1, rep, msg, ".walk.MapTo.MEntry"), field("self", 2, opt, msg, ".walk.MapTo"))
	mapTo.NestedType = []*descriptorpb.DescriptorProto{entry("MEntry", ".walk.C")}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("walk/walk.proto"), Package: proto.String("walk"), Syntax: proto.String("proto2"),
		Dependency: []string{"google/protobuf/field_mask.proto", "google/protobuf/any.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			node, tail, mapTo,
			// A and B hold each other; C, with the required field, only B.
			message("A", field("b", 1, opt, msg, ".walk.B"), field("s", 2, opt, str, "")),
			message("B", field("a", 1, rep, msg, ".walk.A"), field("deep", 2, opt, msg, ".walk.C")),
			message("C", field("r", 1, req, str, "")),
			message("InAny", field("any", 1, opt, msg, ".google.protobuf.Any"), field("self", 2, opt, msg, ".walk.InAny")),
		},
	}, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	md := func(name protoreflect.Name) protoreflect.MessageDescriptor { return fd.Messages().ByName(name) }
	for _, c := range []struct {
		name                protoreflect.Name
		required, mask, any bool
	}{
		{"Node", false, false, false},
		{"Tail", false, true, false},
		{"MapTo", true, false, false},
		{"A", true, false, false},
		{"B", true, false, false},
		{"C", true, false, false},
		{"InAny", false, false, true},
	} {
		if got := hasRequired(md(c.name)); got != c.required {
			t.Errorf("hasRequired(%s) = %v, want %v", c.name, got, c.required)
		}
		if got := hasFieldMask(md(c.name)); got != c.mask {
			t.Errorf("hasFieldMask(%s) = %v, want %v", c.name, got, c.mask)
		}
		if got := hasAny(md(c.name)); got != c.any {
			t.Errorf("hasAny(%s) = %v, want %v", c.name, got, c.any)
		}
	}

	// Each message type once: every field of Node (a map's value standing
	// for the map) is matched exactly once, though Node holds itself three
	// ways; so is every field of A and B, which hold each other.
	for _, name := range []protoreflect.Name{"Node", "A"} {
		matched := map[protoreflect.FullName]int{}
		if reachesField(md(name), func(f protoreflect.FieldDescriptor) bool { matched[f.FullName()]++; return false }, nil) {
			t.Errorf("reachesField(%s) with no match: true", name)
		}
		for f, n := range matched {
			if n != 1 {
				t.Errorf("reachesField(%s): field %s matched %d times, want once", name, f, n)
			}
		}
		want := map[protoreflect.Name]int{"Node": 4, "A": 5}[name] // A: a.b, a.s, b.a, b.deep, c.r
		if len(matched) != want {
			t.Errorf("reachesField(%s) matched %d fields (%v), want %d", name, len(matched), matched, want)
		}
	}
}
