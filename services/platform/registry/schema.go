package registry

import (
	"math"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Schema is a JSON Schema (draft 2020-12, which OpenAPI 3.1 also uses) as
// a plain map, ready to encode. It names no "$schema": 2020-12 is MCP's
// default dialect (2025-11-25, SEP-1613), and a draft-07 validator that
// checks a schema against its meta-schema first (Ajv's default class)
// throws on a 2020-12 one it does not hold. Its keywords are read alike
// by draft-07 validators where that costs nothing (a oneof's exclusivity).
//
// The schemas describe the proto3 JSON mapping as protojson implements it
// (https://protobuf.dev/programming-guides/json/): what DecodeJSON accepts
// and what MarshalOutput writes. Input schemas are at times narrower than
// protojson (they name fields by their proto names only — a group by its
// message's name, protojson's TextName —, never offer null
// for "unset", take enums by name and 32-bit integers as numbers); never
// wider, except where JSON Schema cannot say it: the ranges of 64-bit
// integers, Durations and integer map keys written as strings, calendar
// validity of a Timestamp, the type an Any's "@type" names and its fields,
// lone UTF-16 surrogate escapes. docs/guides/add-a-capability.md has the
// table.
type Schema = map[string]any

// InputSchema is the JSON Schema of the capability's request: an object
// that accepts no unknown properties. A message that contains itself is
// described once, in "$defs", and referred to.
func (c *Capability) InputSchema() Schema { return standalone(c.Method.Input(), false) }

// OutputSchema is the JSON Schema of the capability's response as the
// connectors encode it (MarshalOutput): every field is present except an
// unset oneof member or proto3 optional field, and a message field or a
// scalar with explicit presence (proto2 optional, editions) may be null
// (unset).
func (c *Capability) OutputSchema() Schema { return standalone(c.Method.Output(), true) }

// Schemas returns the request's and the response's schemas for a document
// that holds the schemas of recursive messages elsewhere (OpenAPI's
// components): they refer to refPrefix+name, and defs maps each name to
// its schema. Names are "<message full name>-input" or "-output".
func (c *Capability) Schemas(refPrefix string) (in, out Schema, defs map[string]Schema) {
	defs = map[string]Schema{}
	in = (&schemaGen{openapi: true, prefix: refPrefix, defs: defs}).message(c.Method.Input())
	out = (&schemaGen{openapi: true, output: true, prefix: refPrefix, defs: defs}).message(c.Method.Output())
	return in, out, defs
}

func standalone(md protoreflect.MessageDescriptor, output bool) Schema {
	g := &schemaGen{output: output, prefix: "#/$defs/", defs: map[string]Schema{}}
	s := g.message(md)
	if len(g.defs) > 0 {
		defs := Schema{}
		for k, v := range g.defs {
			defs[k] = v
		}
		s["$defs"] = defs
	}
	return s
}

// schemaGen builds the schemas of one direction (input or output).
type schemaGen struct {
	output bool
	// openapi: for an OpenAPI document (Schemas), whose format registry
	// has formats JSON Schema validators do not know (uint32, uint64).
	openapi bool
	prefix  string
	defs    map[string]Schema
	// recursive memoizes whether a message can contain itself.
	recursive map[protoreflect.FullName]bool
}

func (g *schemaGen) defName(md protoreflect.MessageDescriptor) string {
	if g.output {
		return string(md.FullName()) + "-output"
	}
	return string(md.FullName()) + "-input"
}

// messageRef is the schema of a message-typed value: inline, or a
// reference to its definition when the message can contain itself (its
// schema would otherwise never end).
func (g *schemaGen) messageRef(md protoreflect.MessageDescriptor) Schema {
	if !g.isRecursive(md) {
		return g.message(md)
	}
	name := g.defName(md)
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = nil // being built: a reference to it ends the recursion
		g.defs[name] = g.message(md)
	}
	return Schema{"$ref": g.prefix + name}
}

func (g *schemaGen) isRecursive(md protoreflect.MessageDescriptor) bool {
	if g.recursive == nil {
		g.recursive = map[protoreflect.FullName]bool{}
	}
	if r, ok := g.recursive[md.FullName()]; ok {
		return r
	}
	seen := map[protoreflect.FullName]bool{}
	var reaches func(m protoreflect.MessageDescriptor) bool
	reaches = func(m protoreflect.MessageDescriptor) bool {
		for i := 0; i < m.Fields().Len(); i++ {
			f := m.Fields().Get(i)
			if f.IsMap() {
				f = f.MapValue()
			}
			if !isMessage(f) || wellKnownJSON(f.Message().FullName()) {
				continue
			}
			sub := f.Message()
			if sub.FullName() == md.FullName() {
				return true
			}
			if !seen[sub.FullName()] {
				seen[sub.FullName()] = true
				if reaches(sub) {
					return true
				}
			}
		}
		return false
	}
	r := reaches(md)
	g.recursive[md.FullName()] = r
	return r
}

func (g *schemaGen) message(md protoreflect.MessageDescriptor) Schema {
	s := Schema{"type": "object"}
	if d := MessageDescription(md); d != "" {
		s["description"] = d
	}
	props := Schema{}
	var required []string
	for _, f := range fields(md) {
		fs := g.field(f)
		if d := FieldDescription(f); d != "" {
			fs["description"] = d
		}
		if opts, _ := f.Options().(*descriptorpb.FieldOptions); opts.GetDeprecated() {
			fs["deprecated"] = true
		}
		// protojson names a field by its TextName with UseProtoNames
		// (MarshalOutput) and takes it on input beside the JSON name: the
		// proto name, except a proto2 group's (or an editions delimited
		// field's), which is its message's name ("MyGroup", not
		// "mygroup").
		name := f.TextName()
		props[name] = fs
		// MarshalOutput (EmitUnpopulated) writes every field but an unset
		// oneof member or proto3 optional field. protojson refuses a
		// request without a proto2 required field ("required field …
		// not set").
		if (g.output && f.ContainingOneof() == nil) || (!g.output && f.Cardinality() == protoreflect.Required) {
			required = append(required, name)
		}
	}
	s["properties"] = props
	if len(required) > 0 {
		s["required"] = required
	}
	// At most one member of a oneof: protojson refuses a second ("oneof
	// … is already set"), and MarshalOutput writes only the one set. Said
	// as "no two members present", {"not": {"anyOf": [{"required": [a,
	// b]}, …]}}, which every JSON Schema draft since 4 and OpenAPI 3.0
	// read alike — not with 2019-09's dependentSchemas, which a draft-07
	// validator skips as an unknown keyword: the MCP TypeScript SDK's
	// client validates structuredContent with Ajv's draft-07 class and
	// would let two members through (e2e/conformance
	// TestTypeScriptSDKShapes).
	var both []any
	for i := 0; i < md.Oneofs().Len(); i++ {
		o := md.Oneofs().Get(i)
		if o.IsSynthetic() {
			continue
		}
		for j := 0; j < o.Fields().Len(); j++ {
			for k := j + 1; k < o.Fields().Len(); k++ {
				both = append(both, Schema{"required": []any{o.Fields().Get(j).TextName(), o.Fields().Get(k).TextName()}})
			}
		}
	}
	switch len(both) {
	case 0:
	case 1:
		s["not"] = both[0]
	default:
		s["not"] = Schema{"anyOf": both}
	}
	s["additionalProperties"] = g.output
	return s
}

func (g *schemaGen) field(f protoreflect.FieldDescriptor) Schema {
	switch {
	case f.IsMap():
		s := Schema{"type": "object", "additionalProperties": g.singular(f.MapValue())}
		// Map keys are JSON strings: an integer key in decimal, a bool
		// key true or false.
		switch f.MapKey().Kind() {
		case protoreflect.BoolKind:
			s["propertyNames"] = Schema{"enum": []any{"true", "false"}}
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
			protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			s["propertyNames"] = Schema{"pattern": `^-?[0-9]+$`}
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			s["propertyNames"] = Schema{"pattern": `^[0-9]+$`}
		}
		return s
	case f.IsList():
		return Schema{"type": "array", "items": g.singular(f)}
	}
	s := g.singular(f)
	if g.output && (isMessage(f) || f.HasPresence() && f.ContainingOneof() == nil) {
		// A response written by MarshalOutput holds every field, and an
		// unset field with explicit presence outside a oneof is null: a
		// message field (a timestamp the backend did not set), a proto2
		// optional scalar, a scalar of an editions file (explicit
		// presence by default, features.field_presence). The schema
		// allows it, so that a client validating structuredContent
		// against it (MCP's outputSchema) accepts it.
		s = nullable(s)
	}
	return s
}

// nullable is s that also admits null.
func nullable(s Schema) Schema {
	switch t := s["type"].(type) {
	case string:
		if t != "null" {
			s["type"] = []any{t, "null"}
		}
		return s
	case []any:
		for _, x := range t {
			if x == "null" {
				return s
			}
		}
		s["type"] = append(t, "null")
		return s
	case nil:
		if len(s) == 0 {
			return s // anything, null included
		}
	}
	if alts, ok := s["anyOf"].([]any); ok {
		s["anyOf"] = append(alts, Schema{"type": "null"})
		return s
	}
	return Schema{"anyOf": []any{s, Schema{"type": "null"}}}
}

// maxFloat32JSON is math.MaxFloat32 as protojson writes it (shortest
// form that reads back as the same float32).
const maxFloat32JSON = 3.4028235e+38

// Patterns of the proto3 JSON strings, as protojson parses them.
const (
	int64Pattern  = `^-?(0|[1-9][0-9]*)$`
	uint64Pattern = `^(0|[1-9][0-9]*)$`
	// Standard or URL-safe base64, padded or not (protojson takes either
	// alphabet, not both in one value).
	base64Pattern = `^((?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?|(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}(?:==)?|[A-Za-z0-9_-]{3}=?)?)$`
	// RFC 3339 with an upper-case T and Z, a numeric offset hh:mm and at
	// most nine fractional digits (time.RFC3339Nano, protojson's check),
	// in the Timestamp's range: the years 0001 to 9999 (protojson refuses
	// the year 0000: before 0001-01-01T00:00:00Z), months 01-12, days
	// 01-29, 30 but in February, 31 in the months that have it, hours
	// 00-23, minutes and seconds 00-59 (no leap second: Go refuses 60),
	// offsets -23:59 to +23:59 (RFC 3339 §5.6; Go also takes up to 24:60).
	// Two refusals a readable pattern cannot spell are left to format
	// date-time and named in docs/reference/actions.md: February 29 of a
	// year that is not a leap year (RFC 3339 §5.7), and an offset that
	// moves 0001-01-01 or 9999-12-31 out of the range
	// ("0001-01-01T00:00:00+01:00" is 0000-12-31T23:00:00Z).
	// Tested against protojson: TestTimestampPatternIsTheAPIs.
	timestampPattern = `^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-9])|(0[13-9]|1[0-2])-30|(0[13578]|1[02])-31)T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`
	// Seconds with an optional sign and at most nine fractional digits,
	// "s" last: "1.5s", "-0.25s", "+3s", ".5s" (protojson's parseDuration),
	// the whole seconds at most 315576000000 (10 000 years, the
	// Duration's range; any fraction after it: protojson bounds the
	// seconds): 0 and up to 11 digits, or 12 digits of at most
	// 315576000000, spelled digit by digit. Tested against protojson:
	// TestDurationPatternIsTheAPIs.
	durationPattern = `^[-+]?((0|[1-9][0-9]{0,10}|[12][0-9]{11}|30[0-9]{10}|31[0-4][0-9]{9}|315[0-4][0-9]{8}|3155[0-6][0-9]{7}|31557[0-5][0-9]{6}|315576000000)(\.[0-9]{0,9})?|\.[0-9]{0,9})s$`
	// Comma-separated paths of lowerCamelCase names joined by dots; the
	// empty string is the empty mask.
	fieldMaskPattern = `^([A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*(,[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*)*)?$`
)

// wellKnownJSON reports whether message type n has a JSON form of its own
// in the proto3 JSON mapping (not an object of its fields).
func wellKnownJSON(n protoreflect.FullName) bool {
	switch n {
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
		"google.protobuf.Any", "google.protobuf.Empty":
		return true
	}
	return scalarMessage(n)
}

func (g *schemaGen) singular(f protoreflect.FieldDescriptor) Schema {
	if isMessage(f) {
		return g.messageType(f.Message())
	}
	return g.scalar(f.Kind(), f.Enum())
}

func (g *schemaGen) scalar(k protoreflect.Kind, enum protoreflect.EnumDescriptor) Schema {
	switch k {
	case protoreflect.BoolKind:
		return Schema{"type": "boolean"}
	case protoreflect.StringKind:
		return Schema{"type": "string"}
	case protoreflect.BytesKind:
		return Schema{"type": "string", "contentEncoding": "base64", "pattern": base64Pattern}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return Schema{"type": "integer", "format": "int32", "minimum": math.MinInt32, "maximum": math.MaxInt32}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		// "uint32" is the OpenAPI Format Registry's unsigned 32-bit
		// integer (https://spec.openapis.org/registry/format/uint32),
		// in the OpenAPI document only: minimum and maximum say the
		// same, and a JSON Schema validator need not know the format —
		// Ajv with ajv-formats, which the MCP TypeScript SDK's client
		// uses, logs "unknown format" for every such field when it
		// compiles an outputSchema, and refuses the schema in its
		// strict mode (e2e/conformance TestTypeScriptSDKShapes).
		s := Schema{"type": "integer", "minimum": 0, "maximum": uint64(math.MaxUint32)}
		if g.openapi {
			s["format"] = "uint32"
		}
		return s
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		// The proto3 JSON mapping writes 64-bit integers as decimal
		// strings (a JSON number loses precision past 2^53) and accepts
		// a number too.
		if g.output {
			return Schema{"type": "string", "pattern": int64Pattern, "format": "int64"}
		}
		return Schema{"type": []any{"string", "integer"}, "pattern": int64Pattern, "format": "int64",
			"minimum": int64(math.MinInt64), "maximum": int64(math.MaxInt64)}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		// "uint64" in the OpenAPI document only, as uint32.
		s := Schema{"type": "string", "pattern": uint64Pattern}
		if !g.output {
			s = Schema{"type": []any{"string", "integer"}, "pattern": uint64Pattern, "minimum": 0, "maximum": uint64(math.MaxUint64)}
		}
		if g.openapi {
			s["format"] = "uint64"
		}
		return s
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		// NaN and the infinities are the strings "NaN", "Infinity" and
		// "-Infinity"; a float out of its range is refused.
		num := Schema{"type": "number", "format": "double", "minimum": -math.MaxFloat64, "maximum": math.MaxFloat64}
		if k == protoreflect.FloatKind {
			// protojson writes a float in its shortest 32-bit form:
			// ±MaxFloat32 is ±3.4028235e+38, above MaxFloat32 as a
			// float64 (3.4028234663852886e+38), and reads it back
			// (strconv.ParseFloat rounds to 32 bits). The bounds are
			// that written form.
			num = Schema{"type": "number", "format": "float", "minimum": -maxFloat32JSON, "maximum": maxFloat32JSON}
		}
		return Schema{"anyOf": []any{num, Schema{"type": "string", "enum": []any{"NaN", "Infinity", "-Infinity"}}}}
	case protoreflect.EnumKind:
		if enum.FullName() == "google.protobuf.NullValue" {
			return Schema{"type": "null"}
		}
		var names []any
		for i := 0; i < enum.Values().Len(); i++ {
			names = append(names, string(enum.Values().Get(i).Name()))
		}
		s := Schema{"type": "string", "enum": names}
		if g.output {
			// A value the enum does not name (a backend built with a
			// newer version of it) is written as its number.
			return Schema{"anyOf": []any{s, Schema{"type": "integer", "format": "int32"}}}
		}
		return s
	}
	return Schema{}
}

// messageType is the schema of a value of message type md (a field's,
// a list's element, a map's value), never null.
func (g *schemaGen) messageType(md protoreflect.MessageDescriptor) Schema {
	n := md.FullName()
	if k, ok := wrapperKinds[n]; ok {
		return g.scalar(k, nil)
	}
	switch n {
	case "google.protobuf.Timestamp":
		return Schema{"type": "string", "format": "date-time", "pattern": timestampPattern}
	case "google.protobuf.Duration":
		return Schema{"type": "string", "pattern": durationPattern}
	case "google.protobuf.FieldMask":
		return Schema{"type": "string", "pattern": fieldMaskPattern}
	case "google.protobuf.Struct":
		return Schema{"type": "object"}
	case "google.protobuf.ListValue":
		return Schema{"type": "array"}
	case "google.protobuf.Value":
		return Schema{} // any JSON value
	case "google.protobuf.Any":
		// {"@type": "type.googleapis.com/<message>", <its fields>…}, or
		// {"@type": …, "value": <its JSON>} for a well-known type; {} is
		// an empty Any.
		return Schema{"type": "object", "properties": Schema{"@type": Schema{"type": "string"}},
			"anyOf": []any{Schema{"required": []any{"@type"}}, Schema{"maxProperties": 0}}}
	case "google.protobuf.Empty":
		return Schema{"type": "object", "additionalProperties": false}
	}
	return g.messageRef(md)
}

func isMessage(f protoreflect.FieldDescriptor) bool {
	return f.Kind() == protoreflect.MessageKind || f.Kind() == protoreflect.GroupKind
}

// scalarMessage reports whether the proto3 JSON form of message type n
// is a JSON scalar: such a field may be a path or query parameter.
func scalarMessage(n protoreflect.FullName) bool {
	switch n {
	case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask":
		return true
	}
	_, ok := wrapperKinds[n]
	return ok
}

// wrapperKinds are the wrapper types (google/protobuf/wrappers.proto):
// their JSON form is their value's.
var wrapperKinds = map[protoreflect.FullName]protoreflect.Kind{
	"google.protobuf.DoubleValue": protoreflect.DoubleKind, "google.protobuf.FloatValue": protoreflect.FloatKind,
	"google.protobuf.Int64Value": protoreflect.Int64Kind, "google.protobuf.UInt64Value": protoreflect.Uint64Kind,
	"google.protobuf.Int32Value": protoreflect.Int32Kind, "google.protobuf.UInt32Value": protoreflect.Uint32Kind,
	"google.protobuf.BoolValue": protoreflect.BoolKind, "google.protobuf.StringValue": protoreflect.StringKind,
	"google.protobuf.BytesValue": protoreflect.BytesKind,
}
