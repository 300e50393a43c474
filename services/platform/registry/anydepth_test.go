package registry_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/anypb"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// anyCapability is a capability whose request has one google.protobuf.Any
// field, payload (registrytest.Shapes has one: "any").
func anyCapability(t *testing.T) *registry.Capability {
	t.Helper()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("depth/any.proto"),
		Package:    proto.String("depthany"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/any.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Req"), Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("payload"), Number: proto.Int32(1), JsonName: proto.String("payload"),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(),
				TypeName: proto.String(".google.protobuf.Any"),
			}}},
			{Name: proto.String("Resp")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("S"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name: proto.String("Do"), InputType: proto.String(".depthany.Req"), OutputType: proto.String(".depthany.Resp"),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return &registry.Capability{Method: fd.Services().Get(0).Methods().Get(0)}
}

// nestedAny is a valid body whose payload is an Any holding an Any …
// depth times: 60 bytes a level, so the actions-api's default
// MAX_BODY_BYTES (64 KiB) admits about 1 090 levels, its largest (10 MiB)
// every level protojson admits.
func nestedAny(depth int) []byte {
	return []byte(`{"payload":` + strings.Repeat(`{"@type":"type.googleapis.com/google.protobuf.Any","value":`, depth) + "{}" + strings.Repeat("}", depth) + "}")
}

// nestedAnyTypeLast is nestedAny with each "@type" after the value it
// types, which protojson takes too: an Any is known as one only once its
// object is read whole.
func nestedAnyTypeLast(depth int) []byte {
	return []byte(`{"payload":` + strings.Repeat(`{"value":`, depth) + "{}" + strings.Repeat(`,"@type":"type.googleapis.com/google.protobuf.Any"}`, depth) + "}")
}

// decodeAlloc is what decode allocates decoding body, and its error.
func decodeAlloc(decode func([]byte) (proto.Message, error), body []byte) (uint64, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := decode(body)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// TestDeeplyNestedAnyIsRefusedInLinearWork: an Any nested in Anys more
// than 8 deep is refused, naming the field, before protojson decodes it:
// protojson decodes each Any level by marshalling everything inside it to
// bytes (and looks for its "@type" through the rest of the object), which
// is O(depth²) — a 60 KB body took 0.2–0.8 s of the actions-api's CPU to
// accept (brk50a #3), from an anonymous caller where the operation is
// public, and a 10 MiB one (the largest MAX_BODY_BYTES) could take
// minutes. 8 deep is accepted. The refusal's work is linear in the body,
// as for a Value (TestDeeplyNestedBadValueCostsLinearWork): measured in
// bytes allocated, not time.
func TestDeeplyNestedAnyIsRefusedInLinearWork(t *testing.T) {
	c := anyCapability(t)
	for name, decode := range map[string]func([]byte) (proto.Message, error){"DecodeBody": c.DecodeBody, "DecodeJSON": c.DecodeJSON} {
		for _, nested := range []func(int) []byte{nestedAny, nestedAnyTypeLast} {
			if _, err := decode(nested(8)); err != nil {
				t.Errorf("%s: Anys nested 8 deep: %v", name, err)
			}
			_, err := decode(nested(9))
			var f *fault.Error
			want := "invalid arguments: field payload: google.protobuf.Any values nested more than 8 deep (an Any holding an Any holding an Any…): at most 8 are accepted"
			if !errors.As(err, &f) || f.Kind != fault.KindInvalidArgument || !strings.HasPrefix(f.Msg, want) {
				t.Errorf("%s: Anys nested 9 deep: %v, want InvalidArgument %q", name, err, want)
			}
			if name == "DecodeBody" && err != nil && !strings.HasSuffix(err.Error(), "(at line 1, column 12 of the body)") {
				t.Errorf("%s: the refusal of Anys nested 9 deep gives no position: %v", name, err)
			}
			small, err := decodeAlloc(decode, nested(250))
			if err == nil || !strings.Contains(err.Error(), "field payload.value.value") {
				t.Errorf("%s: Anys nested 250 deep: %v, want refused naming the field", name, err)
			}
			large, _ := decodeAlloc(decode, nested(1000))
			if large > 8*small {
				t.Errorf("%s: refusing Any nested 1000 deep allocated %d bytes, %.1f× 250 deep's %d (linear work gives ~4×)",
					name, large, float64(large)/float64(small), small)
			}
		}
	}
}

// TestAtTypeObjectsAreNoAnyWhereNoneCanBe: a request that can hold no Any
// is not held to the bound on Anys: a Struct's objects may have "@type"
// members (JSON-LD's), nested as deep as any.
func TestAtTypeObjectsAreNoAnyWhereNoneCanBe(t *testing.T) {
	c := valueCapability(t)
	body := `{"payload":` + strings.Repeat(`{"@type":"Thing","part":`, 20) + "{}" + strings.Repeat("}", 20) + "}"
	if _, err := c.DecodeBody([]byte(body)); err != nil {
		t.Fatalf("a Value whose objects have \"@type\" members, 20 deep: %v", err)
	}
}
