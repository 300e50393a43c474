package gateway

import (
	"strconv"
	"strings"
	"testing"
)

// A member named twice is found in params and in each object the schema
// defines in them, compared after unescaping, whatever its name, and past
// the 32 names compared on the stack; each member is read once when a name
// is escaped (eachMemberValue reads on from the decoder), so no member is
// taken for its own repeat. Free-form objects are not looked into: their
// names are the tool's (the backend's decoder refuses a repeat there).
func TestParamsRepeatedMemberPaths(t *testing.T) {
	many := func(n int, last string) string {
		var b strings.Builder
		b.WriteString(`{"name":"x"`)
		for i := range n {
			b.WriteString(`,"m` + strconv.Itoa(i) + `":1`)
		}
		return b.String() + last + `}`
	}
	cases := []struct {
		method, params, want string
	}{
		{"tools/call", `{"name":"a","n\u0061me":"b"}`, `params has "name" more than once`},
		{"tools/call", `{"n\u0061me":"a","name":"b"}`, `params has "name" more than once`},
		{"tools/call", `{"name":"a","arguments":{},"\u006eame":"b"}`, `params has "name" more than once`},
		{"tools/call", `{"\u0078":1,"x":2,"name":"a"}`, `params has "x" more than once`},
		{"tools/call", `{"name":"a","_meta":{"progressToken":1,"progressToken":2}}`, `params._meta has "progressToken" more than once`},
		{"tools/call", `{"name":"a","task":{"ttl":1,"t\u0074l":2}}`, `params.task has "ttl" more than once`},
		{"tools/call", `{"name":"a","q\"":1,"q\u0022":2}`, `params has "q\"" more than once`},
		{"tools/call", many(40, `,"m3":2`), `params has "m3" more than once`},
		{"tools/call", many(40, `,"m39":2`), `params has "m39" more than once`},
		{"tools/call", many(40, ``), ``},
		{"tools/call", `{"name":"a","arguments":{"x":1,"x":2},"_meta":{"io.example/m":{"y":1,"y":2}}}`, ``}, // free-form: the tool's
		{"tools/call", `{"name":"a","arguments":{},"_meta":{"progressToken":1},"n\u0061me2":"b","task":{"ttl":1}}`, ``},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"v"},"context":{"arguments":{},"arguments":{}}}`,
			`params.context has "arguments" more than once`},
		// in document order: the case variant comes first
		{"tools/call", `{"Name":"a","name":"b","name":"c"}`, `params has "Name", which is not "name"`},
	}
	for _, c := range cases {
		body := `{"jsonrpc":"2.0","id":1,"method":"` + c.method + `","params":` + c.params + `}`
		got := paramsCaseError(c.method, []byte(body))
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s %s: %q, want %q", c.method, c.params, got, c.want)
		}
	}
	init := []struct{ params, want string }{
		{`{"capabilities":{"sampling":{},"sampling":{}}}`, `params.capabilities has "sampling" more than once`},
		{`{"capabilities":{},"clientInfo":{"name":"n","version":"1","icons":[{"src":"a"},{"src":"a","src":"b"}]}}`, `params.clientInfo.icons[1] has "src" more than once`},
		{`{"capabilities":{"experimental":{"x":{},"x":{}}}}`, ``},
	}
	for _, c := range init {
		got := initializeParams.caseError([]byte(c.params))
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("initialize %s: %q, want %q", c.params, got, c.want)
		}
	}
}
