package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// TestProto2RequiredOutputFieldUnset: a proto2 backend answers without
// its response's required field (a replica still on the version before
// the field was added). The call succeeds with the field null in
// structuredContent, which the outputSchema admits (the call failed as a
// whole: gRPC's codec refused the answer); on the direct path and through
// mcp-go's HandleMessage (a progress token). A call without the
// request's required field, arguments or none, is a tool error naming it.
func TestProto2RequiredOutputFieldUnset(t *testing.T) {
	f := newFleet(t)
	p2 := registrytest.Start(t, "p2", []registrytest.Service{registrytest.Proto2Required("ptwo")}, registrytest.PartialMessages())
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",p2="+p2.Addr)
	tok := f.Token("user-1", "openid")
	sid := g.initialize(t, tok)

	var list struct {
		Tools []struct {
			Name         string          `json:"name"`
			OutputSchema json.RawMessage `json:"outputSchema"`
		} `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &list)
	var out *jsonschema.Schema
	for _, tl := range list.Tools {
		if tl.Name == "ptwo.get" {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(tl.OutputSchema))
			if err != nil {
				t.Fatal(err)
			}
			c := jsonschema.NewCompiler()
			if err := c.AddResource("https://mcp.test/out.json", doc); err != nil {
				t.Fatal(err)
			}
			if out, err = c.Compile("https://mcp.test/out.json"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out == nil {
		t.Fatal("ptwo.get is not listed")
	}
	for i, meta := range []string{"", `,"_meta":{"progressToken":"p-two"}`} {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"ptwo.get","arguments":{"text":"x","r":1}%s}}`, 700+i, meta)
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		m := r.rpc(t)
		var res struct {
			IsError           bool            `json:"isError"`
			StructuredContent json.RawMessage `json:"structuredContent"`
		}
		if m.Error != nil || json.Unmarshal(m.Result, &res) != nil || res.IsError {
			t.Fatalf("tools/call%s: %s", meta, r.Body)
		}
		if string(res.StructuredContent) != `{"text":"x","backend":"p2","code":null}` {
			t.Errorf("tools/call%s: structuredContent %s", meta, res.StructuredContent)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(res.StructuredContent))
		if err != nil {
			t.Fatal(err)
		}
		if err := out.Validate(v); err != nil {
			t.Errorf("tools/call%s: structuredContent does not match the outputSchema: %v", meta, err)
		}
	}

	// Without r, in arguments or with none at all (protojson checks only
	// what it decodes: no arguments reached the backend without r).
	for _, params := range []map[string]any{{"name": "ptwo.get", "arguments": map[string]any{"text": "x"}}, {"name": "ptwo.get"}} {
		var bad toolResult
		g.rpc(t, tok, sid, "tools/call", params, &bad)
		if !bad.IsError || len(bad.Content) != 1 || !strings.Contains(bad.Content[0].Text, "required field r not set") {
			t.Errorf("%v: %+v, want a tool error naming r", params, bad)
		}
	}
	if n := len(p2.Calls()); n != 2 {
		t.Errorf("the backend had %d calls, want 2", n)
	}
}
