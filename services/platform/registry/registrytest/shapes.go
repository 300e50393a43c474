package registrytest

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	// The well-known types Shapes' file imports, linked so that Serve
	// finds them in protoregistry.GlobalFiles in any binary.
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/emptypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
)

// Shapes is a service, in package pkg, whose messages hold every protobuf
// shape a backend uses: well-known types (wrappers, Timestamp, Duration,
// FieldMask, Struct, Value, ListValue, Any, Empty, NullValue), every
// scalar kind, an enum, a oneof, maps with integer and bool keys, repeated
// and recursive messages, proto3 optional, a json_name override and a
// deprecated field. Its methods echo their request (Backend):
//
//   - Echo(Shapes) returns (Shapes): MCP tool "<pkg>.echo", POST
//     /actions/<pkg>;
//   - Lookup(Key) returns (Key): tool "<pkg>.lookup", GET
//     /actions/<pkg>/{id} (id is an int64, the other fields of Key are
//     query parameters);
//   - At(When) returns (When): tool "<pkg>.at", DELETE
//     /actions/<pkg>/at/{at} (at is a Timestamp; When's other fields are
//     well-known scalar messages, query parameters).
func Shapes(pkg string) Service {
	msg := func(name string) *string { return proto.String("." + pkg + "." + name) }
	wkt := func(name string) *string { return proto.String(".google.protobuf." + name) }
	n := int32(0)
	field := func(name string, t descriptorpb.FieldDescriptorProto_Type, typeName *string) *descriptorpb.FieldDescriptorProto {
		n++
		return &descriptorpb.FieldDescriptorProto{
			Name: proto.String(name), Number: proto.Int32(n), Type: t.Enum(), TypeName: typeName,
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String(jsonName(name)),
		}
	}
	repeated := func(f *descriptorpb.FieldDescriptorProto) *descriptorpb.FieldDescriptorProto {
		f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		return f
	}
	const (
		tMsg    = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
		tString = descriptorpb.FieldDescriptorProto_TYPE_STRING
		tEnum   = descriptorpb.FieldDescriptorProto_TYPE_ENUM
	)
	var nested []*descriptorpb.DescriptorProto
	mapField := func(name string, key descriptorpb.FieldDescriptorProto_Type, value descriptorpb.FieldDescriptorProto_Type, valueType *string) *descriptorpb.FieldDescriptorProto {
		entry := jsonName("_"+name) + "Entry"
		save := n
		n = 0
		nested = append(nested, &descriptorpb.DescriptorProto{
			Name:    proto.String(entry),
			Field:   []*descriptorpb.FieldDescriptorProto{field("key", key, nil), field("value", value, valueType)},
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		})
		n = save
		return repeated(field(name, tMsg, proto.String("."+pkg+".Shapes."+entry)))
	}
	described := func(f *descriptorpb.FieldDescriptorProto, d string) *descriptorpb.FieldDescriptorProto {
		f.Options = &descriptorpb.FieldOptions{}
		proto.SetExtension(f.Options, optionsv1.E_FieldDescription, d)
		return f
	}

	var shapes []*descriptorpb.FieldDescriptorProto
	for _, w := range []string{"StringValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value", "BoolValue", "BytesValue", "DoubleValue", "FloatValue"} {
		shapes = append(shapes, field(wrapperField(w), tMsg, wkt(w)))
	}
	shapes = append(shapes,
		described(field("ts", tMsg, wkt("Timestamp")), "When it happened."),
		field("dur", tMsg, wkt("Duration")),
		field("mask", tMsg, wkt("FieldMask")),
		field("st", tMsg, wkt("Struct")),
		field("val", tMsg, wkt("Value")),
		field("list", tMsg, wkt("ListValue")),
		field("any", tMsg, wkt("Any")),
		field("empty", tMsg, wkt("Empty")),
		field("nothing", tEnum, wkt("NullValue")),
		field("i64", descriptorpb.FieldDescriptorProto_TYPE_INT64, nil),
		field("u64", descriptorpb.FieldDescriptorProto_TYPE_UINT64, nil),
		field("f64", descriptorpb.FieldDescriptorProto_TYPE_FIXED64, nil),
		field("s64", descriptorpb.FieldDescriptorProto_TYPE_SINT64, nil),
		field("sf64", descriptorpb.FieldDescriptorProto_TYPE_SFIXED64, nil),
		field("i32", descriptorpb.FieldDescriptorProto_TYPE_INT32, nil),
		field("u32", descriptorpb.FieldDescriptorProto_TYPE_UINT32, nil),
		field("f32", descriptorpb.FieldDescriptorProto_TYPE_FIXED32, nil),
		field("s32", descriptorpb.FieldDescriptorProto_TYPE_SINT32, nil),
		field("dbl", descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, nil),
		field("flt", descriptorpb.FieldDescriptorProto_TYPE_FLOAT, nil),
		field("raw", descriptorpb.FieldDescriptorProto_TYPE_BYTES, nil),
		field("flag", descriptorpb.FieldDescriptorProto_TYPE_BOOL, nil),
		field("name", tString, nil),
		field("color", tEnum, msg("Color")),
	)
	oneof := func(f *descriptorpb.FieldDescriptorProto, index int32) *descriptorpb.FieldDescriptorProto {
		f.OneofIndex = proto.Int32(index)
		return f
	}
	shapes = append(shapes,
		oneof(field("by_name", tString, nil), 0),
		oneof(field("by_id", descriptorpb.FieldDescriptorProto_TYPE_INT64, nil), 0),
		oneof(field("by_node", tMsg, msg("Node")), 0),
		mapField("by_int", descriptorpb.FieldDescriptorProto_TYPE_INT32, tString, nil),
		mapField("by_bool", descriptorpb.FieldDescriptorProto_TYPE_BOOL, tString, nil),
		mapField("nodes_by_id", descriptorpb.FieldDescriptorProto_TYPE_UINT64, tMsg, msg("Node")),
		mapField("colors", tString, tEnum, msg("Color")),
		mapField("stamps", tString, tMsg, wkt("Timestamp")),
		repeated(field("nodes", tMsg, msg("Node"))),
		field("root", tMsg, msg("Node")),
		repeated(field("times", tMsg, wkt("Timestamp"))),
		repeated(field("ids", descriptorpb.FieldDescriptorProto_TYPE_INT64, nil)),
		repeated(field("names", tMsg, wkt("StringValue"))),
	)
	maybe := oneof(field("maybe", descriptorpb.FieldDescriptorProto_TYPE_INT32, nil), 1)
	maybe.Proto3Optional = proto.Bool(true)
	renamed := field("renamed", tString, nil)
	renamed.JsonName = proto.String("customName")
	old := field("old", tString, nil)
	old.Options = &descriptorpb.FieldOptions{Deprecated: proto.Bool(true)}
	shapes = append(shapes, maybe, renamed, old)

	n = 0
	node := []*descriptorpb.FieldDescriptorProto{
		field("label", tString, nil),
		field("child", tMsg, msg("Node")),
		repeated(field("children", tMsg, msg("Node"))),
	}
	n = 0
	key := []*descriptorpb.FieldDescriptorProto{
		field("id", descriptorpb.FieldDescriptorProto_TYPE_INT64, nil),
		field("big", descriptorpb.FieldDescriptorProto_TYPE_UINT64, nil),
		field("color", tEnum, msg("Color")),
		field("ratio", descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, nil),
		field("small", descriptorpb.FieldDescriptorProto_TYPE_FLOAT, nil),
		field("count", descriptorpb.FieldDescriptorProto_TYPE_INT32, nil),
		field("token", descriptorpb.FieldDescriptorProto_TYPE_BYTES, nil),
		field("on", descriptorpb.FieldDescriptorProto_TYPE_BOOL, nil),
	}
	n = 0
	when := []*descriptorpb.FieldDescriptorProto{
		field("at", tMsg, wkt("Timestamp")),
		field("within", tMsg, wkt("Duration")),
		field("fields", tMsg, wkt("FieldMask")),
		field("note", tMsg, wkt("StringValue")),
		field("limit", tMsg, wkt("Int64Value")),
		field("strict", tMsg, wkt("BoolValue")),
		field("weight", tMsg, wkt("DoubleValue")),
		field("blob", tMsg, wkt("BytesValue")),
	}

	mo := func(t *optionsv1.McpTool, a *optionsv1.ActionsOperation) *descriptorpb.MethodOptions {
		o := &descriptorpb.MethodOptions{}
		proto.SetExtension(o, optionsv1.E_McpTool, []*optionsv1.McpTool{t})
		proto.SetExtension(o, optionsv1.E_ActionsOperation, a)
		return o
	}
	readOnly := &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true), Idempotent: proto.Bool(true)}
	method := func(name, in string, o *descriptorpb.MethodOptions) *descriptorpb.MethodDescriptorProto {
		return &descriptorpb.MethodDescriptorProto{Name: proto.String(name), InputType: msg(in), OutputType: msg(in), Options: o}
	}
	return Service{
		Package: pkg, Name: "ShapesService",
		Proto: &descriptorpb.FileDescriptorProto{
			Name:    proto.String(pkg + "/shapes.proto"),
			Package: proto.String(pkg),
			Syntax:  proto.String("proto3"),
			Dependency: []string{
				optionsv1.File_tollgate_options_v1_options_proto.Path(),
				"google/protobuf/wrappers.proto", "google/protobuf/timestamp.proto", "google/protobuf/duration.proto",
				"google/protobuf/field_mask.proto", "google/protobuf/struct.proto", "google/protobuf/any.proto",
				"google/protobuf/empty.proto",
			},
			EnumType: []*descriptorpb.EnumDescriptorProto{{
				Name: proto.String("Color"),
				Value: []*descriptorpb.EnumValueDescriptorProto{
					{Name: proto.String("COLOR_UNSPECIFIED"), Number: proto.Int32(0)},
					{Name: proto.String("RED"), Number: proto.Int32(1)},
					{Name: proto.String("GREEN"), Number: proto.Int32(2)},
				},
			}},
			MessageType: []*descriptorpb.DescriptorProto{
				{Name: proto.String("Shapes"), Field: shapes, NestedType: nested, OneofDecl: []*descriptorpb.OneofDescriptorProto{
					{Name: proto.String("choice")}, {Name: proto.String("_maybe")},
				}},
				{Name: proto.String("Node"), Field: node},
				{Name: proto.String("Key"), Field: key},
				{Name: proto.String("When"), Field: when},
			},
			Service: []*descriptorpb.ServiceDescriptorProto{{
				Name: proto.String("ShapesService"),
				Method: []*descriptorpb.MethodDescriptorProto{
					method("Echo", "Shapes", mo(
						&optionsv1.McpTool{Name: pkg + ".echo", Title: "Echo shapes", Description: "Echoes every shape.", Annotations: readOnly},
						&optionsv1.ActionsOperation{Method: "POST", Path: "/actions/" + pkg, OperationId: pkg + "Echo", Summary: "Echo shapes"})),
					method("Lookup", "Key", mo(
						&optionsv1.McpTool{Name: pkg + ".lookup", Title: "Look up", Description: "Echoes a key.", Annotations: readOnly},
						&optionsv1.ActionsOperation{Method: "GET", Path: "/actions/" + pkg + "/{id}", OperationId: pkg + "Lookup", Summary: "Look up"})),
					method("At", "When", mo(
						&optionsv1.McpTool{Name: pkg + ".at", Title: "At", Description: "Echoes a time.", Annotations: readOnly},
						&optionsv1.ActionsOperation{Method: "DELETE", Path: "/actions/" + pkg + "/at/{at}", OperationId: pkg + "At", Summary: "At"})),
				},
			}},
		},
	}
}

func wrapperField(w string) string {
	switch w {
	case "StringValue":
		return "str_w"
	case "Int64Value":
		return "i64_w"
	case "UInt64Value":
		return "u64_w"
	case "Int32Value":
		return "i32_w"
	case "UInt32Value":
		return "u32_w"
	case "BoolValue":
		return "bool_w"
	case "BytesValue":
		return "bytes_w"
	case "DoubleValue":
		return "double_w"
	}
	return "float_w"
}

// jsonName is protoc's JSON name of a field name: lowerCamelCase.
func jsonName(s string) string {
	var b []byte
	up := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			up = true
			continue
		}
		if up && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up = false
		b = append(b, c)
	}
	return string(b)
}
