package registry

import (
	"regexp"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
)

var (
	int64RE  = regexp.MustCompile(int64Pattern)
	uint64RE = regexp.MustCompile(uint64Pattern)
)

// IntegerParamPattern is the pattern, a Go regexp and an ECMA-262 one
// alike, of the text a path or query parameter of field f takes when f
// holds an integer (any of protobuf's ten integer kinds, or a wrapper of
// one: Int32Value, UInt32Value, Int64Value, UInt64Value): decimal digits
// without a leading zero, after a "-" when the kind is signed — the
// int64/uint64 schemas' pattern (schema.go). ok is false for any other
// field, a repeated or map one included.
//
// The proto3 JSON mapping also takes an integral number in other forms
// ("1e3", "1.0", and for a 32-bit integer a JSON number as it stands);
// a parameter does not (DecodeQuery): ChatGPT shows the parameter as
// sent when it asks the user to confirm a consequential call, and
// "DELETE …/1e3" acted on note 1000.
func IntegerParamPattern(f protoreflect.FieldDescriptor) (pattern string, ok bool) {
	if f.IsList() || f.IsMap() {
		return "", false
	}
	k := f.Kind()
	if isMessage(f) {
		w, isWrapper := wrapperKinds[f.Message().FullName()]
		if !isWrapper {
			return "", false
		}
		k = w
	}
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return int64Pattern, true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return uint64Pattern, true
	}
	return "", false
}

// integerParamProblem is what an integer parameter value v of field f
// the pattern refuses should have been ("" when v matches it, or f holds
// no integer); a value in the pattern but out of the kind's range is
// protojson's to refuse, with the range (queryProblem).
func integerParamProblem(f protoreflect.FieldDescriptor, v string) string {
	p, ok := IntegerParamPattern(f)
	if !ok {
		return ""
	}
	re := int64RE
	want := `an integer in decimal digits, such as "1000" or "-5"`
	if p == uint64Pattern {
		re = uint64RE
		want = `a non-negative integer in decimal digits, such as "1000"`
	}
	if re.MatchString(v) {
		return ""
	}
	return "want " + want + ", got " + strconv.Quote(v)
}
