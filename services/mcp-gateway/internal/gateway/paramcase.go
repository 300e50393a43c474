package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// paramNamesOf are, by method, the names of the params members mcp-go
// decodes (the json names of its request type's Params fields, embedded
// structs' included): a member spelt otherwise but for case is taken for
// one of them by encoding/json (paramsCaseError). initialize is not among
// them: initializeParamsError checks its members.
var paramNamesOf = sync.OnceValue(func() map[string][]string {
	out := make(map[string][]string, len(legacyRequestTypes))
	for method, mk := range legacyRequestTypes {
		if f, ok := reflect.TypeOf(mk()).Elem().FieldByName("Params"); ok {
			out[method] = jsonNames(f.Type, nil)
		}
	}
	return out
})

// jsonNames appends the JSON member names of struct type t's fields, as
// encoding/json names them (embedded structs without a tag flattened).
func jsonNames(t reflect.Type, names []string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return names
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
		case f.Anonymous && tag == "":
			names = jsonNames(f.Type, names)
		case !f.IsExported():
		case tag != "":
			names = append(names, tag)
		default:
			names = append(names, f.Name)
		}
	}
	return names
}

// paramsCaseError is the -32602 message for a request whose params have
// a member spelt, but for letter case, as one mcp-go reads for the method
// ("Name" for a tools/call's "name", "URI" for a resources/read's "uri"),
// or "" for none. JSON-RPC and MCP member names are case-sensitive: such a
// request lacks the member (a tools/call without "name"), yet encoding/json
// — the gateway's and mcp-go's decoder — takes the variant for it, and the
// request was served as if it were spelt right. The member names of
// initialize's params are checked by initializeParamsError, with what is
// missing.
func paramsCaseError(method string, body []byte) string {
	if method == string(mcp.MethodInitialize) {
		return ""
	}
	names := paramNamesOf()[method]
	if len(names) == 0 {
		return ""
	}
	params := memberValue(body, "params")
	if kind(params) != '{' {
		return ""
	}
	bad := ""
	eachMember(params, func(key []byte) bool {
		for _, name := range names {
			if string(key) == name {
				return true
			}
		}
		for _, name := range names {
			if foldsTo(key, strings.ToLower(name)) {
				bad = `invalid params: member names are case-sensitive: params has "` + truncate(string(key), maxLoggedName) +
					`", which is not "` + name + `"; spell it "` + name + `"`
				return false
			}
		}
		return true
	})
	return bad
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
// member of the valid JSON object obj until f returns false. Names are
// read in place, without allocating; at the first name with an escape the
// object is read again from its start through encoding/json's decoder, so
// f may see the members before it twice (both callers are idempotent).
func eachMemberValue(obj []byte, f func(key, v []byte) bool) {
	if len(obj) == 0 || obj[0] != '{' {
		return
	}
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		end := bytes.IndexByte(obj[i+1:], '"')
		if end < 0 {
			return
		}
		key := obj[i+1 : i+1+end]
		if bytes.IndexByte(key, '\\') >= 0 {
			decodedEachMember(obj, f)
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
// which unescapes names.
func decodedEachMember(obj []byte, f func(key, v []byte) bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return
		}
		key, _ := t.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil || !f([]byte(key), v) {
			return
		}
	}
}
