package registry

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// TestCleanProtoErr: protobuf-go writes "proto:" followed by either a space
// or a non-breaking space, chosen per binary (internal/detrand) so that
// callers do not match its messages. The message a caller sees loses the
// prefix whichever one its binary got.
func TestCleanProtoErr(t *testing.T) {
	for _, in := range []string{
		"proto: (line 1:9): unknown field \"x\"",
		"proto:\u00a0(line 1:9): unknown field \"x\"",
		"(line 1:9): unknown field \"x\"",
	} {
		if got, want := cleanProtoErr(errors.New(in)), `(line 1:9): unknown field "x"`; got != want {
			t.Errorf("cleanProtoErr(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRequiredPathNamesTheFieldAsTheSchemaDoes: a proto2 required field
// left unset is named by its path in the input schema's names ("items[1].r",
// `by["a b"].r`), not by its full proto name ("req.Inner.r"), which no
// schema or document a caller reads publishes.
func TestRequiredPathNamesTheFieldAsTheSchemaDoes(t *testing.T) {
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("req/req.proto"), Package: proto.String("req"), Syntax: proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Inner"), Field: []*descriptorpb.FieldDescriptorProto{{Name: proto.String("r"), JsonName: proto.String("r"), Number: proto.Int32(1),
				Type: descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum()}}},
			{Name: proto.String("Outer"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("items"), JsonName: proto.String("items"), Number: proto.Int32(1), Type: msg, Label: rep, TypeName: proto.String(".req.Inner")},
				{Name: proto.String("by"), JsonName: proto.String("by"), Number: proto.Int32(2), Type: msg, Label: rep, TypeName: proto.String(".req.Outer.ByEntry")},
				{Name: proto.String("one_inner"), JsonName: proto.String("oneInner"), Number: proto.Int32(3), Type: msg, Label: opt, TypeName: proto.String(".req.Inner")},
			}, NestedType: []*descriptorpb.DescriptorProto{{Name: proto.String("ByEntry"), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
				Field: []*descriptorpb.FieldDescriptorProto{
					{Name: proto.String("key"), JsonName: proto.String("key"), Number: proto.Int32(1), Type: str, Label: opt},
					{Name: proto.String("value"), JsonName: proto.String("value"), Number: proto.Int32(2), Type: msg, Label: opt, TypeName: proto.String(".req.Inner")},
				}}}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	outer := fd.Messages().ByName("Outer")
	for in, want := range map[string]string{
		`{}`:                                 "",
		`{"items":[{"r":1},{}]}`:             "items[1].r",
		`{"by":{"ok":{"r":1},"a b":{}}}`:     `by["a b"].r`,
		`{"by":{"zz":{},"aa":{}}}`:           "by.aa.r",
		`{"one_inner":{},"items":[{"r":1}]}`: "one_inner.r",
		`{"one_inner":{"r":2},"items":[{}]}`: "items[0].r",
		`{"oneInner":{}}`:                    "one_inner.r",
	} {
		m := dynamicpb.NewMessage(outer)
		if err := (protojson.UnmarshalOptions{AllowPartial: true}).Unmarshal([]byte(in), m); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := requiredPath(m); got != want {
			t.Errorf("requiredPath(%s) = %q, want %q", in, got, want)
		}
	}
}
