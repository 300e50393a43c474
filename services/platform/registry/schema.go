package registry

import (
	"math"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Schema is a JSON Schema (draft 2020-12, which OpenAPI 3.1 also uses) as
// a plain map, ready to encode.
type Schema = map[string]any

// InputSchema is the JSON Schema of the capability's request: an object
// that accepts no unknown properties.
func (c *Capability) InputSchema() Schema { return messageSchema(c.Method.Input(), false, 0) }

// OutputSchema is the JSON Schema of the capability's response as the
// connectors encode it (MarshalOutput): every scalar field is present, and
// a message field may be null (unset).
func (c *Capability) OutputSchema() Schema { return messageSchema(c.Method.Output(), true, 0) }

// maxDepth stops recursive message types from expanding forever.
const maxDepth = 8

func messageSchema(md protoreflect.MessageDescriptor, output bool, depth int) Schema {
	s := Schema{"type": "object"}
	if d := MessageDescription(md); d != "" {
		s["description"] = d
	}
	if depth >= maxDepth {
		return s
	}
	props := Schema{}
	var required []string
	for _, f := range fields(md) {
		fs := fieldSchema(f, output, depth)
		if d := FieldDescription(f); d != "" {
			fs["description"] = d
		}
		name := string(f.Name())
		props[name] = fs
		if output && (f.Kind() != protoreflect.MessageKind || f.IsList() || f.IsMap()) {
			required = append(required, name)
		}
	}
	s["properties"] = props
	if len(required) > 0 {
		s["required"] = required
	}
	s["additionalProperties"] = output
	return s
}

func fieldSchema(f protoreflect.FieldDescriptor, output bool, depth int) Schema {
	switch {
	case f.IsMap():
		return Schema{"type": "object", "additionalProperties": singularSchema(f.MapValue(), output, depth)}
	case f.IsList():
		return Schema{"type": "array", "items": singularSchema(f, output, depth)}
	}
	s := singularSchema(f, output, depth)
	if output && f.Kind() == protoreflect.MessageKind {
		// A response written by MarshalOutput holds every field, and an
		// unset message field (a timestamp the backend did not set) is
		// null: the schema allows it, so that a client validating
		// structuredContent against it (MCP's outputSchema) accepts it.
		if t, ok := s["type"].(string); ok {
			s["type"] = []any{t, "null"}
		}
	}
	return s
}

func singularSchema(f protoreflect.FieldDescriptor, output bool, depth int) Schema {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return Schema{"type": "boolean"}
	case protoreflect.StringKind:
		return Schema{"type": "string"}
	case protoreflect.BytesKind:
		return Schema{"type": "string", "contentEncoding": "base64"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return Schema{"type": "integer", "format": "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		// "uint32" is the OpenAPI Format Registry's unsigned 32-bit
		// integer (https://spec.openapis.org/registry/format/uint32);
		// minimum and maximum say the same to any JSON Schema validator,
		// which ignores formats it does not know.
		return Schema{"type": "integer", "format": "uint32", "minimum": 0, "maximum": uint64(math.MaxUint32)}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		// The proto3 JSON mapping writes 64-bit integers as decimal
		// strings (a JSON number loses precision past 2^53).
		return Schema{"type": "string", "pattern": "^-?[0-9]+$", "format": "int64"}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return Schema{"type": "string", "pattern": "^[0-9]+$", "format": "uint64"}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return Schema{"type": "number"}
	case protoreflect.EnumKind:
		var names []any
		for i := 0; i < f.Enum().Values().Len(); i++ {
			names = append(names, string(f.Enum().Values().Get(i).Name()))
		}
		return Schema{"type": "string", "enum": names}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch f.Message().FullName() {
		case "google.protobuf.Timestamp":
			return Schema{"type": "string", "format": "date-time"}
		case "google.protobuf.Duration":
			return Schema{"type": "string", "pattern": `^-?[0-9]+(\.[0-9]+)?s$`}
		}
		return messageSchema(f.Message(), output, depth+1)
	}
	return Schema{}
}
