package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// shapesRegistry discovers registrytest.Shapes from a backend over TCP
// (gRPC server reflection), as the connectors do.
func shapesRegistry(t *testing.T) (*registry.Registry, registry.Conns) {
	t.Helper()
	b := registrytest.Start(t, "shapes", []registrytest.Service{registrytest.Shapes("shapes")})
	h := discover(t, b)
	reg := h.d.Refresh(context.Background())
	if _, ok := reg.Tool("shapes.echo"); !ok {
		t.Fatalf("shapes not discovered:\n%s", h.log)
	}
	return reg, h.d.Conns()
}

func validates(s *jsonschema.Schema, js string) error {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(js))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}

// How a JSON argument is taken, by the input schema and by protojson
// (DecodeJSON).
type verdict int

const (
	accepted verdict = iota // by both
	refused                 // by both
	// narrower: protojson takes it, the schema does not offer it (null
	// for unset, JSON names, enum numbers, integers as strings):
	// documented in add-a-capability.md.
	narrower
	// wider: the schema cannot say why protojson refuses it (a 64-bit
	// integer or Duration out of range, an Any of an unknown type, a
	// lone UTF-16 surrogate): documented too; DecodeJSON's error says it.
	wider
)

// TestShapesInputSchemaAgreesWithProtoJSON: for every protobuf shape
// (registrytest.Shapes) the inputSchema of the tool built from a backend's
// descriptors accepts exactly what protojson accepts, except the
// documented narrower and wider cases; every accepted argument goes to
// the backend over gRPC and comes back (the backend echoes it) as a
// result that validates against the outputSchema (JSON Schema 2020-12,
// what an MCP client validating structuredContent does), with the JSON
// form the proto3 JSON mapping gives each shape.
func TestShapesInputSchemaAgreesWithProtoJSON(t *testing.T) {
	reg, conns := shapesRegistry(t)
	tool, _ := reg.Tool("shapes.echo")
	c := tool.Capability
	in, out := compile(t, c.InputSchema()), compile(t, c.OutputSchema())
	conn, ok := conns.For(c)
	if !ok {
		t.Fatal("no connection")
	}
	for _, tc := range []struct {
		arg  string
		want verdict
		// out is a part of the echoed result (MarshalOutput) it must hold.
		out string
		// err is a part of DecodeJSON's error: the field named.
		err string
	}{
		// Wrappers are their value, or null — not {"value": …}.
		{`{"str_w":"x"}`, accepted, `"str_w":"x"`, ""},
		{`{"str_w":{"value":"x"}}`, refused, "", "string field value"},
		{`{"i64_w":5}`, accepted, `"i64_w":"5"`, ""},
		{`{"i64_w":"5"}`, accepted, `"i64_w":"5"`, ""},
		{`{"u64_w":"18446744073709551615"}`, accepted, `"u64_w":"18446744073709551615"`, ""},
		{`{"i32_w":-3,"u32_w":4294967295}`, accepted, `"i32_w":-3,"u32_w":4294967295`, ""},
		{`{"bool_w":false}`, accepted, `"bool_w":false`, ""},
		{`{"bytes_w":"-_8"}`, accepted, `"bytes_w":"+/8="`, ""},
		{`{"double_w":"NaN","float_w":1.5}`, accepted, `"double_w":"NaN","float_w":1.5`, ""},
		{`{"str_w":null}`, narrower, `"str_w":null`, ""},
		{`{"names":["a",""]}`, accepted, `"names":["a",""]`, ""},
		{`{"names":[null]}`, refused, "", "field value"},
		// Timestamp: RFC 3339, upper-case T and Z or an hh:mm offset, at
		// most nine fractional digits.
		{`{"ts":"2024-01-02T03:04:05Z"}`, accepted, `"ts":"2024-01-02T03:04:05Z"`, ""},
		{`{"ts":"2024-01-02T03:04:05.123456789+01:00"}`, accepted, `"ts":"2024-01-02T02:04:05.123456789Z"`, ""},
		{`{"ts":"2024-01-02t03:04:05z"}`, refused, "", "Timestamp"},
		{`{"ts":"2024-01-02 03:04:05Z"}`, refused, "", "Timestamp"},
		{`{"ts":"2024-01-02T03:04:05"}`, refused, "", "Timestamp"},
		{`{"ts":"2024-01-02T03:04:05+01"}`, refused, "", "Timestamp"},
		{`{"ts":"2024-01-02T03:04:05.1234567891Z"}`, refused, "", "Timestamp"},
		{`{"ts":"10000-01-01T00:00:00Z"}`, refused, "", "Timestamp"},
		{`{"ts":1704164645}`, refused, "", "field ts: syntax error (line 1:7): unexpected token 1704164645"},
		{`{"times":["2024-01-02T03:04:05Z"]}`, accepted, `"times":["2024-01-02T03:04:05Z"]`, ""},
		// Duration: seconds, "s" last.
		{`{"dur":"1.5s"}`, accepted, `"dur":"1.500s"`, ""},
		{`{"dur":"-0.25s"}`, accepted, `"dur":"-0.250s"`, ""},
		{`{"dur":"+1s"}`, accepted, `"dur":"1s"`, ""},
		{`{"dur":".5s"}`, accepted, `"dur":"0.500s"`, ""},
		{`{"dur":"1"}`, refused, "", "Duration"},
		{`{"dur":"01s"}`, refused, "", "Duration"},
		{`{"dur":"1.0000000001s"}`, refused, "", "Duration"},
		{`{"dur":"1m"}`, refused, "", "Duration"},
		{`{"dur":"315576000001s"}`, wider, "", "Duration value out of range"},
		// FieldMask: comma-joined lowerCamelCase paths.
		{`{"mask":"fooBar,a.bC"}`, accepted, `"mask":"fooBar,a.bC"`, ""},
		{`{"mask":""}`, accepted, `"mask":""`, ""},
		{`{"mask":"foo_bar"}`, refused, "", "invalid path"},
		{`{"mask":"a,,b"}`, refused, "", "invalid path"},
		{`{"mask":{"paths":["a"]}}`, refused, "", "unexpected token"},
		// Struct, Value, ListValue: JSON as is.
		{`{"st":{"a":[1,{"b":null}]}}`, accepted, `"st":{"a":[1,{"b":null}]}`, ""},
		{`{"st":[1]}`, refused, "", "unexpected token"},
		{`{"val":null}`, accepted, `"val":null`, ""},
		{`{"val":[1,"x",{"y":true}]}`, accepted, `"val":[1,"x",{"y":true}]`, ""},
		{`{"list":[1,null,"x"]}`, accepted, `"list":[1,null,"x"]`, ""},
		{`{"list":{}}`, refused, "", "unexpected token"},
		// Any: "@type" and the message's fields (a well-known type's
		// JSON as "value"), of a linked type or one of the backend's
		// (its descriptors came by reflection); another is refused.
		{`{"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s"}}`, accepted, `"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s"}`, ""},
		{`{"any":{}}`, accepted, `"any":{}`, ""},
		{`{"any":{"value":"1s"}}`, refused, "", "@type"},
		{`{"any":{"@type":"type.googleapis.com/shapes.Node","label":"x","child":{"label":"y"}}}`, accepted, `"any":{"@type":"type.googleapis.com/shapes.Node","label":"x","child":{"label":"y","child":null,"children":[]},"children":[]}`, ""},
		{`{"any":{"@type":"type.googleapis.com/shapes.Node","nope":1}}`, wider, "", `field any.nope: (line 1:51): unknown field "nope"`},
		{`{"any":{"@type":"type.googleapis.com/nope.X"}}`, wider, "", "unable to resolve"},
		// Empty and NullValue.
		{`{"empty":{}}`, accepted, `"empty":{}`, ""},
		{`{"empty":{"a":1}}`, refused, "", `unknown field "a"`},
		{`{"nothing":null}`, accepted, `"nothing":null`, ""},
		{`{"nothing":"NULL_VALUE"}`, narrower, `"nothing":null`, ""},
		// 64-bit integers: a decimal string or a number in, a string out.
		{`{"i64":5,"u64":"7","f64":8,"s64":"-9","sf64":-10}`, accepted, `"i64":"5","u64":"7","f64":"8","s64":"-9","sf64":"-10"`, ""},
		{`{"i64":"-9223372036854775808","u64":"18446744073709551615"}`, accepted, `"i64":"-9223372036854775808","u64":"18446744073709551615"`, ""},
		{`{"ids":[1,"2"]}`, accepted, `"ids":["1","2"]`, ""},
		{`{"i64":1.5}`, refused, "", "int64 field i64"},
		{`{"i64":"05"}`, refused, "", "int64 field i64"},
		{`{"i64":"+5"}`, refused, "", "int64 field i64"},
		{`{"i64":9223372036854775808}`, refused, "", "int64 field i64"},
		{`{"u64":-1}`, refused, "", "uint64 field u64"},
		{`{"u64":"-1"}`, refused, "", "uint64 field u64"},
		{`{"i64":"9223372036854775808"}`, wider, "", "int64 field i64"},
		{`{"i64":"1e3"}`, narrower, `"i64":"1000"`, ""},
		// 32-bit integers: numbers within their range.
		{`{"i32":-2147483648,"u32":4294967295,"f32":1e2,"s32":1.0}`, accepted, `"i32":-2147483648,"u32":4294967295,"f32":100,"s32":1`, ""},
		{`{"i32":3000000000}`, refused, "", "int32 field i32"},
		{`{"u32":-1}`, refused, "", "uint32 field u32"},
		{`{"i32":"5"}`, narrower, `"i32":5`, ""},
		// Floating point: numbers, or "NaN", "Infinity", "-Infinity".
		{`{"dbl":"NaN","flt":"-Infinity"}`, accepted, `"dbl":"NaN","flt":"-Infinity"`, ""},
		{`{"dbl":"Infinity","flt":0.5}`, accepted, `"dbl":"Infinity","flt":0.5`, ""},
		{`{"dbl":"nan"}`, refused, "", "double field dbl"},
		{`{"flt":1e39}`, refused, "", "float field flt"},
		{`{"dbl":1e309}`, refused, "", "double field dbl"},
		// bytes: standard or URL-safe base64, padded or not.
		{`{"raw":"+/8="}`, accepted, `"raw":"+/8="`, ""},
		{`{"raw":"-_8"}`, accepted, `"raw":"+/8="`, ""},
		{`{"raw":"!!"}`, refused, "", "bytes field raw"},
		{`{"raw":"A"}`, refused, "", "bytes field raw"},
		{`{"raw":"AA="}`, refused, "", "bytes field raw"},
		{`{"raw":"-_+/"}`, refused, "", "bytes field raw"},
		// Enums: names in; a number the enum does not name comes out as
		// a number.
		{`{"color":"RED"}`, accepted, `"color":"RED"`, ""},
		{`{"color":"red"}`, refused, "", "enum field color"},
		{`{"color":"7"}`, refused, "", "enum field color"},
		{`{"color":7}`, narrower, `"color":7`, ""},
		{`{"colors":{"a":"GREEN"}}`, accepted, `"colors":{"a":"GREEN"}`, ""},
		// oneof: at most one member; the others are absent from the result.
		{`{"by_name":"a"}`, accepted, `"by_name":"a"`, ""},
		{`{"by_node":{"label":"n"}}`, accepted, `"by_node":{"label":"n","child":null,"children":[]}`, ""},
		{`{"by_name":"a","by_id":"5"}`, refused, "", "oneof shapes.Shapes.choice is already set"},
		{`{"by_id":5,"by_node":{}}`, refused, "", "oneof shapes.Shapes.choice is already set"},
		// Maps: integer and bool keys are JSON strings.
		{`{"by_int":{"1":"a","-2":"b"},"by_bool":{"true":"t"},"nodes_by_id":{"18446744073709551615":{}}}`, accepted, `"by_int":{"-2":"b","1":"a"}`, ""},
		{`{"by_int":{"x":"a"}}`, refused, "", "int32 key"},
		{`{"by_int":{"1.0":"a"}}`, refused, "", "int32 key"},
		{`{"by_bool":{"True":"a"}}`, refused, "", "bool key"},
		{`{"by_bool":{"1":"a"}}`, refused, "", "bool key"},
		{`{"stamps":{"a":"2024-01-02T03:04:05Z"}}`, accepted, `"stamps":{"a":"2024-01-02T03:04:05Z"}`, ""},
		{`{"stamps":{"a":null}}`, refused, "", "unexpected token null"},
		// Repeated and recursive messages, at any depth.
		{`{"nodes":[{"label":"a","child":{"child":{"children":[{"label":"b"}]}}}]}`, accepted, `"label":"b","child":null,"children":[]`, ""},
		{`{"nodes":[null]}`, refused, "", "unexpected token null"},
		{`{"root":{"child":{"child":{"child":{"child":{"child":{"child":{"child":{"child":{"child":{"child":{"nope":1}}}}}}}}}}}}`, refused, "", `unknown field "nope"`},
		// proto3 optional: present when set, even to zero.
		{`{"maybe":0}`, accepted, `"maybe":0`, ""},
		// json_name, deprecated fields, JSON names of fields.
		{`{"renamed":"x","old":"y"}`, accepted, `"renamed":"x","old":"y"`, ""},
		{`{"customName":"x"}`, narrower, `"renamed":"x"`, ""},
		{`{"byName":"x"}`, narrower, `"by_name":"x"`, ""},
		{`{"name":5}`, refused, "", "string field name"},
		{`{"flag":"true"}`, refused, "", "bool field flag"},
		{`{"zzz":1}`, refused, "", `unknown field "zzz"`},
	} {
		schemaErr := validates(in, tc.arg)
		msg, decodeErr := c.DecodeJSON([]byte(tc.arg))
		schemaOK, protoOK := schemaErr == nil, decodeErr == nil
		switch tc.want {
		case accepted:
			if !schemaOK || !protoOK {
				t.Errorf("%s: want accepted; schema: %v; protojson: %v", tc.arg, schemaErr, decodeErr)
			}
		case refused:
			if schemaOK || protoOK {
				t.Errorf("%s: want refused; schema: %v; protojson: %v", tc.arg, schemaErr, decodeErr)
			}
		case narrower:
			if schemaOK || !protoOK {
				t.Errorf("%s: want refused by the schema only; schema: %v; protojson: %v", tc.arg, schemaErr, decodeErr)
			}
		case wider:
			if !schemaOK || protoOK {
				t.Errorf("%s: want refused by protojson only; schema: %v; protojson: %v", tc.arg, schemaErr, decodeErr)
			}
		}
		if decodeErr != nil {
			if tc.err == "" || !strings.Contains(decodeErr.Error(), tc.err) || !strings.HasPrefix(decodeErr.Error(), "invalid arguments: ") {
				t.Errorf("%s: error %q, want it to say %q", tc.arg, decodeErr, tc.err)
			}
			continue
		}
		res, err := c.Invoke(context.Background(), conn, msg)
		if err != nil {
			t.Fatalf("%s: %v", tc.arg, err)
		}
		js, err := registry.MarshalOutput(res)
		if err != nil {
			t.Fatalf("%s: %v", tc.arg, err)
		}
		if err := validates(out, string(js)); err != nil {
			t.Errorf("%s: result %s does not validate against the outputSchema: %v", tc.arg, js, err)
		}
		if !strings.Contains(string(js), tc.out) {
			t.Errorf("%s: result %s lacks %s", tc.arg, js, tc.out)
		}
	}
}

// TestShapesSchemaShapes: what the schemas say of the shapes besides
// accepting and refusing: a recursive message is defined once and
// referred to (its schema ends), oneof members and proto3 optional
// fields are not required in the output (MarshalOutput leaves them out
// when unset), two members of a oneof are refused with keywords every
// draft reads, descriptions and deprecation are carried, and the
// OpenAPI form (Schemas) refers to the definitions by the prefix given.
func TestShapesSchemaShapes(t *testing.T) {
	reg, _ := shapesRegistry(t)
	tool, _ := reg.Tool("shapes.echo")
	c := tool.Capability
	in, _ := json.Marshal(c.InputSchema())
	out, _ := json.Marshal(c.OutputSchema())
	if len(in) > 20000 || len(out) > 20000 {
		t.Errorf("schemas of %d and %d bytes", len(in), len(out))
	}
	// No "$schema": MCP 2025-11-25 makes 2020-12 the default dialect
	// (SEP-1613), and Ajv's draft-07 class, validating the schema first
	// as it does by default, throws on the 2020-12 meta-schema it lacks.
	if bytes.Contains(in, []byte(`"$schema"`)) || bytes.Contains(out, []byte(`"$schema"`)) {
		t.Errorf("the schemas name a $schema")
	}
	for _, want := range []string{
		`"$defs":{"shapes.Node-input":{"additionalProperties":false,"properties":{"child":{"$ref":"#/$defs/shapes.Node-input"}`,
		`"root":{"$ref":"#/$defs/shapes.Node-input"}`,
		`"old":{"deprecated":true,"type":"string"}`,
		`"ts":{"description":"When it happened.","format":"date-time"`,
		// oneof exclusivity in a form a draft-07 validator reads too.
		`"not":{"anyOf":[{"required":["by_name","by_id"]},{"required":["by_name","by_node"]},{"required":["by_id","by_node"]}]}`,
		`"str_w":{"type":"string"}`,
		`"bool_w":{"type":"boolean"}`,
	} {
		if !bytes.Contains(in, []byte(want)) {
			t.Errorf("input schema lacks %s:\n%s", want, in)
		}
	}
	for _, want := range []string{
		`"root":{"anyOf":[{"$ref":"#/$defs/shapes.Node-output"},{"type":"null"}]}`,
		`"str_w":{"type":["string","null"]}`,
		`"i64_w":{"format":"int64","pattern":"^-?(0|[1-9][0-9]*)$","type":["string","null"]}`,
		`"mask":{"pattern":`,
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output schema lacks %s:\n%s", want, out)
		}
	}
	var o struct {
		Required []string `json:"required"`
	}
	_ = json.Unmarshal(out, &o)
	for _, f := range []string{"by_name", "by_id", "by_node", "maybe"} {
		if strings.Contains(","+strings.Join(o.Required, ",")+",", ","+f+",") {
			t.Errorf("output requires %s, which MarshalOutput leaves out when unset", f)
		}
	}
	sin, sout, defs := c.Schemas("#/components/schemas/")
	b, _ := json.Marshal([]any{sin, sout})
	if !bytes.Contains(b, []byte(`{"$ref":"#/components/schemas/shapes.Node-input"}`)) || !bytes.Contains(b, []byte(`"#/components/schemas/shapes.Node-output"`)) || bytes.Contains(b, []byte(`$defs`)) {
		t.Errorf("Schemas: %s", b)
	}
	if len(defs) != 2 || defs["shapes.Node-input"] == nil || defs["shapes.Node-output"] == nil {
		t.Errorf("defs: %v", defs)
	}
}

// TestShapesQueryAndPathParameters: a GET or DELETE takes well-known
// types whose JSON is a string, number or boolean (Timestamp, Duration,
// FieldMask, wrappers) as parameters like scalars, decoded as protojson
// decodes their JSON; a value protojson refuses is refused naming the
// parameter.
func TestShapesQueryAndPathParameters(t *testing.T) {
	reg, conns := shapesRegistry(t)
	at, _ := reg.Tool("shapes.at")
	lookup, _ := reg.Tool("shapes.lookup")
	if p := at.Capability.Action.PathParams; len(p) != 1 || p[0] != "at" {
		t.Fatalf("path params %v", p)
	}
	for _, tc := range []struct {
		c     *registry.Capability
		query string
		out   string
		err   string
	}{
		{at.Capability, "at=2024-01-02T03:04:05.5%2B01:00&within=1.5s&fields=a.bC,d&note=5&limit=9223372036854775807&strict=true&weight=NaN&blob=-_8",
			`{"at":"2024-01-02T02:04:05.500Z","within":"1.500s","fields":"a.bC,d","note":"5","limit":"9223372036854775807","strict":true,"weight":"NaN","blob":"+/8="}`, ""},
		{at.Capability, "at=2024-01-02", "", `path parameter "at": (line 1:7): invalid google.protobuf.Timestamp value "2024-01-02"`},
		{at.Capability, "within=5", "", `query parameter "within"`},
		{at.Capability, "strict=yes", "", `query parameter "strict"`},
		{at.Capability, "limit=x", "", `query parameter "limit"`},
		{lookup.Capability, "id=-9223372036854775808&big=18446744073709551615&color=GREEN&ratio=-Infinity&small=1.5&count=-3&token=AAE&on=false",
			`{"id":"-9223372036854775808","big":"18446744073709551615","color":"GREEN","ratio":"-Infinity","small":1.5,"count":-3,"token":"AAE=","on":false}`, ""},
		{lookup.Capability, "id=9223372036854775808", "", `path parameter "id": (line 1:7): invalid value for int64 field id: "9223372036854775808"`},
		{lookup.Capability, "color=1", "", `query parameter "color"`},
		{lookup.Capability, "count=3000000000", "", `query parameter "count"`},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := tc.c.DecodeQuery(q)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		conn, _ := conns.For(tc.c)
		res, err := tc.c.Invoke(context.Background(), conn, msg)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := registry.MarshalOutput(res)
		if string(js) != tc.out {
			t.Errorf("%s:\n got %s\nwant %s", tc.query, js, tc.out)
		}
		if err := validates(compile(t, tc.c.OutputSchema()), string(js)); err != nil {
			t.Errorf("%s: %v", js, err)
		}
	}
}

// TestDecodeErrorsNameTheField: protojson's errors give a position and
// name the field only in some cases; a refused argument's error names the
// member at that position, at any depth, so that a model (MCP tool error)
// or a GPT (400 error_description) can tell which argument to correct.
func TestDecodeErrorsNameTheField(t *testing.T) {
	reg, _ := shapesRegistry(t)
	tool, _ := reg.Tool("shapes.echo")
	for arg, want := range map[string]string{
		`{"ts":1704164645}`:                            `invalid arguments: field ts: syntax error (line 1:7): unexpected token 1704164645`,
		`{"name":"x", "ts":"2024-01-02"}`:              `invalid arguments: field ts: (line 1:19): invalid google.protobuf.Timestamp value "2024-01-02"`,
		`{"st":[1]}`:                                   `invalid arguments: field st: syntax error (line 1:7): unexpected token [`,
		`{"nodes":[{},null]}`:                          `invalid arguments: field nodes[1]: syntax error (line 1:14): unexpected token null`,
		`{"root":{"children":[{"child":{"nope":1}}]}}`: `invalid arguments: field root.children[0].child.nope: (line 1:32): unknown field "nope"`,
		`{"stamps":{"a b":"x"}}`:                       `invalid arguments: field stamps["a b"]: (line 1:18): invalid google.protobuf.Timestamp value "x"`,
		"{\n \"dur\": \"1\"}":                          `invalid arguments: field dur: (line 2:9): invalid google.protobuf.Duration value "1"`,
		`{"by_name":"é","by_id":"5"}`:                  `invalid arguments: field by_id: (line 1:16): error parsing "by_id", oneof shapes.Shapes.choice is already set`,
		`{"mask":{"paths":["a"]}}`:                     `invalid arguments: field mask: syntax error (line 1:9): unexpected token {`,
		`[1]`:                                          `invalid arguments: syntax error (line 1:1): unexpected token [`,
		`{"name":"x"`:                                  `invalid arguments: unexpected EOF`,
		// A lone UTF-16 surrogate escape: protojson says "unexpected EOF".
		`{"name":"\ud800"}`: `invalid arguments: field name: a string holds a lone UTF-16 surrogate escape (\uD800 to \uDFFF not in a pair)`,
		`{"nodes":[{"label":"ok \ud83d\ude00"},{"label":"\udc00 x"}]}`: `invalid arguments: field nodes[1].label: a string holds a lone UTF-16 surrogate escape (\uD800 to \uDFFF not in a pair)`,
		`{"st":{"a":"\ud800\u0041"}}`:                                  `invalid arguments: field st.a: a string holds a lone UTF-16 surrogate escape (\uD800 to \uDFFF not in a pair)`,
	} {
		_, err := tool.Capability.DecodeJSON([]byte(arg))
		if err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", arg, err, want)
		}
	}
	// A pair, and an escaped backslash before "ud800", are fine.
	for _, arg := range []string{`{"name":"\ud83d\ude00"}`, `{"name":"\\ud800"}`, `{"st":{"\ud83d\ude00":"\\udc00"}}`} {
		if _, err := tool.Capability.DecodeJSON([]byte(arg)); err != nil {
			t.Errorf("%s: %v", arg, err)
		}
	}
}
