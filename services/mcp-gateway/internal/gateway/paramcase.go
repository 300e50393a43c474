package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// objectSchema is what the MCP schema defines of a JSON object in a
// request's params: its members, as the schema spells them. Members it does
// not name are allowed (the schema's objects are open), so only a member
// spelt otherwise but for letter case is refused (paramsCaseError).
type objectSchema []memberSchema

// memberSchema is one member an objectSchema defines.
type memberSchema struct {
	// name is the member as the schema spells it; lower is name in lower
	// case, what foldsTo compares a key with.
	name, lower string
	// members are the members of the member's value the schema names,
	// checked in turn: of the object, or of each object of the array (an
	// icons list). Nil for a value whose members are free-form (arguments,
	// experimental) or that is no object.
	members objectSchema
}

// member is the memberSchema for name, with the members of its value.
func member(name string, members ...memberSchema) memberSchema {
	return memberSchema{name: name, lower: strings.ToLower(name), members: members}
}

// The request params of the methods the gateway serves, member by member,
// from the MCP schema's types (schema/2025-11-25/schema.ts, the version the
// gateway negotiates; the older versions' members are a subset of them),
// plus the members mcp-go decodes beyond the schema (marked): what a
// decoder that ignores letter case, as encoding/json does and so mcp-go,
// takes a variant for. TestParamsSchemaCoversMCPGo checks that every
// member mcp-go decodes into a struct field is named here.
var (
	// RequestParams: _meta, with the one member MCP defines in it.
	requestMeta = member("_meta", member("progressToken"))
	// PaginatedRequestParams.
	paginatedParams = objectSchema{requestMeta, member("cursor")}
	// ResourceRequestParams: resources/subscribe, unsubscribe.
	resourceParams = objectSchema{requestMeta, member("uri")}
	// ReadResourceRequestParams, and mcp-go's arguments and multi-round-trip
	// members (MultiRoundTripParams, the draft after 2025-11-25).
	readResourceParams = objectSchema{requestMeta, member("uri"), member("arguments"), member("inputResponses"), member("requestState")}
	// tasks/get, tasks/result, tasks/cancel: params {taskId}.
	taskParams = objectSchema{requestMeta, member("taskId")}
	// Implementation (BaseMetadata, Icons): initialize's clientInfo.
	implementation = objectSchema{member("name"), member("title"), member("version"), member("description"), member("websiteUrl"),
		member("icons", member("src"), member("mimeType"), member("sizes"), member("theme"))}
	// ClientCapabilities.
	clientCapabilities = objectSchema{
		member("experimental"),
		member("extensions"), // mcp-go's ClientCapabilities, beyond the schema
		member("roots", member("listChanged")),
		member("sampling", member("context"), member("tools")),
		member("elicitation", member("form"), member("url")),
		member("tasks", member("list"), member("cancel"), member("requests",
			member("sampling", member("createMessage")),
			member("elicitation", member("create")),
			member("tools", member("call")), // mcp-go's TaskRequestsCapability, beyond ClientCapabilities
		)),
	}
	// InitializeRequestParams.
	initializeParams = objectSchema{requestMeta, member("protocolVersion"), member("capabilities", clientCapabilities...),
		member("clientInfo", implementation...)}
)

// paramsSchemas are the params of each request the gateway serves, by
// method (MCP schema: <Method>RequestParams). initialize's are checked by
// initializeParamsError, the others' by paramsCaseError.
var paramsSchemas = map[string]objectSchema{
	string(mcp.MethodInitialize):             initializeParams,
	string(mcp.MethodPing):                   {requestMeta},
	string(mcp.MethodSetLogLevel):            {requestMeta, member("level")},
	string(mcp.MethodResourcesList):          paginatedParams,
	string(mcp.MethodResourcesTemplatesList): paginatedParams,
	string(mcp.MethodResourcesRead):          readResourceParams,
	string(mcp.MethodResourcesSubscribe):     resourceParams,
	string(mcp.MethodResourcesUnsubscribe):   resourceParams,
	string(mcp.MethodPromptsList):            paginatedParams,
	string(mcp.MethodPromptsGet):             {requestMeta, member("name"), member("arguments"), member("inputResponses"), member("requestState")},
	string(mcp.MethodToolsList):              paginatedParams,
	// CallToolRequestParams (TaskAugmentedRequestParams: task, TaskMetadata),
	// and mcp-go's multi-round-trip members.
	string(mcp.MethodToolsCall): {requestMeta, member("name"), member("arguments"), member("task", member("ttl")),
		member("inputResponses"), member("requestState")},
	string(mcp.MethodTasksGet):    taskParams,
	string(mcp.MethodTasksList):   paginatedParams,
	string(mcp.MethodTasksResult): taskParams,
	string(mcp.MethodTasksCancel): taskParams,
	// CompleteRequestParams: ref is a PromptReference (type, name, title)
	// or a ResourceTemplateReference (type, uri).
	string(mcp.MethodCompletionComplete): {requestMeta,
		member("ref", member("type"), member("name"), member("title"), member("uri")),
		member("argument", member("name"), member("value")),
		member("context", member("arguments"))},
}

// lookup returns the index in s of the member named key (its name
// unescaped), and whether key spells it exactly; -1 when key is neither
// that member nor one encoding/json takes for it (letter case, ſ/K).
func (s objectSchema) lookup(key []byte) (int, bool) {
	for i := range s {
		if string(key) == s[i].name {
			return i, true
		}
	}
	for i := range s {
		if foldsTo(key, s[i].lower) {
			return i, false
		}
	}
	return -1, false
}

// eachMember calls f, until f returns false, for each member of the JSON
// object obj that s names or that encoding/json takes for one it names:
// i is the member's index in s, exact whether key spells it as s does,
// and v the member's raw value. It is the one reading of member names both
// objectSchema.problem and initializeParamsError make, in a single pass
// without decoding (eachMemberValue).
func (s objectSchema) eachMember(obj []byte, f func(i int, exact bool, key, v []byte) bool) {
	eachMemberValue(bytes.TrimSpace(obj), func(key, v []byte) bool {
		if i, exact := s.lookup(key); i >= 0 {
			return f(i, exact, key, v)
		}
		return true
	})
}

// memberNames is the set of the member names seen so far in one JSON
// object, for objectSchema.problem: names are compared in place, on the
// stack, up to len(small) of them (every object MCP defines has fewer
// members), and through a map beyond, so an object of many members costs
// no more than a pass.
type memberNames struct {
	n     int
	small [32][]byte
	more  map[string]struct{}
}

// add records the member name key (unescaped) and reports whether the
// object named it already.
func (m *memberNames) add(key []byte) bool {
	if m.n < len(m.small) {
		for _, k := range m.small[:m.n] {
			if string(k) == string(key) {
				return true
			}
		}
		m.small[m.n] = key
		m.n++
		return false
	}
	if m.more == nil {
		m.more = make(map[string]struct{}, 2*len(m.small))
		for _, k := range m.small {
			m.more[string(k)] = struct{}{}
		}
	}
	if _, ok := m.more[string(key)]; ok {
		return true
	}
	m.more[string(key)] = struct{}{}
	return false
}

// paramsProblem is the first member objectSchema.problem refuses: key as
// sent (unescaped), where the path of the object holding it below the
// object checked ("" for that object itself, ".argument",
// ".clientInfo.icons[0]"); repeated when the object names key more than
// once, else key is a case variant of name, the member as the schema
// spells it. key is nil for none.
type paramsProblem struct {
	where    string
	key      []byte
	name     string
	repeated bool
}

// problem finds the first member, in the order sent, of the JSON object
// obj or of an object the schema names in it at any depth, that is either
// named more than once in its object (after unescaping: "n\u0061me" is
// "name"), whatever the name, or spelt otherwise but for letter case (or
// the ſ/K folding) than s spells it. Free-form objects (a member with no
// members in s: arguments, experimental, the values of _meta's keys) are
// not looked into. It allocates only for what it finds, and for an object
// of more than 32 members.
func (s objectSchema) problem(obj []byte) paramsProblem {
	var p paramsProblem
	var seen memberNames
	eachMemberValue(bytes.TrimSpace(obj), func(k, v []byte) bool {
		if seen.add(k) {
			p = paramsProblem{key: k, repeated: true}
			return false
		}
		i, exact := s.lookup(k)
		if i < 0 {
			return true
		}
		m := &s[i]
		if !exact {
			p = paramsProblem{key: k, name: m.name}
			return false
		}
		if m.members == nil {
			return true
		}
		switch kind(v) {
		case '{':
			if q := m.members.problem(v); q.key != nil {
				p, p.where = q, "."+m.name+q.where
			}
		case '[':
			eachElement(v, func(j int, e []byte) bool {
				if kind(e) != '{' {
					return true
				}
				if q := m.members.problem(e); q.key != nil {
					p, p.where = q, "."+m.name+"["+strconv.Itoa(j)+"]"+q.where
				}
				return p.key == nil
			})
		}
		return p.key == nil
	})
	return p
}

// message is the -32602 message for p, found in params; "" for none.
func (p paramsProblem) message() string {
	switch {
	case p.key == nil:
		return ""
	case p.repeated:
		return `invalid params: params` + p.where + ` has ` + strconv.Quote(truncate(string(p.key), maxLoggedName)) +
			` more than once: send each member once (RFC 8259 section 4 leaves repeated names to each parser, so the gateway, a proxy or a log reader could each read another value)`
	}
	return `invalid params: member names are case-sensitive: params` + p.where + ` has "` + truncate(string(p.key), maxLoggedName) +
		`", which is not "` + p.name + `"; spell it "` + p.name + `"`
}

// caseError is the -32602 message for a member of params (a JSON object
// of schema s) named more than once in its object or spelt as s spells it
// but for letter case (objectSchema.problem), or "" for none.
func (s objectSchema) caseError(params []byte) string {
	return s.problem(params).message()
}

// paramsCaseError is the -32602 message for a request whose params, or
// an object the MCP schema defines in them (paramsSchemas), have a member
// named more than once in its object — "name" and "n\u0061me" in a
// tools/call's params, "progressToken" twice in _meta — or spelt, but for
// letter case, as the schema spells one of its members: "Name" for a
// tools/call's "name", "URI" for a resources/read's "uri", "Name" in a
// completion/complete's argument, "ProgressToken" in _meta; "" for none.
// JSON-RPC and MCP member names are case-sensitive: such a request lacks
// the member (a tools/call without "name"), yet encoding/json — the
// gateway's and mcp-go's decoder — takes the variant for it, and the
// request was served as if it were spelt right. Of a repeated member
// encoding/json takes the last, where another parser (a proxy, a WAF, a
// log reader) may take the first and see another tool: RFC 8259 §4 leaves
// repeated names to each parser. Members the schema does not name are
// allowed, once each. initialize's params are checked by
// initializeParamsError, with what is missing.
func paramsCaseError(method string, body []byte) string {
	s := paramsSchemas[method]
	if s == nil || method == string(mcp.MethodInitialize) {
		return ""
	}
	params := memberValue(body, "params")
	if kind(params) != '{' {
		return ""
	}
	return s.caseError(params)
}

// found is what one pass over a JSON object finds of the members its
// schema names (objectSchema.find): by index in the schema, the raw value
// of the member spelt exactly (the last of several; nil when absent) and
// the first member spelt otherwise that encoding/json takes for it.
type found struct {
	s              objectSchema
	value, variant [][]byte
}

// find reads the members of the JSON object obj (absent or null: none)
// that s names.
func (s objectSchema) find(obj []byte) found {
	f := found{s: s, value: make([][]byte, len(s)), variant: make([][]byte, len(s))}
	s.eachMember(obj, func(i int, exact bool, key, v []byte) bool {
		switch {
		case exact:
			f.value[i] = v
		case f.variant[i] == nil:
			f.variant[i] = key
		}
		return true
	})
	return f
}

func (f found) index(name string) int {
	for i := range f.s {
		if f.s[i].name == name {
			return i
		}
	}
	panic("gateway: " + name + " is not in the schema") // a programming error: names are constants
}

// get returns the raw value of the member spelt name exactly, or nil.
func (f found) get(name string) json.RawMessage { return f.value[f.index(name)] }

// variantNote explains, after "<where>.<name> is required", that a member
// spelt otherwise is not that member ("" when there is none).
func (f found) variantNote(where, name string) string {
	v := f.variant[f.index(name)]
	if v == nil {
		return ""
	}
	return fmt.Sprintf(" (%s has a member %q: member names are case-sensitive, spell it %q)", where, truncate(string(v), maxLoggedName), name)
}

// ambiguities are the refusals of members among names that are present
// both as spelt and in a variant spelling: decoders that ignore case would
// take either.
func (f found) ambiguities(where string, names ...string) []string {
	var out []string
	for _, name := range names {
		i := f.index(name)
		if f.value[i] != nil && f.variant[i] != nil {
			out = append(out, fmt.Sprintf("%s has both %q and %q: member names are case-sensitive, and decoders that ignore case would take either; send only %q",
				where, name, truncate(string(f.variant[i]), maxLoggedName), name))
		}
	}
	return out
}

// eachElement calls f with the index and raw value of each element of the
// valid JSON array arr until f returns false.
func eachElement(arr []byte, f func(i int, v []byte) bool) {
	arr = bytes.TrimSpace(arr)
	if len(arr) == 0 || arr[0] != '[' {
		return
	}
	i := skipSpace(arr, 1)
	for n := 0; i < len(arr) && arr[i] != ']'; n++ {
		end := skipValue(arr, i)
		if !f(n, arr[i:end]) {
			return
		}
		i = skipSpace(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
}

// memberValue returns the raw value of obj's top-level member spelt name
// exactly (the last of several), or nil.
func memberValue(obj []byte, name string) []byte {
	var v []byte
	eachMemberValue(bytes.TrimSpace(obj), func(key, val []byte) bool {
		if string(key) == name {
			v = val
		}
		return true
	})
	return v
}

// eachMember calls f with the name of each member of the JSON object obj
// (valid JSON) until f returns false.
func eachMember(obj []byte, f func(key []byte) bool) {
	eachMemberValue(bytes.TrimSpace(obj), func(key, _ []byte) bool { return f(key) })
}

// eachMemberValue calls f with the name (unescaped) and raw value of each
// member of the valid JSON object obj until f returns false, each member
// once. Names are read in place, without allocating; from the first name
// with an escape on, the object is read through encoding/json's decoder
// (decodedEachMember), which unescapes them.
func eachMemberValue(obj []byte, f func(key, v []byte) bool) {
	if len(obj) == 0 || obj[0] != '{' {
		return
	}
	i := skipSpace(obj, 1)
	for n := 0; i < len(obj) && obj[i] == '"'; n++ {
		end := bytes.IndexByte(obj[i+1:], '"')
		if end < 0 {
			return
		}
		key := obj[i+1 : i+1+end]
		if bytes.IndexByte(key, '\\') >= 0 {
			decodedEachMember(obj, n, f)
			return
		}
		i = skipSpace(obj, i+2+end) // at ':'
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if !f(key, obj[i:vend]) {
			return
		}
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
}

// decodedEachMember is eachMemberValue through encoding/json's decoder,
// which unescapes names, past the first skip members (f has seen them).
func decodedEachMember(obj []byte, skip int, f func(key, v []byte) bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return
	}
	for n := 0; dec.More(); n++ {
		t, err := dec.Token()
		if err != nil {
			return
		}
		key, _ := t.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil || (n >= skip && !f([]byte(key), v)) {
			return
		}
	}
}
