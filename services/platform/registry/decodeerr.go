package registry

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// This file words the decoder's (protojson's) refusals for the caller who
// sent the value. protojson's own text is written for a reader of the
// JSON document it decoded: a position in that document ("(line 1:11)"),
// the field by its JSON name ("invalid value for int64 field grantId"),
// a oneof or a required field by its full proto name. A caller of a tool
// or an operation knows the names the input schema and the OpenAPI
// document publish (Field.TextName: "grant_id") and the text it sent, so
// the texts say what was wanted and what came, in those names, once:
//
//	query parameter "repeat": want an integer, got "abc"
//	invalid arguments: field grant_id: want an integer, got "x"
//	invalid arguments: unknown field root.child.nope
//
// A position is only given where it is one in the caller's own text: in a
// POST body of the actions-api (" (at line 1, column 7 of the body)").
// A query or path parameter is decoded from a JSON document built for it,
// and MCP arguments are a member of the caller's JSON-RPC message, not a
// document of their own: a position would point into text the caller
// never sent, or to the wrong place of the text it did.

// protoErrRE splits a protojson error (cleanProtoErr's text) into
// "syntax error" or "", the position, and the rest.
var protoErrRE = regexp.MustCompile(`^(syntax error )?\(line (\d+):(\d+)\): (.*)$`)

var (
	invalidValueRE = regexp.MustCompile(`^invalid value for (\w+) field ([^:]*): (.*)$`)
	wktValueRE     = regexp.MustCompile(`^invalid google\.protobuf\.(Timestamp|Duration) value (.*)$`)
	wktRangeRE     = regexp.MustCompile(`^google\.protobuf\.(Timestamp|Duration) value out of range: (.*)$`)
	maskPathRE     = regexp.MustCompile(`^google\.protobuf\.FieldMask\.paths contains invalid path: (".*")$`)
	unexpectedRE   = regexp.MustCompile(`^unexpected token (.*)$`)
	oneofSetRE     = regexp.MustCompile(`^error parsing .*, oneof (\S+) is already set$`)
	unknownFieldRE = regexp.MustCompile(`^unknown field (.*)$`)
	duplicateRE    = regexp.MustCompile(`^duplicate field (.*)$`)
	requiredRE     = regexp.MustCompile(`^required field \S+ not set$`)
)

// kindsByName are the scalar kinds by the name protojson's "invalid value
// for <kind> field" gives them (protoreflect.Kind.String).
var kindsByName = func() map[string]protoreflect.Kind {
	m := map[string]protoreflect.Kind{}
	for k := protoreflect.DoubleKind; k <= protoreflect.Sint64Kind; k++ {
		m[k.String()] = k
	}
	return m
}()

// wantScalar says what a value of kind k is ("an integer", "true or
// false"), got the value as sent (JSON text: quoted when a string). An
// integer or a number outside k's range says the range. enum lists the
// names the schema publishes, nil when not known.
func wantScalar(k protoreflect.Kind, enum protoreflect.EnumDescriptor, got string) string {
	unquoted := got
	if s, err := strconv.Unquote(got); err == nil {
		unquoted = s
	}
	// The range is said for an integer outside it.
	integer := func(lo, hi string) string {
		if f, ok := new(big.Float).SetString(unquoted); ok && f.IsInt() {
			i, _ := f.Int(nil)
			l, _ := new(big.Int).SetString(lo, 10)
			h, _ := new(big.Int).SetString(hi, 10)
			if i.Cmp(l) < 0 || i.Cmp(h) > 0 {
				return "an integer from " + lo + " to " + hi
			}
		}
		return "an integer"
	}
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return integer(strconv.Itoa(math.MinInt32), strconv.Itoa(math.MaxInt32))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return integer(strconv.Itoa(math.MinInt64), strconv.Itoa(math.MaxInt64))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return integer("0", strconv.FormatUint(math.MaxUint32, 10))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return integer("0", strconv.FormatUint(math.MaxUint64, 10))
	case protoreflect.FloatKind:
		if f, err := strconv.ParseFloat(unquoted, 64); err == nil && math.Abs(f) > math.MaxFloat32 || errors.Is(err, strconv.ErrRange) {
			return "a number from -3.4028235e+38 to 3.4028235e+38"
		}
		return "a number, NaN, Infinity or -Infinity"
	case protoreflect.DoubleKind:
		if _, err := strconv.ParseFloat(unquoted, 64); errors.Is(err, strconv.ErrRange) {
			return "a number from -1.7976931348623157e+308 to 1.7976931348623157e+308"
		}
		return "a number, NaN, Infinity or -Infinity"
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BytesKind:
		return "base64 (standard or URL-safe alphabet, padded or not)"
	case protoreflect.EnumKind:
		if enum == nil {
			return "one of the enum's names the schema lists"
		}
		return "one of " + enumNames(enum)
	}
	return "a " + k.String()
}

// maxEnumNames bounds the names an error lists.
const maxEnumNames = 16

// enumNames lists e's value names as the schema does ("RED", "GREEN"),
// at most maxEnumNames of them.
func enumNames(e protoreflect.EnumDescriptor) string {
	vs := e.Values()
	var names []string
	for i := 0; i < vs.Len() && i < maxEnumNames; i++ {
		names = append(names, strconv.Quote(string(vs.Get(i).Name())))
	}
	if vs.Len() > maxEnumNames {
		names = append(names, fmt.Sprintf("… (%d in all)", vs.Len()))
	}
	return strings.Join(names, ", ")
}

// wantWellKnown says what a Timestamp or Duration (named by its short
// name) is; outOfRange for a value of the right form outside its range.
func wantWellKnown(name string, outOfRange bool) string {
	switch {
	case name == "Timestamp" && outOfRange:
		return "an RFC 3339 date-time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"
	case name == "Timestamp":
		return `an RFC 3339 date-time such as "2024-01-02T03:04:05Z"`
	case name == "Duration" && outOfRange:
		return "a duration from -315576000000s to 315576000000s"
	case name == "Duration":
		return `a duration in seconds with the suffix s, such as "1.5s"`
	case name == "FieldMask":
		return `comma-separated field paths in lowerCamelCase, such as "a.bC,d"`
	}
	return "a " + name
}

// dateOnlyRE is an RFC 3339 full-date alone ("2024-01-02"), as JSON text.
var dateOnlyRE = regexp.MustCompile(`^"\d{4}-\d{2}-\d{2}"$`)

// dateAlone says, for a Timestamp (name) refused for got (JSON text) that
// is a date without a time, what the date-time of that date's start is;
// "" for anything else.
func dateAlone(name, got string) string {
	if name != "Timestamp" || !dateOnlyRE.MatchString(got) {
		return ""
	}
	return `: a date alone is not one; give a time and an offset too, such as "` + got[1:len(got)-1] + `T00:00:00Z"`
}

// fieldPathRE is a FieldMask path as protojson takes it once in
// lowerCamelCase: dotted identifiers.
var fieldPathRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// maskPath says which path of a FieldMask protojson refused (quoted, as
// its error gives it): the empty one ("a,,b"), or one in snake_case with
// its lowerCamelCase spelling, which the JSON mapping wants.
func maskPath(quoted string) string {
	p, err := strconv.Unquote(quoted)
	switch {
	case err != nil:
		return "the path " + quoted
	case strings.TrimSpace(p) == "":
		return "an empty path"
	case strings.Contains(p, "_") && fieldPathRE.MatchString(p):
		parts := strings.Split(p, "_")
		for i := 1; i < len(parts); i++ {
			if parts[i] != "" {
				parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
			}
		}
		return "the path " + quoted + " (in lowerCamelCase: " + strconv.Quote(strings.Join(parts, "")) + ")"
	}
	return "the path " + quoted
}

// pathSegmentRE is the first segment of a path as fieldAt writes it: a
// member's name (after a dot, or first), an index, or a quoted map key.
var pathSegmentRE = regexp.MustCompile(`^(?:\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\["(?:[^"\\]|\\.)*"\])`)

// wellKnownAt is the short name of the well-known type — Timestamp,
// Duration or FieldMask, each a JSON string — of which the member at
// path (fieldAt's) of a JSON text of md is one value: a field of that
// type, an element of a repeated one or a map's value. "" when path
// names something else (a repeated field's whole array, a map's whole
// object) or no field of md.
func wellKnownAt(md protoreflect.MessageDescriptor, path string) string {
	var fd protoreflect.FieldDescriptor
	whole := false // the path stops at fd's array or object, not in it
	for path != "" {
		m := pathSegmentRE.FindStringSubmatch(path)
		if m == nil {
			return ""
		}
		path = path[len(m[0]):]
		switch {
		case whole && fd.IsList():
			if m[2] == "" {
				return ""
			}
			whole = false
		case whole && fd.IsMap():
			if m[2] != "" {
				return ""
			}
			fd, whole = fd.MapValue(), false
		case m[1] != "":
			in := md
			if fd != nil {
				if in = fd.Message(); in == nil {
					return ""
				}
			}
			f := in.Fields().ByJSONName(m[1])
			if f == nil {
				f = in.Fields().ByTextName(m[1])
			}
			if f == nil {
				return ""
			}
			fd, whole = f, f.IsList() || f.IsMap()
		default:
			return ""
		}
	}
	if fd == nil || whole || fd.Message() == nil || fd.Message().FullName().Parent() != "google.protobuf" {
		return ""
	}
	switch n := string(fd.Message().Name()); n {
	case "Timestamp", "Duration", "FieldMask":
		return n
	}
	return ""
}

// tokenWords is a JSON token as protojson's "unexpected token" gives it,
// in words for a container.
func tokenWords(tok string) string {
	switch tok {
	case "{":
		return "an object"
	case "[":
		return "an array"
	}
	return tok
}

// problem is a protojson error's rest (its position and any "syntax
// error" split off) as the caller reads it. unknown and duplicate report
// an "unknown field" or "duplicate field" refusal, which name the field
// as the path where the caller's text has one.
func (c *Capability) problem(rest string) (text string, unknown, duplicate bool) {
	if m := invalidValueRE.FindStringSubmatch(rest); m != nil {
		switch m[3] { // the token, "{" or "[" for a container
		case "{":
			m[3] = "an object"
		case "[":
			m[3] = "an array"
		}
		if k, ok := kindsByName[m[1]]; ok {
			var enum protoreflect.EnumDescriptor
			if k == protoreflect.EnumKind {
				enum = enumByJSONName(c.Method.Input(), m[2])
			}
			return "want " + wantScalar(k, enum, m[3]) + ", got " + m[3], false, false
		}
	}
	if m := wktValueRE.FindStringSubmatch(rest); m != nil {
		return "want " + wantWellKnown(m[1], false) + ", got " + m[2] + dateAlone(m[1], m[2]), false, false
	}
	if m := maskPathRE.FindStringSubmatch(rest); m != nil {
		return "want " + wantWellKnown("FieldMask", false) + ", got " + maskPath(m[1]), false, false
	}
	if m := wktRangeRE.FindStringSubmatch(rest); m != nil {
		return "want " + wantWellKnown(m[1], true) + ", got " + m[2], false, false
	}
	if m := oneofSetRE.FindStringSubmatch(rest); m != nil {
		return c.oneofProblem(protoreflect.FullName(m[1])), false, false
	}
	if unknownFieldRE.MatchString(rest) {
		return rest, true, false
	}
	if duplicateRE.MatchString(rest) {
		return rest, false, true
	}
	return rest, false, false
}

// enumByJSONName is the enum of the enum fields named json (protojson
// names a field by its JSON name, a map's value "value") in messages
// reachable from md, or nil when there is none or they are of more than
// one enum.
func enumByJSONName(md protoreflect.MessageDescriptor, json string) protoreflect.EnumDescriptor {
	var found protoreflect.EnumDescriptor
	ambiguous := false
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || ambiguous {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			f := fields.Get(i) // a map's entry message is walked: its values are named "value"
			if e := f.Enum(); e != nil && f.JSONName() == json {
				if found != nil && found != e {
					ambiguous = true
					return
				}
				found = e
			}
			if m := f.Message(); m != nil {
				walk(m)
			}
		}
	}
	walk(md)
	if ambiguous {
		return nil
	}
	return found
}

// oneofProblem says a second member of the oneof full was given, naming
// the oneof and its members as the schema does.
func (c *Capability) oneofProblem(full protoreflect.FullName) string {
	if mt, err := c.plan().in.FindMessageByName(full.Parent()); err == nil {
		if o := mt.Descriptor().Oneofs().ByName(full.Name()); o != nil {
			var names []string
			for i := 0; i < o.Fields().Len(); i++ {
				names = append(names, o.Fields().Get(i).TextName())
			}
			return fmt.Sprintf("another member of the oneof %s (%s) is already given; give one", o.Name(), strings.Join(names, ", "))
		}
	}
	return fmt.Sprintf("another member of the oneof %s is already given; give one", full.Name())
}

// decodeError words protojson's refusal err of JSON b (MCP arguments or
// a POST body, as text says) for its caller: "invalid arguments: field
// PATH: PROBLEM", PATH the member at protojson's position as the caller
// wrote it; a body's refusal ends with that position.
func (c *Capability) decodeError(b []byte, err error, text jsonText) string {
	msg := cleanProtoErr(err)
	m := protoErrRE.FindStringSubmatch(msg)
	if m == nil {
		return "invalid arguments: " + msg
	}
	syntax, line, col, rest := m[1] != "", m[2], m[3], m[4]
	path := fieldAt(b, msg)
	problem, unknown, duplicate := c.problem(rest)
	if m := unexpectedRE.FindStringSubmatch(rest); m != nil && syntax && path != "" {
		// A Timestamp, Duration or FieldMask is a JSON string: a number,
		// object or array there is the wrong type, not bad JSON.
		if name := wellKnownAt(c.Method.Input(), path); name != "" {
			problem, syntax = "want "+wantWellKnown(name, false)+", got "+tokenWords(m[1]), false
		}
	}
	if syntax {
		problem = "syntax error: " + problem
	}
	var out string
	switch {
	case path != "" && unknown:
		out = "invalid arguments: unknown field " + path
	case path != "" && duplicate:
		out = "invalid arguments: duplicate field " + path
	case path != "":
		out = "invalid arguments: field " + path + ": " + problem
	default:
		out = "invalid arguments: " + problem
	}
	if text == bodyText {
		out += " (at line " + line + ", column " + col + " of the body)"
	}
	return out
}

// queryProblem says what query or path parameter value v of field f
// should have been; protoMsg is protojson's refusal of it, read only to
// tell a value out of a Timestamp's or Duration's range.
func queryProblem(f protoreflect.FieldDescriptor, v, protoMsg string) string {
	got := strconv.Quote(v)
	if isMessage(f) {
		n := f.Message().FullName()
		if k, ok := wrapperKinds[n]; ok {
			return "want " + wantScalar(k, nil, v) + ", got " + got
		}
		outOfRange := strings.Contains(protoMsg, "out of range")
		if outOfRange {
			return "want " + wantWellKnown(string(n.Name()), true) + ", got " + got
		}
		return "want " + wantWellKnown(string(n.Name()), false) + ", got " + got + dateAlone(string(n.Name()), got)
	}
	return "want " + wantScalar(f.Kind(), f.Enum(), v) + ", got " + got
}

// requiredPath is the path, in the schema's names, of the first proto2
// required field m lacks, at any depth ("r", "inner.r", "items[2].r"),
// or "" when it lacks none.
func requiredPath(m protoreflect.Message) string {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.Cardinality() == protoreflect.Required && !m.Has(f) {
			return f.TextName()
		}
	}
	// In the fields' order, as the schema lists them.
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if !m.Has(f) {
			continue
		}
		v, name := m.Get(f), f.TextName()
		switch {
		case f.IsList() && isMessage(f):
			l := v.List()
			for j := 0; j < l.Len(); j++ {
				if p := requiredPath(l.Get(j).Message()); p != "" {
					return fmt.Sprintf("%s[%d]", name, j) + dotted(p)
				}
			}
		case f.IsMap() && isMessage(f.MapValue()):
			var keys []protoreflect.MapKey
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				if p := requiredPath(v.Map().Get(k).Message()); p != "" {
					return name + mapKeyPath(k) + dotted(p)
				}
			}
		case !f.IsList() && !f.IsMap() && isMessage(f):
			if p := requiredPath(v.Message()); p != "" {
				return name + dotted(p)
			}
		}
	}
	return ""
}

// dotted is p joined to a path before it: ".p", or p itself when it
// starts with an index.
func dotted(p string) string {
	if strings.HasPrefix(p, "[") {
		return p
	}
	return "." + p
}

// mapKeyPath is map key k as walkJSON writes it in a path: ".key" for an
// identifier, else `["key"]`.
func mapKeyPath(k protoreflect.MapKey) string {
	s := k.String()
	if identRE.MatchString(s) {
		return "." + s
	}
	return "[" + jsonString(s) + "]"
}
