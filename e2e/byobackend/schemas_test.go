package byobackend

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestResultsMatchTheirSchemas: what the fleet's binaries publish for the
// example backend's capabilities, whose descriptors they only know by
// reflection, holds: each tool's arguments validate against its
// inputSchema and its structuredContent against its outputSchema (a JSON
// Schema 2020-12 validator, as an MCP client validating results does),
// each Actions response against the served OpenAPI document's response
// schema; an argument of the wrong type is a tool error, and a 400, that
// names the field.
func TestResultsMatchTheirSchemas(t *testing.T) {
	s := openMCP(t, signIn(t, "mcp", "openid notes.read notes.write"))
	raw, err := s.request("tools/list", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Tools []struct {
			Name         string          `json:"name"`
			InputSchema  json.RawMessage `json:"inputSchema"`
			OutputSchema json.RawMessage `json:"outputSchema"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
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
		sch, err := c.Compile(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return sch
	}
	validate := func(s *jsonschema.Schema, b []byte) error {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return err
		}
		return s.Validate(v)
	}
	in, out := map[string]*jsonschema.Schema{}, map[string]*jsonschema.Schema{}
	for _, tl := range list.Tools {
		in[tl.Name] = compile("https://mcp.test/"+tl.Name+"/in.json", tl.InputSchema)
		out[tl.Name] = compile("https://mcp.test/"+tl.Name+"/out.json", tl.OutputSchema)
	}
	if in["notes.add"] == nil || in["notes.list"] == nil {
		t.Fatalf("the example's tools are not listed: %s", raw)
	}
	for _, call := range []struct {
		tool string
		args string
	}{
		{"notes.add", `{"text":"schema check"}`},
		{"notes.list", `{}`},
	} {
		if err := validate(in[call.tool], []byte(call.args)); err != nil {
			t.Errorf("%s: arguments %s do not match the inputSchema: %v", call.tool, call.args, err)
		}
		var args map[string]any
		_ = json.Unmarshal([]byte(call.args), &args)
		r, err := s.callTool(call.tool, args)
		if err != nil || r.IsError {
			t.Fatalf("%s: %+v %v", call.tool, r, err)
		}
		if err := validate(out[call.tool], r.StructuredContent); err != nil {
			t.Errorf("%s: structuredContent %s does not match the outputSchema: %v", call.tool, r.StructuredContent, err)
		}
	}
	bad, err := s.callTool("notes.add", map[string]any{"text": 5})
	if err != nil || !bad.IsError || !strings.Contains(bad.text(), "field text: ") {
		t.Errorf("notes.add with a number for text: %+v %v, want a tool error naming the field", bad, err)
	}
	if validate(in["notes.add"], []byte(`{"text":5}`)) == nil {
		t.Error("the inputSchema accepts a number for text")
	}

	// Actions: the response matches the served document.
	tok := signIn(t, "actions", "openid notes.read notes.write")
	code, doc, err := do("GET", fleet.Origin+"/actions/openapi.json", "", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("openapi.json: %d %v", code, err)
	}
	var paths struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &paths); err != nil {
		t.Fatal(err)
	}
	d, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("https://actions.test/openapi.json", d); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct{ method, body string }{{"post", `{"text":"rest schema check"}`}, {"get", ""}} {
		ref := paths.Paths["/actions/notes"][op.method].Responses["200"].Content["application/json"].Schema.Ref
		sch, err := c.Compile("https://actions.test/openapi.json" + ref)
		if err != nil {
			t.Fatalf("%s /actions/notes: response schema %q: %v", op.method, ref, err)
		}
		var code int
		var body []byte
		if op.method == "post" {
			code, body, err = do("POST", fleet.Origin+"/actions/notes", tok, strings.NewReader(op.body), "Content-Type", "application/json")
		} else {
			code, body, err = do("GET", fleet.Origin+"/actions/notes", tok, nil)
		}
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s /actions/notes: %d %s %v", op.method, code, body, err)
		}
		if err := validate(sch, body); err != nil {
			t.Errorf("%s /actions/notes: %s does not match the document: %v", op.method, body, err)
		}
	}
	code, body, err := do("POST", fleet.Origin+"/actions/notes", tok, strings.NewReader(`{"text":["x"]}`), "Content-Type", "application/json")
	if err != nil || code != http.StatusBadRequest || !strings.Contains(string(body), "field text: ") {
		t.Errorf("POST a list for text: %d %s %v, want a 400 naming the field", code, body, err)
	}
}
