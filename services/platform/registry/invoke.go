package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/tollgate/tollgate/services/platform/fault"
)

// newMessage makes an empty md: the generated type when md is the linked
// descriptor itself, else a dynamic message. A discovered descriptor
// (reflection) is never mixed with a generated type of the same name,
// which may be another version of it.
func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil && mt.Descriptor() == md {
		return mt.New().Interface()
	}
	return dynamicpb.NewMessage(md)
}

// DecodeJSON builds a request from MCP tools/call arguments, b the JSON
// text of the arguments member as the gateway passes it. MCP's
// CallToolRequest makes arguments optional: no arguments (b empty, the
// member absent) and JSON null (read as absent: the gateway's
// argumentsError lets it through as such) are the request with no fields.
// Anything else must be one JSON object of the tool's input fields. Unknown
// fields, wrong types, a value that is not an object, b of only whitespace
// (not JSON, RFC 8259 section 2; it was read as no arguments) and a
// missing proto2 required field are InvalidArgument faults.
func (c *Capability) DecodeJSON(b []byte) (proto.Message, error) {
	return c.decodeJSON(b, false, argumentsText)
}

// DecodeBody builds a request from a POST body (the actions-api). No body
// (b empty) is the request with no fields, where the operation's
// requestBody is not required (OAS 3.1 section 4.8.13; else the fault of
// the required field it lacks). A body sent is its media type's content,
// held to its schema, an object: one of only whitespace (not JSON, RFC
// 8259 section 2) and JSON null are InvalidArgument faults, as are the
// faults of DecodeJSON.
func (c *Capability) DecodeBody(b []byte) (proto.Message, error) {
	return c.decodeJSON(b, false, bodyText)
}

// DecodeBodyPartial is DecodeBody for a body the caller completes (a
// POST's path parameters): a missing required field is left for
// Capability.CheckRequired once the request is whole.
func (c *Capability) DecodeBodyPartial(b []byte) (proto.Message, error) {
	return c.decodeJSON(b, true, bodyText)
}

// jsonText is what the JSON given to decodeJSON is to its caller, which
// says what stands for no value.
type jsonText int

const (
	// argumentsText: MCP tools/call arguments; null is no arguments.
	argumentsText jsonText = iota
	// bodyText: a POST body; null is a value, refused.
	bodyText
)

func (c *Capability) decodeJSON(b []byte, partial bool, text jsonText) (proto.Message, error) {
	in := newMessage(c.Method.Input())
	// null between JSON's own whitespace (RFC 8259 section 2); a text of
	// only whitespace, JSON's or other Unicode (a no-break space), is no
	// JSON text at all.
	null := string(bytes.Trim(b, " \t\r\n")) == "null"
	switch {
	case len(b) > 0 && len(bytes.TrimSpace(b)) == 0:
		if text == bodyText {
			return nil, fault.InvalidArgument("the request body holds only whitespace, which is not JSON: send a JSON object of the request's fields, or no body")
		}
		return nil, fault.InvalidArgument("invalid arguments: only whitespace, which is not JSON: send a JSON object of the tool's input fields ({} for none)")
	case null && text == bodyText:
		return nil, fault.InvalidArgument("the request body is null: send a JSON object of the request's fields ({} for none), or no body")
	case len(b) == 0 || null:
		if !partial && c.plan().inRequired {
			// No arguments are no required field either (protojson
			// checks only what it decodes).
			if err := c.CheckRequired(in); err != nil {
				return nil, err
			}
		}
		return in, nil
	}
	// An Any's "@type" is resolved as newMessage chooses: among the
	// backend's own types (the request's file and its imports) for a
	// discovered descriptor, never first among the gateway's compiled-in
	// ones, which may hold another version of a message of that name.
	if c.plan().inAny {
		if refusal := anyTooDeep(b, text); refusal != "" {
			return nil, fault.InvalidArgument("%s", refusal)
		}
	}
	err := protojson.UnmarshalOptions{Resolver: c.plan().in, AllowPartial: partial, RecursionLimit: maxMessageDepth}.Unmarshal(b, in)
	if err != nil {
		msg := cleanProtoErr(err)
		if msg == "exceeded max recursion depth" {
			return nil, fault.InvalidArgument("%s", tooDeep(b, text))
		}
		if (msg == "unexpected EOF" || strings.Contains(msg, "invalid escape code")) && json.Valid(b) {
			// protojson's answers to a lone surrogate escape ("\ud800" at
			// a string's end, "\udc00 x"), which encoding/json takes (as
			// U+FFFD): say what is wrong.
			if path, ok := loneSurrogateAt(b); ok {
				if path == "" {
					return nil, fault.InvalidArgument("invalid arguments: a string holds a lone UTF-16 surrogate escape (\\uD800 to \\uDFFF not in a pair)")
				}
				return nil, fault.InvalidArgument("invalid arguments: field %s: a string holds a lone UTF-16 surrogate escape (\\uD800 to \\uDFFF not in a pair)", path)
			}
		}
		if requiredRE.MatchString(msg) {
			if path := requiredPath(in.ProtoReflect()); path != "" {
				return nil, fault.InvalidArgument("invalid arguments: required field %s not set", path)
			}
		}
		// protojson names a position, and the field only in some errors
		// ("unexpected token [" of a Struct, "invalid
		// google.protobuf.Timestamp value"): name the argument there, in
		// the caller's words (decodeError).
		return nil, fault.InvalidArgument("%s", c.decodeError(b, err, text))
	}
	if c.plan().inMask || c.plan().inStamp && mayHoldBadTimestamp(b) {
		// A FieldMask or Timestamp protojson took but the schema
		// refuses (white space around a mask, a one-digit hour:
		// fieldmask.go).
		if path, v, start, stamp, bad := badMask(c.Method.Input(), b); bad {
			problem := maskProblem(v)
			if stamp {
				problem = "want " + wantWellKnown("Timestamp", false) + ", got " + strconv.Quote(v)
			}
			return nil, badValue(b, text, path, problem, start)
		}
	}
	// An integer as a string the schema refuses ("1e3" for an int64, any
	// string for an int32), which protojson took: intbody.go.
	if path, problem, start, bad := badIntegerString(c.Method.Input(), b); bad {
		return nil, badValue(b, text, path, problem, start)
	}
	return in, nil
}

// badValue is the InvalidArgument refusing the value at path of JSON text
// b, which starts at offset start: problem says what the schema wants
// instead; a body's refusal gives its line and column.
func badValue(b []byte, text jsonText, path, problem string, start int) error {
	out := "invalid arguments: field " + path + ": " + problem
	if text == bodyText {
		line, col := position(b, start)
		out += fmt.Sprintf(" (at line %d, column %d of the body)", line, col)
	}
	return fault.InvalidArgument("%s", out)
}

var positionRE = regexp.MustCompile(`^(?:syntax error )?\(line (\d+):(\d+)\)`)

// fieldAt is the path ("root.child.label", "nodes[2]", `by_int["x"]`) of
// the member of JSON b whose name or value starts where protojson's error
// msg says ("(line L:C)", C counted in runes), or "" when msg names no
// position or the position is not a member's.
func fieldAt(b []byte, msg string) string {
	m := positionRE.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	off := 0
	for l := 1; l < line && off < len(b); off++ {
		if b[off] == '\n' {
			l++
		}
	}
	for c := 1; c < col && off < len(b); c++ {
		_, size := utf8.DecodeRune(b[off:])
		off += size
	}
	// Two walks, each linear in b: the first counts the tokens that start
	// at or before off, the second builds the path of the last of them
	// only. Building every token's path as it goes costs O(depth) a token,
	// O(depth²) for a body nested as deep as protojson allows (10,000):
	// tens of seconds of CPU for a 9 KB body.
	n := 0
	walkJSON(b, func(_ func() string, start, _ int) bool {
		if start > off {
			return false
		}
		n++
		return true
	})
	found := ""
	walkJSON(b, func(path func() string, _, _ int) bool {
		if n--; n > 0 {
			return true
		}
		if n == 0 {
			found = shortPath(path())
		}
		return false
	})
	return found
}

// maxPathBytes bounds the path an error names: a member nested thousands
// deep is named by the start and the end of its path.
const maxPathBytes = 256

// shortPath is p, or its first and last maxPathBytes/2 bytes (cut at rune
// boundaries) around "…" when p is longer than maxPathBytes.
func shortPath(p string) string {
	if len(p) <= maxPathBytes {
		return p
	}
	head, tail := maxPathBytes/2, len(p)-maxPathBytes/2
	for head > 0 && !utf8.RuneStart(p[head]) {
		head--
	}
	for tail < len(p) && !utf8.RuneStart(p[tail]) {
		tail++
	}
	return p[:head] + "…" + p[tail:]
}

// loneSurrogateAt is the path of the first member of JSON b whose name or
// string value holds a \uXXXX escape of a UTF-16 surrogate not in a pair
// (protojson's error is then "unexpected EOF"), or "" when none does.
func loneSurrogateAt(b []byte) (string, bool) {
	found, ok := "", false
	walkJSON(b, func(path func() string, start, end int) bool {
		if hasLoneSurrogate(b[start:end]) {
			found, ok = shortPath(path()), true
			return false
		}
		return true
	})
	return found, ok
}

// hasLoneSurrogate reports whether JSON token raw holds an escaped UTF-16
// surrogate that is not a high one followed at once by a low one.
func hasLoneSurrogate(raw []byte) bool {
	hex := func(i int) (int, bool) {
		if i+4 > len(raw) {
			return 0, false
		}
		v, err := strconv.ParseUint(string(raw[i:i+4]), 16, 16)
		return int(v), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if i >= len(raw) || raw[i] != 'u' {
			continue
		}
		r, ok := hex(i + 1)
		if !ok {
			continue
		}
		i += 4
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return true
		case 0xD800 <= r && r <= 0xDBFF:
			if i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return true
			}
			if lo, ok := hex(i + 3); !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// walkJSON calls visit with the start and end offsets of every member name
// and value of JSON b in order (a container's end is that of its opening
// bracket), until visit returns false or b ends. path builds that token's
// path, in O(depth): call it only for the tokens you need, and only
// during the visit.
func walkJSON(b []byte, visit func(path func() string, start, end int) bool) {
	walkJSONTokens(b, func(stack []jsonFrame, _ json.Token, _ bool, start, end int) bool {
		return visit(func() string { return jsonPath(stack) }, start, end)
	}, nil)
}

// jsonFrame is an open object or array of a JSON text being walked: the
// member (key) or element (index) being read in it.
type jsonFrame struct {
	object bool
	key    string
	index  int
	hasKey bool
}

// jsonPath is the path of the token being read at the top of stack, as
// errors name it ("root.child.label", "nodes[2]", `by_int["x"]`).
func jsonPath(stack []jsonFrame) string {
	var sb strings.Builder
	for i, f := range stack {
		switch {
		case !f.object:
			fmt.Fprintf(&sb, "[%d]", f.index)
		case identRE.MatchString(f.key):
			if i > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(f.key)
		default:
			fmt.Fprintf(&sb, "[%s]", jsonString(f.key))
		}
	}
	return sb.String()
}

// walkJSONTokens is walkJSON's walk: visit gets each member name (name
// true) and value with the open containers (stack, valid only during the
// call: the top frame is the token's own member or element), the token and
// its offsets;
// a container's value is visited before it is pushed. closed, when not
// nil, is called as each container closes, with the depth left open. The
// walk stops when visit returns false or b ends.
func walkJSONTokens(b []byte, visit func(stack []jsonFrame, tok json.Token, name bool, start, end int) bool, closed func(depth int)) {
	var stack []jsonFrame
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		start := int(dec.InputOffset())
		for start < len(b) && strings.IndexByte(" \t\r\n,:", b[start]) >= 0 {
			start++
		}
		tok, err := dec.Token()
		if err != nil {
			return
		}
		end := int(dec.InputOffset())
		top := len(stack) - 1
		if top >= 0 && stack[top].object && !stack[top].hasKey {
			if k, ok := tok.(string); ok { // a member's name
				stack[top].key, stack[top].hasKey = k, true
				if !visit(stack, tok, true, start, end) {
					return
				}
				continue
			}
		}
		// A value: of the member or element on top of the stack.
		if top >= 0 && (!stack[top].object || stack[top].hasKey) {
			if !visit(stack, tok, false, start, end) {
				return
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, jsonFrame{object: true})
			continue
		case json.Delim('['):
			stack = append(stack, jsonFrame{index: 0})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			top--
			if closed != nil {
				closed(len(stack))
			}
		}
		if top >= 0 {
			if stack[top].object {
				stack[top].hasKey = false
			} else {
				stack[top].index++
			}
		}
	}
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// DecodeQuery builds a request from query parameters named after the request
// fields (GET actions). Unknown or repeated parameters are InvalidArgument.
func (c *Capability) DecodeQuery(q url.Values) (proto.Message, error) {
	in := newMessage(c.Method.Input())
	fields := c.Method.Input().Fields()
	refl := in.ProtoReflect()
	// Each parameter is decoded alone (AllowPartial: without the others a
	// proto2 request's required fields are unset); the caller checks the
	// request for them once whole (CheckRequired).
	one := protojson.UnmarshalOptions{AllowPartial: true}
	for name, values := range q {
		f := fields.ByName(protoreflect.Name(name))
		if f == nil {
			f = fields.ByJSONName(name)
		}
		if f == nil {
			return nil, fault.InvalidArgument("unknown query parameter %q", name)
		}
		// A path parameter (the connector passes it in q) is named as one.
		what := "query parameter"
		if c.Action != nil && slices.Contains(c.Action.PathParams, name) {
			what = "path parameter"
		}
		if len(values) != 1 {
			return nil, fault.InvalidArgument("%s %q given %d times", what, name, len(values))
		}
		if !utf8.ValidString(values[0]) {
			return nil, fault.InvalidArgument("%s %q is not valid UTF-8", what, name)
		}
		// Reuse protojson's scalar parsing by decoding {"name": value}. The
		// JSON is written with encoding/json: Go's %q quoting is not JSON
		// (a NUL or DEL comes out as \x00, \x7f), and such a value came
		// back as protojson's syntax error instead of being decoded.
		var raw string
		if queryString(f) {
			raw = "{" + jsonString(string(f.Name())) + ":" + jsonString(values[0]) + "}"
		} else {
			raw = "{" + jsonString(string(f.Name())) + ":" + quoteIfNeeded(values[0]) + "}"
		}
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
			// A JSON body naming two members is refused by protojson
			// ("oneof … is already set"); here the later Set would clear
			// the other, and which one is later is map order.
			if prev := refl.WhichOneof(o); prev != nil {
				return nil, fault.InvalidArgument("%s are members of the oneof %s; give one", c.twoParams(queryName(q, prev), name), o.Name())
			}
		}
		if isMessage(f) && !f.IsList() && f.Message().FullName() == fieldMaskName && !fieldMaskRE.MatchString(values[0]) {
			// What the schema refuses, also what protojson would take
			// (white space around the paths: fieldmask.go).
			return nil, fault.InvalidArgument("%s %q: %s", what, name, queryProblem(f, values[0], ""))
		}
		if p := integerParamProblem(f, values[0]); p != "" {
			// Only the document's pattern: protojson takes "1e3" and
			// "1.0" for 1000 and 1 (intparam.go).
			return nil, fault.InvalidArgument("%s %q: %s", what, name, p)
		}
		m := newMessage(c.Method.Input())
		if err := one.Unmarshal([]byte(raw), m); err != nil {
			// protojson's text is about the document built here: a
			// position in it, the field by its JSON name.
			return nil, fault.InvalidArgument("%s %q: %s", what, name, queryProblem(f, values[0], cleanProtoErr(err)))
		}
		if timestampParamRefused(f, values[0]) {
			// protojson took it, the document's pattern does not: a
			// one-digit hour ("T3:04:05Z"), an offset past 23:59
			// ("+24:00"). Checked after protojson, whose refusals say
			// more (the range: "0000-01-01T00:00:00Z").
			return nil, fault.InvalidArgument("%s %q: %s", what, name, queryProblem(f, values[0], ""))
		}
		refl.Set(f, m.ProtoReflect().Get(f))
	}
	return in, nil
}

// timestampRE is timestampPattern, compiled: the text a Timestamp path or
// query parameter takes is what the document's pattern admits.
var timestampRE = regexp.MustCompile(timestampPattern)

// timestampParamRefused reports whether v, the value of a path or query
// parameter of field f, is a google.protobuf.Timestamp's text that
// timestampPattern (the schema's, schema.go) refuses. protojson (Go's
// time parser) takes a one-digit hour ("2024-01-02T3:04:05Z") and offsets
// to 24:60, which the pattern, as RFC 3339 §5.6, does not; a parameter
// takes only the pattern's text (docs/reference/actions.md), as a JSON
// body does (badMask).
func timestampParamRefused(f protoreflect.FieldDescriptor, v string) bool {
	return isMessage(f) && !f.IsList() && !f.IsMap() &&
		f.Message().FullName() == "google.protobuf.Timestamp" && !timestampRE.MatchString(v)
}

// twoParams names two parameters of one call as what each is: "path
// parameters %q and %q", "query parameters %q and %q" (in name order) or
// "path parameter %q and query parameter %q".
func (c *Capability) twoParams(a, b string) string {
	isPath := func(n string) bool { return c.Action != nil && slices.Contains(c.Action.PathParams, n) }
	if a > b {
		a, b = b, a
	}
	switch pa, pb := isPath(a), isPath(b); {
	case pa && pb:
		return fmt.Sprintf("path parameters %q and %q", a, b)
	case pa:
		return fmt.Sprintf("path parameter %q and query parameter %q", a, b)
	case pb:
		return fmt.Sprintf("path parameter %q and query parameter %q", b, a)
	}
	return fmt.Sprintf("query parameters %q and %q", a, b)
}

// queryName is the parameter of q that names f: its proto name or its
// JSON name.
func queryName(q url.Values, f protoreflect.FieldDescriptor) string {
	if _, ok := q[string(f.Name())]; ok {
		return string(f.Name())
	}
	return f.JSONName()
}

// CheckRequired refuses, as an InvalidArgument fault, a request of c
// without a proto2 required field: DecodeJSON does so itself, DecodeQuery
// takes parameters one by one (a POST's path parameters are merged into
// its body's request), so its caller checks the request once whole. A
// request that can hold no required field (every proto3 one: found once
// per capability) is not walked, which would cost an allocation or so a
// field set.
func (c *Capability) CheckRequired(in proto.Message) error {
	if !c.plan().inRequired {
		return nil
	}
	if err := proto.CheckInitialized(in); err != nil {
		// Named by its path in the schema's names, not its full proto
		// name ("pkg.GetRequest.r").
		if path := requiredPath(in.ProtoReflect()); path != "" {
			return fault.InvalidArgument("invalid arguments: required field %s not set", path)
		}
		return fault.InvalidArgument("invalid arguments: %s", cleanProtoErr(err))
	}
	return nil
}

// queryString reports whether the proto3 JSON form of f's value is a JSON
// string, so that a query or path parameter is taken as one whatever it
// holds ("5" for an int64, "2024-01-02T03:04:05Z" for a Timestamp).
func queryString(f protoreflect.FieldDescriptor) bool {
	k := f.Kind()
	if isMessage(f) {
		switch f.Message().FullName() {
		case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
			"google.protobuf.StringValue", "google.protobuf.BytesValue",
			"google.protobuf.Int64Value", "google.protobuf.UInt64Value":
			return true
		}
		k = f.Message().Fields().ByName("value").Kind() // the other wrappers
	}
	switch k {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.EnumKind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return true
	}
	return false
}

func quoteIfNeeded(v string) string {
	if v == "" {
		return `""`
	}
	for _, r := range v {
		if !strings.ContainsRune("0123456789.-+eEtruefals", r) {
			return jsonString(v)
		}
	}
	return v
}

// jsonString is s as a JSON string (s is valid UTF-8).
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func cleanProtoErr(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "\u00a0", " ") // first: the prefix may end in one
	s = strings.TrimPrefix(s, "proto: ")
	return s
}

// Invoke calls the capability on conn (a connection to its backend,
// Conns.For) and returns its response.
//
// The call's messages are encoded and decoded without gRPC's codec's
// required-field check (partialCodec), which walks every field of a
// dynamicpb message, allocating as it goes, although a proto3 message has
// no required field at all. The request is checked here instead, and only
// when it can hold a required field (CheckRequired; DecodeJSON and the
// actions-api's decode check it already, so the refusal is theirs). A
// response whose proto2 required field the backend left unset (a replica
// still on the version before the field was added, a backend serializing
// partial messages) is taken as it is, not failed as gRPC's codec would
// ("required field … not set"): MarshalOutput writes the field as null,
// which the output schema admits (docs/reference/mcp.md, "Tools").
func (c *Capability) Invoke(ctx context.Context, conn grpc.ClientConnInterface, in proto.Message) (proto.Message, error) {
	if err := c.CheckRequired(in); err != nil {
		return nil, err
	}
	out := newMessage(c.Method.Output())
	if err := conn.Invoke(ctx, c.FullMethod, in, out, partialCallOpts...); err != nil {
		return nil, err
	}
	return out, nil
}

// callPlan is what each call of a capability uses, found once.
type callPlan struct {
	in, out resolver
	// inRequired: the request can hold a proto2 required field (its own
	// or a nested message's).
	inRequired bool
	// inMask: the request can hold a FieldMask its schema constrains
	// (hasFieldMask), which decodeJSON checks against the schema.
	inMask bool
	// inStamp: the request can hold a Timestamp its schema constrains
	// (hasTimestamp), which decodeJSON checks against the schema when
	// the text may hold one the schema refuses (mayHoldBadTimestamp).
	inStamp bool
	// inAny: the request can hold a google.protobuf.Any, whose nesting
	// decodeJSON bounds (anyTooDeep).
	inAny bool
}

func newCallPlan(md protoreflect.MethodDescriptor) *callPlan {
	return &callPlan{
		in: resolverFor(md.Input()), out: resolverFor(md.Output()),
		inRequired: hasRequired(md.Input()),
		inMask:     hasFieldMask(md.Input()),
		inStamp:    hasTimestamp(md.Input()),
		inAny:      hasAny(md.Input()),
	}
}

func (c *Capability) plan() *callPlan {
	if c.call != nil {
		return c.call
	}
	return newCallPlan(c.Method)
}

// hasRequired reports whether a message of d can hold a proto2 required
// field: its own or a nested message's, at any depth.
func hasRequired(d protoreflect.MessageDescriptor) bool {
	return reachesField(d, func(f protoreflect.FieldDescriptor) bool { return f.Cardinality() == protoreflect.Required }, nil)
}

// reachesField reports whether a message of d can hold a field for which
// match is true: one of d's fields, or of a message one of them holds (a
// singular or repeated field's message, a map field's value), at any
// depth, but not inside a message for which enter is false (nil enter:
// every message is entered). A map field is matched by its value (the
// map-entry message's value field), as its JSON object holds values of
// that type. Each message type is walked once: where a recursive message
// (one that holds itself, directly or through others) recurs, it is not
// walked again, so the walk ends; nothing is lost, as its fields are
// matched where it was first reached and a match anywhere ends the whole
// walk with true.
func reachesField(d protoreflect.MessageDescriptor, match func(protoreflect.FieldDescriptor) bool, enter func(protoreflect.MessageDescriptor) bool) bool {
	seen := map[protoreflect.FullName]bool{}
	var walk func(d protoreflect.MessageDescriptor) bool
	walk = func(d protoreflect.MessageDescriptor) bool {
		if seen[d.FullName()] {
			return false
		}
		seen[d.FullName()] = true
		fields := d.Fields()
		for i := range fields.Len() {
			f := fields.Get(i)
			if f.IsMap() {
				f = f.MapValue()
			}
			if match(f) {
				return true
			}
			if md := f.Message(); md != nil && (enter == nil || enter(md)) && walk(md) {
				return true
			}
		}
		return false
	}
	return walk(d)
}

// outputJSON writes a response as it came (AllowPartial): an unset proto2
// required field is null, as any unset field with presence (Invoke).
var outputJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, AllowPartial: true}

// MarshalOutput is the package function MarshalOutput with the types the
// capability's response may hold in an Any found once, not per call.
func (c *Capability) MarshalOutput(m proto.Message) ([]byte, error) {
	opts := outputJSON
	opts.Resolver = c.plan().out
	b, err := opts.Marshal(m)
	if err != nil {
		return nil, err
	}
	return compactInPlace(b), nil
}

// MarshalOutput encodes a response the way both connectors publish it:
// snake_case field names, every field present, compact and stable (protojson
// alone varies its whitespace on purpose). The bytes are json.Compact's of
// protojson's output, compacted where protojson wrote them instead of
// copied into a second buffer.
func MarshalOutput(m proto.Message) ([]byte, error) {
	// An Any's type is resolved among the backend's own types (see
	// DecodeJSON).
	opts := outputJSON
	opts.Resolver = resolverFor(m.ProtoReflect().Descriptor())
	b, err := opts.Marshal(m)
	if err != nil {
		return nil, err
	}
	return compactInPlace(b), nil
}

// compactInPlace removes from b, valid JSON, the whitespace outside its
// strings, as json.Compact does, in b's own array.
func compactInPlace(b []byte) []byte {
	w := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"':
			inString = true
		}
		b[w] = c
		w++
	}
	return b[:w]
}

// Conns are the gRPC connections to the fleet's backends by name
// (Capability.Backend): connectors call each capability on its backend.
type Conns map[string]grpc.ClientConnInterface

// For returns the connection to c's backend.
func (cs Conns) For(c *Capability) (grpc.ClientConnInterface, bool) {
	conn, ok := cs[c.Backend]
	return conn, ok
}

// Check reports every capability of r whose backend has no connection.
func (cs Conns) Check(r *Registry) error {
	var missing []string
	for _, c := range r.Capabilities() {
		if _, ok := cs[c.Backend]; !ok {
			missing = append(missing, fmt.Sprintf("%s (backend %q)", c.FullMethod, c.Backend))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("capability registry: no connection to the backend of %s", strings.Join(missing, ", "))
	}
	return nil
}

// resolver is what protojson resolves an Any's type with.
type resolver interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
}

// resolverFor resolves the types of messages held in an Any inside md:
// the compiled-in types when md is a linked descriptor, else the types of
// md's file and its imports first (localResolver), as newMessage keeps a
// discovered descriptor apart from a generated type of the same name.
func resolverFor(md protoreflect.MessageDescriptor) resolver {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil && mt.Descriptor() == md {
		return protoregistry.GlobalTypes
	}
	return localResolver(md)
}

// localTypes caches, by file, the types of a file and of the files it
// imports (transitively): a capability's descriptors discovered from a
// backend are not in protoregistry.GlobalTypes, so an Any holding one of
// its messages is resolved there. Bounded: a backend's changed descriptors
// come as new files.
var localTypes, _ = lru.New[protoreflect.FileDescriptor, *dynamicpb.Types](256)

// localResolver resolves first among the types of md's file and its
// imports, then among the linked ones.
func localResolver(md protoreflect.MessageDescriptor) typeResolver {
	fd := md.ParentFile()
	if t, ok := localTypes.Get(fd); ok {
		return typeResolver{t}
	}
	files := new(protoregistry.Files)
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if f == nil || f.IsPlaceholder() {
			return
		}
		if _, err := files.FindFileByPath(f.Path()); err == nil {
			return
		}
		for i := 0; i < f.Imports().Len(); i++ {
			add(f.Imports().Get(i).FileDescriptor)
		}
		_ = files.RegisterFile(f) // a conflicting file is left out
	}
	add(fd)
	t := dynamicpb.NewTypes(files)
	localTypes.Add(fd, t)
	return typeResolver{t}
}

type typeResolver struct{ local *dynamicpb.Types }

func (r typeResolver) FindMessageByName(n protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := r.local.FindMessageByName(n); err == nil {
		return mt, nil
	}
	return protoregistry.GlobalTypes.FindMessageByName(n)
}

func (r typeResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if mt, err := r.local.FindMessageByURL(url); err == nil {
		return mt, nil
	}
	return protoregistry.GlobalTypes.FindMessageByURL(url)
}

func (r typeResolver) FindExtensionByName(n protoreflect.FullName) (protoreflect.ExtensionType, error) {
	if xt, err := r.local.FindExtensionByName(n); err == nil {
		return xt, nil
	}
	return protoregistry.GlobalTypes.FindExtensionByName(n)
}

func (r typeResolver) FindExtensionByNumber(m protoreflect.FullName, n protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	if xt, err := r.local.FindExtensionByNumber(m, n); err == nil {
		return xt, nil
	}
	return protoregistry.GlobalTypes.FindExtensionByNumber(m, n)
}
