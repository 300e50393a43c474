package registry_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/tollgate/tollgate/services/platform/registry"
)

// TestOutputValidatesAgainstOutputSchemaWithFieldsUnset: a backend may
// leave a message-typed field of its response unset (a timestamp it does
// not know, a nested message), and the connectors write it as null
// (MarshalOutput emits every field). MCP clients validate
// structuredContent against the tool's outputSchema (MCP 2025-11-25,
// "Output Schema"), and GPT Actions read the same schema: an unset field
// must validate. Each capability's response is built with its lists
// holding one element whose own message fields are unset, at every
// depth, and checked with a JSON Schema 2020-12 validator.
func TestOutputValidatesAgainstOutputSchemaWithFieldsUnset(t *testing.T) {
	reg := load(t)
	checked := 0
	for _, tool := range reg.Tools() {
		c := tool.Capability
		msg := dynamicpb.NewMessage(c.Method.Output())
		withListElements(msg, 0)
		out, err := registry.MarshalOutput(msg)
		if err != nil {
			t.Fatalf("%s: %v", tool.Name, err)
		}
		sch := compile(t, c.OutputSchema())
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(doc); err != nil {
			t.Errorf("%s: output %s does not validate against its outputSchema: %v", tool.Name, out, err)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no tool checked")
	}
}

// withListElements appends one element, itself filled so, to each list of
// messages in m, leaving every singular message field unset.
func withListElements(m protoreflect.Message, depth int) {
	if depth > 4 {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.IsList() && f.Kind() == protoreflect.MessageKind {
			list := m.Mutable(f).List()
			elem := list.NewElement()
			withListElements(elem.Message(), depth+1)
			list.Append(elem)
		}
	}
}

func compile(t *testing.T, s registry.Schema) *jsonschema.Schema {
	t.Helper()
	// As clients read it: encoded, then decoded.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("output.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("output.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}
