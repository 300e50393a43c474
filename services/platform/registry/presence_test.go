package registry_test

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tollgate/tollgate/services/platform/registry"
)

// presenceFile is a file of syntax ("proto2") or edition 2023 whose
// service's one RPC takes and returns Msg: scalars with explicit presence
// (proto2 optional, every editions scalar by default), a group (a
// delimited message field in editions) named MyGroup, a list, and in
// proto2 a required field; in editions a scalar of implicit presence.
func presenceFile(t *testing.T, edition bool) *registry.Capability {
	t.Helper()
	pkg := "presence.p2"
	if edition {
		pkg = "presence.e2023"
	}
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(), Label: opt}
	}
	group := field("mygroup", 5, descriptorpb.FieldDescriptorProto_TYPE_GROUP)
	group.TypeName = proto.String("." + pkg + ".Msg.MyGroup")
	fields := []*descriptorpb.FieldDescriptorProto{
		field("n", 1, descriptorpb.FieldDescriptorProto_TYPE_INT32),
		field("s", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING),
		field("c", 3, descriptorpb.FieldDescriptorProto_TYPE_ENUM),
		field("f", 4, descriptorpb.FieldDescriptorProto_TYPE_FLOAT),
		group,
		field("list", 7, descriptorpb.FieldDescriptorProto_TYPE_INT32),
	}
	fields[2].TypeName = proto.String("." + pkg + ".Color")
	fields[5].Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String(strings.ReplaceAll(pkg, ".", "/") + ".proto"),
		Package: proto.String(pkg),
		EnumType: []*descriptorpb.EnumDescriptorProto{{Name: proto.String("Color"), Value: []*descriptorpb.EnumValueDescriptorProto{
			{Name: proto.String("RED"), Number: proto.Int32(0)}, {Name: proto.String("GREEN"), Number: proto.Int32(1)},
		}}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S"), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Do"), InputType: proto.String("." + pkg + ".Msg"), OutputType: proto.String("." + pkg + ".Msg"),
		}}}},
	}
	if edition {
		fdp.Syntax = proto.String("editions")
		fdp.Edition = descriptorpb.Edition_EDITION_2023.Enum()
		// A group is a delimited message field in editions.
		group.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
		group.Options = &descriptorpb.FieldOptions{Features: &descriptorpb.FeatureSet{
			MessageEncoding: descriptorpb.FeatureSet_DELIMITED.Enum()}}
		implicit := field("imp", 8, descriptorpb.FieldDescriptorProto_TYPE_INT32)
		implicit.Options = &descriptorpb.FieldOptions{Features: &descriptorpb.FeatureSet{
			FieldPresence: descriptorpb.FeatureSet_IMPLICIT.Enum()}}
		fields = append(fields, implicit)
	} else {
		fdp.Syntax = proto.String("proto2")
		req := field("r", 6, descriptorpb.FieldDescriptorProto_TYPE_INT32)
		req.Label = descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum()
		fields = append(fields, req)
	}
	fdp.MessageType = []*descriptorpb.DescriptorProto{{
		Name: proto.String("Msg"), Field: fields,
		NestedType: []*descriptorpb.DescriptorProto{{Name: proto.String("MyGroup"), Field: []*descriptorpb.FieldDescriptorProto{
			field("x", 1, descriptorpb.FieldDescriptorProto_TYPE_INT32),
		}}},
	}}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return &registry.Capability{Method: fd.Services().Get(0).Methods().Get(0)}
}

// TestExplicitPresenceSchemas: protojson with EmitUnpopulated (MarshalOutput)
// writes an unset field with explicit presence outside a oneof as null —
// a proto2 optional scalar, an editions scalar — and names a group by its
// message's name (TextName, "MyGroup") with UseProtoNames, and takes that
// name on input. The outputSchema admits what MarshalOutput writes, set or
// unset, and the inputSchema what DecodeJSON takes, with a proto2 required
// field required; a float at ±MaxFloat32 is written as ±3.4028235e+38,
// which both schemas admit and protojson reads back.
func TestExplicitPresenceSchemas(t *testing.T) {
	for _, edition := range []bool{false, true} {
		c := presenceFile(t, edition)
		name := string(c.Method.ParentFile().Package())
		t.Run(name, func(t *testing.T) {
			in, out := compile(t, c.InputSchema()), compile(t, c.OutputSchema())
			md := c.Method.Output()
			unset := dynamicpb.NewMessage(md)
			if !edition {
				unset.Set(md.Fields().ByName("r"), protoreflect.ValueOfInt32(1))
			}
			set := dynamicpb.NewMessage(md)
			proto.Merge(set, unset)
			set.Set(md.Fields().ByName("n"), protoreflect.ValueOfInt32(0))
			set.Set(md.Fields().ByName("s"), protoreflect.ValueOfString(""))
			set.Set(md.Fields().ByName("f"), protoreflect.ValueOfFloat32(math.MaxFloat32))
			g := set.Mutable(md.Fields().ByName("mygroup")).Message()
			g.Set(g.Descriptor().Fields().ByName("x"), protoreflect.ValueOfInt32(7))
			neg := dynamicpb.NewMessage(md)
			proto.Merge(neg, unset)
			neg.Set(md.Fields().ByName("f"), protoreflect.ValueOfFloat32(-math.MaxFloat32))
			for _, m := range []*dynamicpb.Message{unset, set, neg} {
				b, err := registry.MarshalOutput(m)
				if err != nil {
					t.Fatal(err)
				}
				if m == unset && !strings.Contains(string(b), `"n":null`) {
					t.Errorf("unset: %s: want \"n\":null", b)
				}
				if m == set && !strings.Contains(string(b), `"MyGroup":{"x":7}`) {
					t.Errorf("set: %s: want \"MyGroup\":{\"x\":7}", b)
				}
				if err := validates(out, string(b)); err != nil {
					t.Errorf("output %s does not validate against its outputSchema: %v", b, err)
				}
				// What the connectors write, protojson reads back as it was.
				back, err := c.DecodeJSON(b)
				if err != nil {
					t.Errorf("DecodeJSON(%s): %v", b, err)
				} else if !proto.Equal(back, m) {
					t.Errorf("DecodeJSON(%s) = %v, want %v", b, back, m)
				}
			}
			req := ""
			if !edition {
				req = `"r":1,`
			}
			for _, tc := range []struct {
				arg  string
				want bool
			}{
				{`{` + req + `"MyGroup":{"x":1}}`, true},
				{`{` + req + `"f":3.4028235e+38}`, true},
				{`{` + req + `"f":-3.4028235e+38}`, true},
				{`{` + req + `"f":3.41e+38}`, false},
				{`{` + req + `"n":1,"s":"a","c":"GREEN"}`, true},
				{`{"n":1}`, edition}, // proto2: r is required
			} {
				schemaErr := validates(in, tc.arg)
				_, decodeErr := c.DecodeJSON([]byte(tc.arg))
				if (schemaErr == nil) != tc.want || (decodeErr == nil) != tc.want {
					t.Errorf("%s: inputSchema: %v; DecodeJSON: %v; want accepted=%v", tc.arg, schemaErr, decodeErr, tc.want)
				}
			}
		})
	}
}

// TestAnyResolvesBackendVersion: an Any's "@type" naming a message the
// gateway has compiled in (tollgate.options.v1.McpTool) is resolved among
// the backend's own types when the backend's descriptors declare it — its
// version may differ. A field only the backend's version has is taken on
// input and written on output, not refused or dropped as unknown.
func TestAnyResolvesBackendVersion(t *testing.T) {
	files := new(protoregistry.Files)
	if err := files.RegisterFile(anypb.File_google_protobuf_any_proto); err != nil {
		t.Fatal(err)
	}
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	dup, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("anyver/options.proto"), Package: proto.String("tollgate.options.v1"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("McpTool"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("only_in_backend"), Number: proto.Int32(99), Type: str, Label: opt, JsonName: proto.String("onlyInBackend")},
		}}},
	}, files)
	if err != nil {
		t.Fatal(err)
	}
	if err := files.RegisterFile(dup); err != nil {
		t.Fatal(err)
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("anyver/svc.proto"), Package: proto.String("anyver"), Syntax: proto.String("proto3"),
		Dependency: []string{"google/protobuf/any.proto", "anyver/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Req"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("a"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), Label: opt,
				TypeName: proto.String(".google.protobuf.Any"), JsonName: proto.String("a")},
		}}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S"), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Do"), InputType: proto.String(".anyver.Req"), OutputType: proto.String(".anyver.Req"),
		}}}},
	}, files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := protoregistry.GlobalTypes.FindMessageByName("tollgate.options.v1.McpTool"); err != nil {
		t.Fatalf("the gateway has no McpTool compiled in: %v", err)
	}
	c := &registry.Capability{Method: fd.Services().Get(0).Methods().Get(0)}
	arg := `{"a":{"@type":"type.googleapis.com/tollgate.options.v1.McpTool","only_in_backend":"x"}}`
	m, err := c.DecodeJSON([]byte(arg))
	if err != nil {
		t.Fatalf("DecodeJSON(%s): %v", arg, err)
	}
	out, err := registry.MarshalOutput(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != arg {
		t.Errorf("MarshalOutput = %s, want %s", out, arg)
	}
}
