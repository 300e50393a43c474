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
		{`{"str_w":{"value":"x"}}`, refused, "", "field str_w: want a string, got an object"},
		{`{"i64_w":5}`, accepted, `"i64_w":"5"`, ""},
		{`{"i64_w":"5"}`, accepted, `"i64_w":"5"`, ""},
		{`{"u64_w":"18446744073709551615"}`, accepted, `"u64_w":"18446744073709551615"`, ""},
		{`{"i32_w":-3,"u32_w":4294967295}`, accepted, `"i32_w":-3,"u32_w":4294967295`, ""},
		{`{"bool_w":false}`, accepted, `"bool_w":false`, ""},
		{`{"bytes_w":"-_8"}`, accepted, `"bytes_w":"+/8="`, ""},
		{`{"double_w":"NaN","float_w":1.5}`, accepted, `"double_w":"NaN","float_w":1.5`, ""},
		{`{"str_w":null}`, narrower, `"str_w":null`, ""},
		{`{"names":["a",""]}`, accepted, `"names":["a",""]`, ""},
		{`{"names":[null]}`, refused, "", "field names[0]: want a string, got null"},
		// Timestamp: RFC 3339, upper-case T and Z or an hh:mm offset, at
		// most nine fractional digits.
		{`{"ts":"2024-01-02T03:04:05Z"}`, accepted, `"ts":"2024-01-02T03:04:05Z"`, ""},
		{`{"ts":"2024-01-02T03:04:05.123456789+01:00"}`, accepted, `"ts":"2024-01-02T02:04:05.123456789Z"`, ""},
		{`{"ts":"2024-01-02t03:04:05z"}`, refused, "", "field ts: want an RFC 3339 date-time"},
		{`{"ts":"2024-01-02 03:04:05Z"}`, refused, "", "field ts: want an RFC 3339 date-time"},
		{`{"ts":"2024-01-02T03:04:05"}`, refused, "", "field ts: want an RFC 3339 date-time"},
		{`{"ts":"2024-01-02T03:04:05+01"}`, refused, "", "field ts: want an RFC 3339 date-time"},
		{`{"ts":"2024-01-02T03:04:05.1234567891Z"}`, refused, "", "field ts: want an RFC 3339 date-time"},
		{`{"ts":"10000-01-01T00:00:00Z"}`, refused, "", "field ts: want an RFC 3339 date-time"},
		// The Timestamp's range, years 0001 to 9999, is the pattern's too
		// (it admitted 0000: brk50a finding 5); an offset that carries the
		// first day out of it is left to the 400 (docs/reference/actions.md).
		{`{"ts":"0001-01-01T00:00:00Z"}`, accepted, `"ts":"0001-01-01T00:00:00Z"`, ""},
		{`{"ts":"0000-12-31T23:59:59Z"}`, refused, "", "field ts: want an RFC 3339 date-time from 0001-01-01T00:00:00Z"},
		{`{"ts":"2024-13-01T00:00:00Z"}`, refused, "", "field ts: want an RFC 3339 date-time"},
		// Go's time parser, protojson's, takes a one-digit hour and
		// offsets to 24:60; the pattern does not, nor does the API
		// (brk50b).
		{`{"ts":"2024-01-02T3:04:05Z"}`, refused, "", `field ts: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02T3:04:05Z"`},
		{`{"ts":"2024-01-02T\u0033:04:05.5Z"}`, refused, "", `field ts: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02T3:04:05.5Z"`},
		{`{"times":["2024-01-02T03:04:05-24:00"]}`, refused, "", `field times[0]: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02T03:04:05-24:00"`},
		{`{"stamps":{"k":"2024-01-02T03:04:05+00:60"}}`, refused, "", `field stamps.k: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02T03:04:05+00:60"`},
		{`{"ts":"0001-01-01T00:30:00+01:00"}`, wider, "", "field ts: want an RFC 3339 date-time from 0001-01-01T00:00:00Z"},
		{`{"ts":1704164645}`, refused, "", `field ts: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got 1704164645`},
		{`{"ts":"2024-01-02"}`, refused, "", `field ts: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02": a date alone is not one; give a time and an offset too, such as "2024-01-02T00:00:00Z"`},
		{`{"times":[{}]}`, refused, "", `field times[0]: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got an object`},
		{`{"times":"2024-01-02T03:04:05Z"}`, refused, "", `field times: syntax error: unexpected token "2024-01-02T03:04:05Z"`},
		{`{"times":["2024-01-02T03:04:05Z"]}`, accepted, `"times":["2024-01-02T03:04:05Z"]`, ""},
		// Duration: seconds, "s" last.
		{`{"dur":"1.5s"}`, accepted, `"dur":"1.500s"`, ""},
		{`{"dur":"-0.25s"}`, accepted, `"dur":"-0.250s"`, ""},
		{`{"dur":"+1s"}`, accepted, `"dur":"1s"`, ""},
		{`{"dur":".5s"}`, accepted, `"dur":"0.500s"`, ""},
		{`{"dur":"1"}`, refused, "", "field dur: want a duration in seconds"},
		{`{"dur":"01s"}`, refused, "", "field dur: want a duration in seconds"},
		{`{"dur":"1.0000000001s"}`, refused, "", "field dur: want a duration in seconds"},
		{`{"dur":"1m"}`, refused, "", "field dur: want a duration in seconds"},
		{`{"dur":90}`, refused, "", `field dur: want a duration in seconds with the suffix s, such as "1.5s", got 90`},
		// The Duration's range, ±315576000000 s, is the pattern's too
		// (it admitted 12 digits: brk50a finding 5).
		{`{"dur":"315576000000.999999999s"}`, accepted, `"dur":"315576000000.999999999s"`, ""},
		{`{"dur":"315576000001s"}`, refused, "", `field dur: want a duration from -315576000000s to 315576000000s, got "315576000001s"`},
		{`{"dur":"-999999999999s"}`, refused, "", `field dur: want a duration from -315576000000s to 315576000000s, got "-999999999999s"`},
		// FieldMask: comma-joined lowerCamelCase paths.
		{`{"mask":"fooBar,a.bC"}`, accepted, `"mask":"fooBar,a.bC"`, ""},
		{`{"mask":""}`, accepted, `"mask":""`, ""},
		{`{"mask":"foo_bar"}`, refused, "", `field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got the path "foo_bar" (in lowerCamelCase: "fooBar")`},
		{`{"mask":"a,,b"}`, refused, "", `field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got an empty path`},
		{`{"mask":"a b"}`, refused, "", `field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got the path "a b"`},
		// protojson trims white space around the whole value; the schema
		// (the JSON mapping's form) does not, and neither does DecodeJSON.
		{`{"mask":" a,b "}`, refused, "", `field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got the path " a"`},
		{`{"mask":"a\n"}`, refused, "", `field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got the path "a\n"`},
		{`{"mask":" "}`, refused, "", `field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got " " (only white space; "" is the empty mask)`},
		{`{"mask":{"paths":["a"]}}`, refused, "", `field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got an object`},
		{`{"mask":["a","b"]}`, refused, "", `field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got an array`},
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
		{`{"any":{"@type":"type.googleapis.com/shapes.Node","nope":1}}`, wider, "", "invalid arguments: unknown field any.nope"},
		{`{"any":{"@type":"type.googleapis.com/nope.X"}}`, wider, "", "unable to resolve"},
		// Empty and NullValue.
		{`{"empty":{}}`, accepted, `"empty":{}`, ""},
		{`{"empty":{"a":1}}`, refused, "", "unknown field empty.a"},
		{`{"nothing":null}`, accepted, `"nothing":null`, ""},
		{`{"nothing":"NULL_VALUE"}`, narrower, `"nothing":null`, ""},
		// 64-bit integers: a decimal string or a number in, a string out.
		{`{"i64":5,"u64":"7","f64":8,"s64":"-9","sf64":-10}`, accepted, `"i64":"5","u64":"7","f64":"8","s64":"-9","sf64":"-10"`, ""},
		{`{"i64":"-9223372036854775808","u64":"18446744073709551615"}`, accepted, `"i64":"-9223372036854775808","u64":"18446744073709551615"`, ""},
		{`{"ids":[1,"2"]}`, accepted, `"ids":["1","2"]`, ""},
		{`{"i64":1.5}`, refused, "", "field i64: want an integer, got 1.5"},
		{`{"i64":"05"}`, refused, "", `field i64: want an integer, got "05"`},
		{`{"i64":"+5"}`, refused, "", `field i64: want an integer, got "+5"`},
		{`{"i64":9223372036854775808}`, refused, "", "field i64: want an integer from -9223372036854775808 to 9223372036854775807, got 9223372036854775808"},
		{`{"u64":-1}`, refused, "", "field u64: want an integer from 0 to 18446744073709551615, got -1"},
		{`{"u64":"-1"}`, refused, "", `field u64: want an integer from 0 to 18446744073709551615, got "-1"`},
		{`{"i64":"9223372036854775808"}`, wider, "", `field i64: want an integer from -9223372036854775808 to 9223372036854775807, got "9223372036854775808"`},
		// A string is decimal digits, as the pattern says: protojson
		// also took any integral JSON number in one ("1e3", "1.0").
		{`{"i64":"1e3"}`, refused, "", `field i64: want an integer as a JSON number, or as a string of decimal digits such as "-5", got "1e3"`},
		{`{"ids":["2","1.0"]}`, refused, "", `field ids[1]: want an integer`},
		{`{"u64":"-0"}`, refused, "", `field u64: want a non-negative integer as a JSON number, or as a string of decimal digits such as "1000", got "-0"`},
		{`{"i64":1e3}`, accepted, `"i64":"1000"`, ""},
		// 32-bit integers: numbers within their range.
		{`{"i32":-2147483648,"u32":4294967295,"f32":1e2,"s32":1.0}`, accepted, `"i32":-2147483648,"u32":4294967295,"f32":100,"s32":1`, ""},
		{`{"i32":3000000000}`, refused, "", "field i32: want an integer from -2147483648 to 2147483647, got 3000000000"},
		{`{"u32":-1}`, refused, "", "field u32: want an integer from 0 to 4294967295, got -1"},
		{`{"i32":"5"}`, narrower, `"i32":5`, ""},
		{`{"i32":"1e3"}`, refused, "", `field i32: want an integer as a JSON number, or as a string of decimal digits such as "-5", got "1e3"`},
		{`{"u32":"\u0031.0"}`, refused, "", `field u32: want a non-negative integer`},
		// Floating point: numbers, or "NaN", "Infinity", "-Infinity".
		{`{"dbl":"NaN","flt":"-Infinity"}`, accepted, `"dbl":"NaN","flt":"-Infinity"`, ""},
		{`{"dbl":"Infinity","flt":0.5}`, accepted, `"dbl":"Infinity","flt":0.5`, ""},
		{`{"dbl":"nan"}`, refused, "", `field dbl: want a number, NaN, Infinity or -Infinity, got "nan"`},
		{`{"flt":1e39}`, refused, "", "field flt: want a number from -3.4028235e+38 to 3.4028235e+38, got 1e39"},
		{`{"dbl":1e309}`, refused, "", "field dbl: want a number from -1.7976931348623157e+308 to 1.7976931348623157e+308, got 1e309"},
		// bytes: standard or URL-safe base64, padded or not.
		{`{"raw":"+/8="}`, accepted, `"raw":"+/8="`, ""},
		{`{"raw":"-_8"}`, accepted, `"raw":"+/8="`, ""},
		{`{"raw":"!!"}`, refused, "", `field raw: want base64 (standard or URL-safe alphabet, padded or not), got "!!"`},
		{`{"raw":"A"}`, refused, "", `field raw: want base64`},
		{`{"raw":"AA="}`, refused, "", `field raw: want base64`},
		{`{"raw":"-_+/"}`, refused, "", `field raw: want base64`},
		// Enums: names in; a number the enum does not name comes out as
		// a number.
		{`{"color":"RED"}`, accepted, `"color":"RED"`, ""},
		{`{"color":"red"}`, refused, "", `field color: want one of "COLOR_UNSPECIFIED", "RED", "GREEN", got "red"`},
		{`{"color":"7"}`, refused, "", `field color: want one of "COLOR_UNSPECIFIED", "RED", "GREEN", got "7"`},
		{`{"color":7}`, narrower, `"color":7`, ""},
		{`{"colors":{"a":"GREEN"}}`, accepted, `"colors":{"a":"GREEN"}`, ""},
		// oneof: at most one member; the others are absent from the result.
		{`{"by_name":"a"}`, accepted, `"by_name":"a"`, ""},
		{`{"by_node":{"label":"n"}}`, accepted, `"by_node":{"label":"n","child":null,"children":[]}`, ""},
		{`{"by_name":"a","by_id":"5"}`, refused, "", "field by_id: another member of the oneof choice (by_name, by_id, by_node) is already given; give one"},
		{`{"by_id":5,"by_node":{}}`, refused, "", "field by_node: another member of the oneof choice (by_name, by_id, by_node) is already given; give one"},
		// Maps: integer and bool keys are JSON strings.
		{`{"by_int":{"1":"a","-2":"b"},"by_bool":{"true":"t"},"nodes_by_id":{"18446744073709551615":{}}}`, accepted, `"by_int":{"-2":"b","1":"a"}`, ""},
		{`{"by_int":{"x":"a"}}`, refused, "", "int32 key"},
		{`{"by_int":{"1.0":"a"}}`, refused, "", "int32 key"},
		{`{"by_bool":{"True":"a"}}`, refused, "", "bool key"},
		{`{"by_bool":{"1":"a"}}`, refused, "", "bool key"},
		{`{"stamps":{"a":"2024-01-02T03:04:05Z"}}`, accepted, `"stamps":{"a":"2024-01-02T03:04:05Z"}`, ""},
		{`{"stamps":{"a":null}}`, refused, "", `field stamps.a: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got null`},
		// Repeated and recursive messages, at any depth.
		{`{"nodes":[{"label":"a","child":{"child":{"children":[{"label":"b"}]}}}]}`, accepted, `"label":"b","child":null,"children":[]`, ""},
		{`{"nodes":[null]}`, refused, "", "unexpected token null"},
		{`{"root":{"child":{"child":{"child":{"child":{"child":{"child":{"child":{"child":{"child":{"child":{"nope":1}}}}}}}}}}}}`, refused, "", "unknown field root.child.child.child.child.child.child.child.child.child.child.nope"},
		// proto3 optional: present when set, even to zero.
		{`{"maybe":0}`, accepted, `"maybe":0`, ""},
		// json_name, deprecated fields, JSON names of fields.
		{`{"renamed":"x","old":"y"}`, accepted, `"renamed":"x","old":"y"`, ""},
		{`{"customName":"x"}`, narrower, `"renamed":"x"`, ""},
		{`{"byName":"x"}`, narrower, `"by_name":"x"`, ""},
		{`{"name":5}`, refused, "", "field name: want a string, got 5"},
		{`{"flag":"true"}`, refused, "", `field flag: want true or false, got "true"`},
		{`{"zzz":1}`, refused, "", "invalid arguments: unknown field zzz"},
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
	echo, _ := reg.Tool("shapes.echo")
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
		{at.Capability, "at=2024-01-02", "", `path parameter "at": want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02": a date alone is not one; give a time and an offset too, such as "2024-01-02T00:00:00Z"`},
		// brk50b: protojson (Go's time parser) takes a one-digit hour and
		// offsets to 24:60; the document's pattern refuses them, and so
		// does a path or query parameter.
		{at.Capability, "at=2024-01-02T3:04:05Z", "", `path parameter "at": want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02T3:04:05Z"`},
		{at.Capability, "at=2024-01-02T03:04:05%2B24:00", "", `path parameter "at": want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02T03:04:05+24:00"`},
		{echo.Capability, "ts=2024-01-02T3:04:05Z", "", `query parameter "ts": want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02T3:04:05Z"`},
		{echo.Capability, "ts=2024-01-02T03:04:05-00:60", "", `query parameter "ts": want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02T03:04:05-00:60"`},
		{echo.Capability, "ts=0000-01-01T00:00:00Z", "", `query parameter "ts": want an RFC 3339 date-time from 0001-01-01T00:00:00Z`},
		{at.Capability, "fields=a_b", "", `query parameter "fields": want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got "a_b"`},
		{at.Capability, "fields=%20a,b", "", `query parameter "fields": want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got " a,b"`},
		{at.Capability, "fields=%09", "", `query parameter "fields": want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got "\t"`},
		{at.Capability, "within=5", "", `query parameter "within"`},
		{at.Capability, "strict=yes", "", `query parameter "strict"`},
		{at.Capability, "limit=x", "", `query parameter "limit"`},
		{lookup.Capability, "id=-9223372036854775808&big=18446744073709551615&color=GREEN&ratio=-Infinity&small=1.5&count=-3&token=AAE&on=false",
			`{"id":"-9223372036854775808","big":"18446744073709551615","color":"GREEN","ratio":"-Infinity","small":1.5,"count":-3,"token":"AAE=","on":false}`, ""},
		{lookup.Capability, "id=9223372036854775808", "", `path parameter "id": want an integer from -9223372036854775808 to 9223372036854775807, got "9223372036854775808"`},
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
// or a GPT (400 error_description) can tell which argument to correct. It
// names it once, as the input schema does (protojson's own text named it
// again by its JSON name: "field i64: … invalid value for int64 field
// i64"), says what was wanted, and gives no position: MCP arguments are a
// member of the caller's JSON-RPC message, and "(line 1:7)" was counted
// from the member's start, not the message's.
func TestDecodeErrorsNameTheField(t *testing.T) {
	reg, _ := shapesRegistry(t)
	tool, _ := reg.Tool("shapes.echo")
	for arg, want := range map[string]string{
		`{"ts":1704164645}`:                            `invalid arguments: field ts: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got 1704164645`,
		`{"name":"x", "ts":"2024-01-02"}`:              `invalid arguments: field ts: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02": a date alone is not one; give a time and an offset too, such as "2024-01-02T00:00:00Z"`,
		`{"st":[1]}`:                                   `invalid arguments: field st: syntax error: unexpected token [`,
		`{"nodes":[{},null]}`:                          `invalid arguments: field nodes[1]: syntax error: unexpected token null`,
		`{"root":{"children":[{"child":{"nope":1}}]}}`: `invalid arguments: unknown field root.children[0].child.nope`,
		`{"stamps":{"a b":"x"}}`:                       `invalid arguments: field stamps["a b"]: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "x"`,
		"{\n \"dur\": \"1\"}":                          `invalid arguments: field dur: want a duration in seconds with the suffix s, such as "1.5s", got "1"`,
		`{"by_name":"é","by_id":"5"}`:                  `invalid arguments: field by_id: another member of the oneof choice (by_name, by_id, by_node) is already given; give one`,
		`{"mask":{"paths":["a"]}}`:                     `invalid arguments: field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got an object`,
		`{"stamps":{"a b":null}}`:                      `invalid arguments: field stamps["a b"]: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got null`,
		`[1]`:                                          `invalid arguments: syntax error: unexpected token [`,
		`{"name":"x"`:                                  `invalid arguments: unexpected EOF`,
		`{"i64":"x"}`:                                  `invalid arguments: field i64: want an integer, got "x"`,
		`{"nodes":[{"label":7}]}`:                      `invalid arguments: field nodes[0].label: want a string, got 7`,
		`{"colors":{"a":"BLUE"}}`:                      `invalid arguments: field colors.a: want one of "COLOR_UNSPECIFIED", "RED", "GREEN", got "BLUE"`,
		`{"name":"a","name":"b"}`:                      `invalid arguments: duplicate field name`,
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
	// A POST body (the actions-api) is the caller's own text: its
	// refusal says where in it, as protojson counted (line, and column in
	// characters).
	for body, want := range map[string]string{
		`{"name":"x", "ts":"2024-01-02"}`: `invalid arguments: field ts: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02": a date alone is not one; give a time and an offset too, such as "2024-01-02T00:00:00Z" (at line 1, column 19 of the body)`,
		"{\n \"dur\": \"1\"}":             `invalid arguments: field dur: want a duration in seconds with the suffix s, such as "1.5s", got "1" (at line 2, column 9 of the body)`,
		`{"é":1, "i64":"x"}`:              `invalid arguments: unknown field ["é"] (at line 1, column 2 of the body)`,
		`[1]`:                             `invalid arguments: syntax error: unexpected token [ (at line 1, column 1 of the body)`,
	} {
		_, err := tool.Capability.DecodeBody([]byte(body))
		if err == nil || err.Error() != want {
			t.Errorf("body %s:\n got %v\nwant %s", body, err, want)
		}
	}
	// A pair, and an escaped backslash before "ud800", are fine.
	for _, arg := range []string{`{"name":"\ud83d\ude00"}`, `{"name":"\\ud800"}`, `{"st":{"\ud83d\ude00":"\\udc00"}}`} {
		if _, err := tool.Capability.DecodeJSON([]byte(arg)); err != nil {
			t.Errorf("%s: %v", arg, err)
		}
	}
}
