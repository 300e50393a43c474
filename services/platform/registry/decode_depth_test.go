package registry_test

import (
	"runtime"
	"strings"
	"testing"

	"errors"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// valueCapability is a capability whose request has one
// google.protobuf.Value field, payload: any JSON value, nested as deep as
// protojson allows (10,000), as add-a-capability.md documents.
func valueCapability(t *testing.T) *registry.Capability {
	t.Helper()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("depth/value.proto"),
		Package:    proto.String("depth"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/struct.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Req"), Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("payload"), Number: proto.Int32(1), JsonName: proto.String("payload"),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(),
				TypeName: proto.String(".google.protobuf.Value"),
			}}},
			{Name: proto.String("Resp")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("S"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name: proto.String("Do"), InputType: proto.String(".depth.Req"), OutputType: proto.String(".depth.Resp"),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return &registry.Capability{Method: fd.Services().Get(0).Methods().Get(0)}
}

// nestedBad is a body whose payload is depth arrays deep with a bad token
// (a trailing comma) at the bottom: protojson decodes it down there and
// fails naming a position, which the decoder turns into the field's path.
func nestedBad(depth int) []byte {
	return []byte(`{"payload":` + strings.Repeat("[", depth) + "1,}}")
}

// bytesAllocated is what decode allocates refusing body.
func bytesAllocated(t *testing.T, decode func([]byte) (proto.Message, error), body []byte) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := decode(body); err == nil {
		t.Fatalf("a malformed body of %d bytes was accepted", len(body))
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDeeplyNestedBadValueCostsLinearWork: refusing a malformed body costs
// work linear in its size, in the actions-api (DecodeBody) and the
// mcp-gateway (DecodeJSON) alike. The error path used to build the path of
// every token it passed (O(depth) each): O(depth²), a 9 KB body nested
// 9,000 deep took most of a minute of CPU to refuse (brk45c). Measured in
// bytes allocated, not time: 4× the depth must cost well under 16×, which
// is what quadratic work gives.
func TestDeeplyNestedBadValueCostsLinearWork(t *testing.T) {
	c := valueCapability(t)
	for name, decode := range map[string]func([]byte) (proto.Message, error){"DecodeBody": c.DecodeBody, "DecodeJSON": c.DecodeJSON} {
		small := bytesAllocated(t, decode, nestedBad(1000))
		large := bytesAllocated(t, decode, nestedBad(4000))
		if large > 8*small {
			t.Errorf("%s: depth 4000 allocated %d bytes, %.1f× depth 1000's %d (linear work gives ~4×)",
				name, large, float64(large)/float64(small), small)
		}
	}
}

// TestDeeplyNestedBadValueIsNamedBriefly: the refusal still names the field
// (its path's start and end) and stays short however deep the value.
func TestDeeplyNestedBadValueIsNamedBriefly(t *testing.T) {
	c := valueCapability(t)
	_, err := c.DecodeBody(nestedBad(5000))
	var f *fault.Error
	if !errors.As(err, &f) || f.Kind != fault.KindInvalidArgument {
		t.Fatalf("a malformed body: %v, want InvalidArgument", err)
	}
	msg := f.Msg
	if len(msg) > 512 || !strings.HasPrefix(msg, "invalid arguments: field payload[0][0]") || !strings.Contains(msg, "…") ||
		!strings.Contains(msg, "[0][0]: ") {
		t.Fatalf("refusal of a value nested 5000 deep (%d bytes): %.600s", len(msg), msg)
	}
	// A shallow one is named in full.
	_, err = c.DecodeBody(nestedBad(3))
	if msg := err.Error(); !strings.HasPrefix(msg, "invalid arguments: field payload[0][0][0]: ") {
		t.Fatalf("refusal of a value nested 3 deep: %s", msg)
	}
}
