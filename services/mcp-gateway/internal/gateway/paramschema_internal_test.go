package gateway

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// Every params member mcp-go decodes into a struct field, at any depth, is
// named in paramsSchemas: encoding/json takes a member spelt otherwise but
// for case for such a field, so a member missing from the table would be
// served misread again. Found by reflection over mcp-go's request types
// (legacyRequestTypes and InitializeRequest); members decoded into maps,
// interfaces or custom decoders (Meta reads a map by exact name) are read
// by exact name and need no entry.
func TestParamsSchemaCoversMCPGo(t *testing.T) {
	types := map[string]reflect.Type{string(mcp.MethodInitialize): reflect.TypeFor[mcp.InitializeRequest]()}
	for method, mk := range legacyRequestTypes {
		types[method] = reflect.TypeOf(mk()).Elem()
	}
	for method, rt := range types {
		s, ok := paramsSchemas[method]
		if !ok {
			t.Errorf("%s: no params schema", method)
			continue
		}
		f, ok := rt.FieldByName("Params")
		if !ok {
			continue // ping: Request's params, _meta only
		}
		for _, path := range structMembers(f.Type, "params") {
			if !s.names(strings.Split(path, ".")[1:]) {
				t.Errorf("%s: mcp-go decodes %s, which paramsSchemas does not name", method, path)
			}
		}
	}
}

// names reports whether the member path (names, outermost first) is in s.
func (s objectSchema) names(path []string) bool {
	for _, m := range s {
		if m.name == path[0] {
			return len(path) == 1 || m.members.names(path[1:])
		}
	}
	return false
}

// structMembers are the paths of the members encoding/json decodes into
// fields of t (a struct, or a pointer to or slice of one), below where.
func structMembers(t reflect.Type, where string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[mcp.Meta]() {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		name := tag
		switch {
		case tag == "-":
			continue
		case f.Anonymous && tag == "":
			out = append(out, structMembers(f.Type, where)...)
			continue
		case !f.IsExported():
			continue
		case tag == "":
			name = f.Name
		}
		out = append(out, where+"."+name)
		out = append(out, structMembers(f.Type, where+"."+name)...)
	}
	return out
}

// The check reads a request's params, nested members included, without
// allocating: it runs on every request with an id.
func TestParamsCaseErrorAllocations(t *testing.T) {
	bodies := []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"Name":1},"_meta":{"progressToken":"t","io.example/x":{"Y":1}},"task":{"ttl":5}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"v"},"context":{"arguments":{"B":"c"}}}}`,
	}
	for _, body := range bodies {
		if e := paramsCaseError(methodOf(body), []byte(body)); e != "" {
			t.Fatalf("%s: %s", body, e)
		}
	}
	if e := initializeParams.caseError([]byte(`{"protocolVersion":"2025-11-25","capabilities":{"roots":{"listChanged":true},"sampling":{},"experimental":{"X":{}}},"clientInfo":{"name":"n","version":"1","icons":[{"src":"https://x/i.png"}]}}`)); e != "" {
		t.Fatalf("initialize: %s", e)
	}
	if raceEnabled {
		return // allocation counts need a build without -race (race_on_test.go)
	}
	for _, body := range bodies {
		b, method := []byte(body), methodOf(body)
		if n := testing.AllocsPerRun(100, func() { _ = paramsCaseError(method, b) }); n != 0 {
			t.Errorf("paramsCaseError allocates %v times for %s", n, body)
		}
	}
}

func methodOf(body string) string {
	_, rest, _ := strings.Cut(body, `"method":"`)
	m, _, _ := strings.Cut(rest, `"`)
	return m
}

// Case variants nested in params are found, with their path; exact
// spellings, unknown members and free-form members (arguments,
// experimental, _meta's own keys) are not.
func TestParamsCaseVariantPaths(t *testing.T) {
	cases := []struct {
		method, params, want string
	}{
		{"tools/call", `{"name":"x","_meta":{"ProgressToken":1}}`, `params._meta has "ProgressToken", which is not "progressToken"`},
		{"tools/call", `{"name":"x","task":{"TTL":1}}`, `params.task has "TTL", which is not "ttl"`},
		{"tools/call", `{"name":"x","_META":{}}`, `params has "_META", which is not "_meta"`},
		{"completion/complete", `{"ref":{"Type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"v"}}`, `params.ref has "Type", which is not "type"`},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"p"},"argument":{"Name":"a","value":"v"}}`, `params.argument has "Name", which is not "name"`},
		{"completion/complete", `{"ref":{"type":"ref/resource","URI":"u"},"argument":{"name":"a","value":"v"}}`, `params.ref has "URI", which is not "uri"`},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"v"},"context":{"Arguments":{}}}`, `params.context has "Arguments", which is not "arguments"`},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","\u0076alue":"v"}}`, ``}, // escaped, spelt exactly
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","\u0076alue":"v","valu\u017F":1}}`, ``},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"v","\u0056ALUE":"w"}}`, `params.argument has "VALUE", which is not "value"`},
		{"resources/read", `{"uri":"u","_meta":{"progressTokens":1,"io.example/ProgressToken":2}}`, ``},
		{"tasks/get", `{"TaskID":"t"}`, `params has "TaskID", which is not "taskId"`},
	}
	for _, c := range cases {
		body := `{"jsonrpc":"2.0","id":1,"method":"` + c.method + `","params":` + c.params + `}`
		got := paramsCaseError(c.method, []byte(body))
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s %s: %q, want %q", c.method, c.params, got, c.want)
		}
	}
	init := []struct{ params, want string }{
		{`{"capabilities":{"Sampling":{}}}`, `params.capabilities has "Sampling", which is not "sampling"`},
		{`{"capabilities":{"ſampling":{}}}`, `params.capabilities has "ſampling", which is not "sampling"`},
		{`{"capabilities":{"roots":{"ListChanged":true}}}`, `params.capabilities.roots has "ListChanged", which is not "listChanged"`},
		{`{"capabilities":{"tasks":{"requests":{"elicitation":{"Create":{}}}}}}`, `params.capabilities.tasks.requests.elicitation has "Create", which is not "create"`},
		{`{"capabilities":{},"clientInfo":{"name":"n","version":"1","icons":[{"src":"s"},{"SRC":"s"}]}}`, `params.clientInfo.icons[1] has "SRC", which is not "src"`},
		{`{"capabilities":{"experimental":{"Sampling":{}},"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"n","version":"1","icons":[1,"x",{"src":"s"}]}}`, ``},
	}
	for _, c := range init {
		got := initializeParams.caseError([]byte(c.params))
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("initialize %s: %q, want %q", c.params, got, c.want)
		}
	}
}
