package registry

import (
	"regexp"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// An integer field's value in a JSON text (a body, a tool's arguments)
// is a JSON number with no fractional part — 1e3 and 1.0 are, as JSON
// Schema's "integer" admits them (JSON Schema Validation 2020-12 section
// 6.1.1) — or a string of decimal digits: the pattern a 64-bit integer's
// schema gives (int64Pattern, uint64Pattern), and a 32-bit integer's
// string, which the proto3 JSON mapping takes and the schema does not
// offer. protojson also takes a string holding any integral JSON number
// ("1e3", "1.0") for every integer kind, which no schema admits: it
// accepted {"id": "1e3"} and acted on 1000, as a path parameter "1e3" did
// (IntegerParamPattern). badIntegerString finds such a string after
// protojson took the text.

// intKind is what an integer field's string must match.
type intKind int

const (
	notInt   intKind = iota
	signed           // int64Pattern
	unsigned         // uint64Pattern
)

func intKindOf(k protoreflect.Kind) intKind {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return signed
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return unsigned
	}
	return notInt
}

// intKindOfField is what a string value of field f (an element or a map
// value: jsonSlot's leaf) must match: its integer kind, or a wrapper's.
func intKindOfField(f protoreflect.FieldDescriptor) intKind {
	if md := f.Message(); md != nil {
		if k, ok := wrapperKinds[md.FullName()]; ok {
			return intKindOf(k)
		}
		return notInt
	}
	return intKindOf(f.Kind())
}

// mayHoldIntString reports whether JSON text b may hold a string that
// protojson takes for an integer and badIntegerString refuses: one that
// starts as a JSON number with a fraction or an exponent ("1.0", "1e3"),
// "-0" (an unsigned integer's), or any string with a \u escape (which
// protojson reads before the number). protojson refuses every other
// string that is not decimal digits ("+1", " 1", "05"). A text without one
// is not walked, and the walk (a token at a time) is rare.
var mayHoldIntString = regexp.MustCompile(`"-?[0-9]+[.eE]|"-0"|\\u`).Match

// badIntegerString finds the first string of JSON text b (a request of md
// that protojson accepted) standing for an integer field's value, a list
// element or a map value of one, that is not decimal digits: its
// path (as fieldAt writes it), what the schema wants, and the offset where
// it starts. One walk, O(len(b)), and none for a text without a string
// that may be one (mayHoldIntString).
func badIntegerString(md protoreflect.MessageDescriptor, b []byte) (path, problem string, start int, found bool) {
	if !mayHoldIntString(b) {
		return "", "", 0, false
	}
	leaf, path, v, start, found := firstBadString(md, b, func(leaf protoreflect.FieldDescriptor, v string) bool {
		k := intKindOfField(leaf)
		return k != notInt && intStringProblem(k, v) != ""
	})
	if !found {
		return "", "", 0, false
	}
	return path, intStringProblem(intKindOfField(leaf), v), start, true
}

// intStringProblem says what an integer of kind k wants instead of string
// v, or "" when v is decimal digits its pattern admits.
func intStringProblem(k intKind, v string) string {
	got := ", got " + strconv.Quote(v)
	switch k {
	case signed:
		if !int64RE.MatchString(v) {
			return `want an integer as a JSON number, or as a string of decimal digits such as "-5"` + got
		}
	case unsigned:
		if !uint64RE.MatchString(v) {
			return `want a non-negative integer as a JSON number, or as a string of decimal digits such as "1000"` + got
		}
	}
	return ""
}
