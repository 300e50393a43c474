package registry

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
)

// TestBadMaskFindsTheFieldMaskTheSchemaRefuses: a FieldMask value that
// protojson takes but the schema's pattern refuses (white space around
// the paths) is found at any depth — a field, a list element, a map
// value, a nested or repeated message's field — and named by its path;
// strings that are not FieldMasks (a string field, a map key, a member of
// an Any, whose schema says nothing of its fields) are not.
func TestBadMaskFindsTheFieldMaskTheSchemaRefuses(t *testing.T) {
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	field := func(name, json string, n int32, label *descriptorpb.FieldDescriptorProto_Label, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), JsonName: proto.String(json), Number: proto.Int32(n), Label: label, Type: typ}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("mask/mask.proto"), Package: proto.String("mask"), Syntax: proto.String("proto3"),
		Dependency: []string{"google/protobuf/field_mask.proto", "google/protobuf/any.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("M"), Field: []*descriptorpb.FieldDescriptorProto{
				field("mask", "mask", 1, opt, msg, ".google.protobuf.FieldMask"),
				field("masks", "masks", 2, rep, msg, ".google.protobuf.FieldMask"),
				field("by_name", "byName", 3, rep, msg, ".mask.M.ByNameEntry"),
				field("child", "child", 4, opt, msg, ".mask.M"),
				field("kids", "kids", 5, rep, msg, ".mask.M"),
				field("any", "any", 6, opt, msg, ".google.protobuf.Any"),
				field("s", "s", 7, opt, str, ""),
			}, NestedType: []*descriptorpb.DescriptorProto{{Name: proto.String("ByNameEntry"), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
				Field: []*descriptorpb.FieldDescriptorProto{
					field("key", "key", 1, opt, str, ""),
					field("value", "value", 2, opt, msg, ".google.protobuf.FieldMask"),
				}}}},
			{Name: proto.String("NoMask"), Field: []*descriptorpb.FieldDescriptorProto{
				field("any", "any", 1, opt, msg, ".google.protobuf.Any"),
				field("s", "s", 2, opt, str, ""),
			}},
		},
	}, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	m := fd.Messages().ByName("M")
	if !hasFieldMask(m) || hasFieldMask(fd.Messages().ByName("NoMask")) {
		t.Error("hasFieldMask: want true for M, false for NoMask (a FieldMask only inside an Any)")
	}
	for _, tc := range []struct{ in, path, value string }{
		{`{}`, "", ""},
		{`{"mask":"a,bC.d","masks":["a",""],"by_name":{" x ":"a"},"s":" a ","child":{"s":" "}}`, "", ""},
		{`{"any":{"@type":"type.googleapis.com/google.protobuf.FieldMask","value":" a"}}`, "", ""},
		{`{"mask":" a,b "}`, "mask", " a,b "},
		{`{"mask":"\ta"}`, "mask", "\ta"},
		{`{"s":"x","mask":" "}`, "mask", " "},
		{`{"masks":["a"," b"]}`, "masks[1]", " b"},
		{`{"by_name":{"k":"a","a b":"c "}}`, `by_name["a b"]`, "c "},
		{`{"byName":{"k":"a\n"}}`, "byName.k", "a\n"},
		{`{"child":{"kids":[{},{"mask":" x"}]}}`, "child.kids[1].mask", " x"},
		{`{"kids":[{"child":{"masks":[]}},{"child":{"s":"a","by_name":{},"masks":["a","\u00a0b"]}}]}`, "kids[1].child.masks[1]", "\u00a0b"},
		{`{"child":{},"kids":[],"mask":"a "}`, "mask", "a "},
	} {
		if err := (protojson.UnmarshalOptions{}).Unmarshal([]byte(tc.in), dynamicpb.NewMessage(m)); err != nil {
			t.Fatalf("%s: protojson refuses it: %v", tc.in, err)
		}
		path, value, start, _, found := badMask(m, []byte(tc.in))
		if path != tc.path || value != tc.value || found != (tc.path != "") {
			t.Errorf("badMask(%s) = %q %q %v, want %q %q", tc.in, path, value, found, tc.path, tc.value)
		}
		if found && tc.in[start] != '"' {
			t.Errorf("badMask(%s): start %d is not the value's", tc.in, start)
		}
	}
}
