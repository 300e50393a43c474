package registry_test

import (
	"context"
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
// the decoder allows (3,333 messages: TestDeepestRequestReachesTheBackend),
// as add-a-capability.md documents.
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
// is what quadratic work gives. (Both depths are within the decoder's
// bound, so the bad token is what is refused.)
func TestDeeplyNestedBadValueCostsLinearWork(t *testing.T) {
	c := valueCapability(t)
	for name, decode := range map[string]func([]byte) (proto.Message, error){"DecodeBody": c.DecodeBody, "DecodeJSON": c.DecodeJSON} {
		small := bytesAllocated(t, decode, nestedBad(800))
		large := bytesAllocated(t, decode, nestedBad(3200))
		if large > 8*small {
			t.Errorf("%s: depth 3200 allocated %d bytes, %.1f× depth 800's %d (linear work gives ~4×)",
				name, large, float64(large)/float64(small), small)
		}
	}
}

// TestDeeplyNestedBadValueIsNamedBriefly: the refusal still names the field
// (its path's start and end) and stays short however deep the value.
func TestDeeplyNestedBadValueIsNamedBriefly(t *testing.T) {
	c := valueCapability(t)
	_, err := c.DecodeBody(nestedBad(3000))
	var f *fault.Error
	if !errors.As(err, &f) || f.Kind != fault.KindInvalidArgument {
		t.Fatalf("a malformed body: %v, want InvalidArgument", err)
	}
	msg := f.Msg
	if len(msg) > 512 || !strings.HasPrefix(msg, "invalid arguments: field payload[0][0]") || !strings.Contains(msg, "…") ||
		!strings.Contains(msg, "[0][0]: ") {
		t.Fatalf("refusal of a value nested 3000 deep (%d bytes): %.600s", len(msg), msg)
	}
	// A shallow one is named in full.
	_, err = c.DecodeBody(nestedBad(3))
	if msg := err.Error(); !strings.HasPrefix(msg, "invalid arguments: field payload[0][0][0]: ") {
		t.Fatalf("refusal of a value nested 3 deep: %s", msg)
	}
}

// TestDeepestRequestReachesTheBackend: a request nested as deep as the
// decoder accepts — for every shape of nesting: a Struct's objects, a
// Value's arrays and objects, a ListValue, a recursive message as a field
// and in a list, a Struct in an Any — is one the backend's binary decoder
// takes, and the connector's reading of the backend's echo of it too; one
// level deeper is refused as the caller's InvalidArgument naming the field
// nested deepest. protojson's own limit (10,000) counts a JSON level of a
// Value or Struct once, the binary decoder's (10,000 messages) two or
// three times: a body of 5,000 arrays or 3,334 objects was accepted, and
// the backend's "exceeded maximum recursion depth" answered as a 500
// (brk50a #1).
func TestDeepestRequestReachesTheBackend(t *testing.T) {
	reg, conns := shapesRegistry(t)
	tool, _ := reg.Tool("shapes.echo")
	c := tool.Capability
	conn, _ := conns.For(c)
	for _, tc := range []struct {
		name, path string
		body       func(k int) string
	}{
		{"Struct objects", "st.a.a.a", func(k int) string {
			return `{"st":` + strings.Repeat(`{"a":`, k) + "1" + strings.Repeat("}", k) + "}"
		}},
		{"Value arrays", "val[0][0]", func(k int) string { return `{"val":` + strings.Repeat("[", k) + strings.Repeat("]", k) + "}" }},
		{"Value objects", "val.a.a", func(k int) string {
			return `{"val":` + strings.Repeat(`{"a":`, k) + "null" + strings.Repeat("}", k) + "}"
		}},
		{"ListValue", "list[0][0]", func(k int) string { return `{"list":` + strings.Repeat("[", k) + strings.Repeat("]", k) + "}" }},
		{"Node child", "root.child.child", func(k int) string {
			return `{"root":` + strings.Repeat(`{"child":`, k) + "{}" + strings.Repeat("}", k) + "}"
		}},
		{"Node children", "root.children[0].children[0]", func(k int) string {
			return `{"root":` + strings.Repeat(`{"children":[`, k) + "{}" + strings.Repeat("]}", k) + "}"
		}},
		{"Struct in an Any", "any.value.a.a", func(k int) string {
			return `{"any":{"@type":"type.googleapis.com/google.protobuf.Struct","value":` + strings.Repeat(`{"a":`, k) + "1" + strings.Repeat("}", k) + "}}"
		}},
	} {
		// The deepest accepted: acceptance only shrinks with depth.
		lo, hi := 1, 10000
		for lo < hi {
			mid := (lo + hi + 1) / 2
			if _, err := c.DecodeJSON([]byte(tc.body(mid))); err == nil {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		t.Logf("%s: accepted %d deep", tc.name, lo)
		if lo < 3000 {
			t.Errorf("%s: accepted only %d deep, want about 3,333", tc.name, lo)
		}
		in, err := c.DecodeBody([]byte(tc.body(lo)))
		if err != nil {
			t.Fatalf("%s: %d deep: DecodeJSON took it, DecodeBody %v", tc.name, lo, err)
		}
		out, err := c.Invoke(context.Background(), conn, in)
		if err != nil {
			t.Errorf("%s: %d deep, accepted, but the call: %v", tc.name, lo, err)
		} else if _, err := registry.MarshalOutput(out); err != nil {
			t.Errorf("%s: %d deep: the echo: %v", tc.name, lo, err)
		}
		for name, decode := range map[string]func([]byte) (proto.Message, error){"DecodeBody": c.DecodeBody, "DecodeJSON": c.DecodeJSON} {
			_, err := decode([]byte(tc.body(lo + 1)))
			var f *fault.Error
			if !errors.As(err, &f) || f.Kind != fault.KindInvalidArgument ||
				!strings.HasPrefix(f.Msg, "invalid arguments: field "+tc.path) || !strings.Contains(f.Msg, "…") ||
				!strings.Contains(f.Msg, ": nested too deep: messages may nest at most 3333 deep") ||
				strings.Contains(f.Msg, " of the body)") != (name == "DecodeBody") {
				t.Errorf("%s: %d deep, %s: %v, want InvalidArgument naming the field nested deepest", tc.name, lo+1, name, err)
			}
		}
	}
}
