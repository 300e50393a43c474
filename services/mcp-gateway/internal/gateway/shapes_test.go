package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// TestShapesThroughTheGateway: a backend in CAPABILITY_BACKENDS whose
// messages hold every protobuf shape (registrytest.Shapes) becomes tools
// whose inputSchema and outputSchema (tools/list) compile as JSON Schema
// 2020-12, recursive message in $defs included; a tools/call answers with
// the proto3 JSON forms — a 64-bit integer given as a number beyond
// float64's integers (2^53 + 1) comes back exact — and structuredContent
// validates against the outputSchema, on the direct path and on the one
// through mcp-go's HandleMessage (a progress token); a refused argument
// is a tool error naming the field.
func TestShapesThroughTheGateway(t *testing.T) {
	f := newFleet(t)
	shapes := registrytest.Start(t, "shapes", []registrytest.Service{registrytest.Shapes("shapes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",shapes="+shapes.Addr)
	tok := f.Token("user-1", "openid")
	sid := g.initialize(t, tok)

	var list struct {
		Tools []struct {
			Name         string          `json:"name"`
			InputSchema  json.RawMessage `json:"inputSchema"`
			OutputSchema json.RawMessage `json:"outputSchema"`
		} `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &list)
	compile := func(name string, b []byte) *jsonschema.Schema {
		t.Helper()
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(name, doc); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return s
	}
	var in, out *jsonschema.Schema
	for _, tl := range list.Tools {
		if tl.Name == "shapes.echo" {
			if !bytes.Contains(tl.InputSchema, []byte(`"$defs":{"shapes.Node-input"`)) {
				t.Errorf("inputSchema without the recursive message's definition: %s", tl.InputSchema)
			}
			in = compile("https://mcp.test/in.json", tl.InputSchema)
			out = compile("https://mcp.test/out.json", tl.OutputSchema)
		}
	}
	if in == nil {
		t.Fatal("shapes.echo is not listed")
	}
	validate := func(s *jsonschema.Schema, b []byte) error {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return err
		}
		return s.Validate(v)
	}

	const args = `{"i64":9007199254740993,"u64":18446744073709551615,"ids":[9007199254740993],"i64_w":-9007199254740993,` +
		`"dbl":"NaN","ts":"2024-01-02T03:04:05Z","str_w":"w","by_node":{"child":{"label":"deep"}},"colors":{"a":"RED"}}`
	if err := validate(in, []byte(args)); err != nil {
		t.Fatalf("the test's arguments do not match the inputSchema: %v", err)
	}
	for i, meta := range []string{"", `,"_meta":{"progressToken":"p-shapes"}`} {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"shapes.echo","arguments":%s%s}}`, 900+i, args, meta)
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		m := r.rpc(t)
		var res struct {
			IsError           bool            `json:"isError"`
			StructuredContent json.RawMessage `json:"structuredContent"`
		}
		if m.Error != nil || json.Unmarshal(m.Result, &res) != nil || res.IsError {
			t.Fatalf("tools/call%s: %s", meta, r.Body)
		}
		for _, want := range []string{`"i64":"9007199254740993"`, `"u64":"18446744073709551615"`, `"ids":["9007199254740993"]`, `"i64_w":"-9007199254740993"`,
			`"dbl":"NaN"`, `"str_w":"w"`, `"ts":"2024-01-02T03:04:05Z"`, `"label":"deep"`} {
			if !bytes.Contains(res.StructuredContent, []byte(want)) {
				t.Errorf("tools/call%s: structuredContent %s lacks %s", meta, res.StructuredContent, want)
			}
		}
		if err := validate(out, res.StructuredContent); err != nil {
			t.Errorf("tools/call%s: structuredContent does not match the outputSchema: %v", meta, err)
		}
	}

	var bad toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "shapes.echo", "arguments": map[string]any{"root": map[string]any{"child": map[string]any{"ts": 1}}}}, &bad)
	if !bad.IsError || len(bad.Content) != 1 || bad.Content[0].Text != "invalid arguments: unknown field root.child.ts" {
		t.Errorf("an unknown nested field: %+v, want a tool error naming root.child.ts", bad)
	}

	// A refused value is named once, as the inputSchema publishes it
	// ("by_id"), never also by its JSON name ("byId", protojson's:
	// "field by_id: (line 1:9): invalid value for int64 field byId"), and
	// without a position: the arguments are a member of the request, and
	// protojson counted from the member's start.
	for _, tl := range list.Tools {
		if tl.Name == "shapes.echo" && (!bytes.Contains(tl.InputSchema, []byte(`"by_id":`)) || bytes.Contains(tl.InputSchema, []byte(`"byId"`))) {
			t.Errorf("inputSchema does not publish by_id alone: %s", tl.InputSchema)
		}
	}
	for i, tc := range []struct{ args, want string }{
		{`{"by_id":"x"}`, `invalid arguments: field by_id: want an integer, got "x"`},
		{`{"ts":"2024-01-02"}`, `invalid arguments: field ts: want an RFC 3339 date-time such as "2024-01-02T03:04:05Z", got "2024-01-02": a date alone is not one; give a time and an offset too, such as "2024-01-02T00:00:00Z"`},
		{`{"dur":90}`, `invalid arguments: field dur: want a duration in seconds with the suffix s, such as "1.5s", got 90`},
		// A FieldMask the schema's pattern refuses, which protojson would
		// take (it trims white space around the paths).
		{`{"mask":" a,b"}`, `invalid arguments: field mask: want comma-separated field paths in lowerCamelCase, such as "a.bC,d", got the path " a"`},
		{`{"root":{"nope":1}}`, `invalid arguments: unknown field root.nope`},
	} {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"shapes.echo","arguments":%s}}`, 950+i, tc.args)
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		var res toolResult
		if err := json.Unmarshal(r.rpc(t).Result, &res); err != nil || !res.IsError || len(res.Content) != 1 || res.Content[0].Text != tc.want {
			t.Errorf("arguments %s: %s, want the tool error %q", tc.args, r.Body, tc.want)
		}
	}
}
