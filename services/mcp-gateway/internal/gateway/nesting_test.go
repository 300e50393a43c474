package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// TestDeepArgumentsAreTheCallersError: tools/call arguments nested deeper
// than the decoder's bound — 3,333 messages, which the backend's binary
// decoder (10,000 messages; a JSON array in a google.protobuf.Value is
// two, an object in a Struct three) always takes — or holding Anys nested
// more than 8 deep (each level's decoding re-encodes all inside it) are a
// tool error naming the field, as other bad arguments are
// (docs/reference/mcp.md, "Tools"): before, 5,000 arrays in a Value or
// 3,334 objects in a Struct reached the backend, whose "exceeded maximum
// recursion depth" was the server's unexpected error, and Anys 1,000 deep
// cost the gateway O(depth²) to decode (brk50a #1, #3).
func TestDeepArgumentsAreTheCallersError(t *testing.T) {
	f := newFleet(t)
	shapes := registrytest.Start(t, "shapes", []registrytest.Service{registrytest.Shapes("shapes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",shapes="+shapes.Addr)
	tok := f.Token("user-1", "openid")
	sid := g.initialize(t, tok)
	anys := func(n int) string {
		return strings.Repeat(`{"@type":"type.googleapis.com/google.protobuf.Any","value":`, n) + "{}" + strings.Repeat("}", n)
	}
	const tooDeep = ": nested too deep: messages may nest at most 3333 deep"
	const anysTooDeep = ": google.protobuf.Any values nested more than 8 deep"
	for _, tc := range []struct{ name, args, field, says string }{
		{"Value, 5000 arrays deep", `{"val":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, "val[0][0][0]", tooDeep},
		{"Struct, 3334 objects deep", `{"st":` + strings.Repeat(`{"a":`, 3334) + "1" + strings.Repeat("}", 3334) + `}`, "st.a.a.a", tooDeep},
		{"Anys 9 deep", `{"any":` + anys(9) + `}`, "any", anysTooDeep},
		{"Anys 1000 deep", `{"any":` + anys(1000) + `}`, "any.value.value", anysTooDeep},
	} {
		var res toolResult
		g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "shapes.echo", "arguments": json.RawMessage(tc.args)}, &res)
		if !res.IsError || len(res.Content) != 1 || !strings.HasPrefix(res.Content[0].Text, "invalid arguments: field "+tc.field) ||
			!strings.Contains(res.Content[0].Text, tc.says) {
			t.Errorf("%s: %+v, want a tool error naming %s%s", tc.name, res, tc.field, tc.says)
		}
	}
	// As deep as accepted is a call.
	var ok toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "shapes.echo", "arguments": json.RawMessage(`{"val":` + strings.Repeat("[", 3000) + strings.Repeat("]", 3000) + `,"any":` + anys(8) + `}`)}, &ok)
	if ok.IsError {
		t.Errorf("a Value 3000 arrays deep and Anys 8 deep: %+v", ok)
	}
}
