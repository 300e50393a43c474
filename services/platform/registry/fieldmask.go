package registry

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// A FieldMask's JSON form (the proto3 JSON mapping, and the input schema's
// fieldMaskPattern) is its paths in lowerCamelCase joined by commas, with
// nothing around them. protojson takes more: it trims white space
// (strings.TrimSpace) from the whole value before splitting it, so " a,b "
// or "\ta" decoded as the mask a,b where the published schema refuses the
// value. The decoder and the schema agree by refusing such a value here,
// after protojson has accepted the text (any other difference is
// protojson's own refusal: a path it refuses is one the pattern refuses).

// fieldMaskRE is fieldMaskPattern, compiled.
var fieldMaskRE = regexp.MustCompile(fieldMaskPattern)

const fieldMaskName protoreflect.FullName = "google.protobuf.FieldMask"

// hasFieldMask reports whether a JSON text of d can hold a FieldMask
// value that its schema constrains: a field, list element or map value at
// any depth, not inside an Any, Struct or Value (whose schema says nothing
// of a FieldMask in them).
func hasFieldMask(d protoreflect.MessageDescriptor) bool {
	return reachesField(d,
		func(f protoreflect.FieldDescriptor) bool {
			md := f.Message()
			return md != nil && md.FullName() == fieldMaskName
		},
		func(md protoreflect.MessageDescriptor) bool { return !wellKnownJSON(md.FullName()) })
}

// A Timestamp's JSON form is what timestampPattern (the schema's)
// admits; protojson (Go's time parser) also takes a one-digit hour
// ("2024-01-02T3:04:05Z") and offsets to 24:60. badMask refuses those too,
// in a body or a tool's arguments, as DecodeQuery does in a parameter
// (timestampParamRefused).

const timestampName protoreflect.FullName = "google.protobuf.Timestamp"

// hasTimestamp reports whether a JSON text of d can hold a Timestamp
// value that its schema constrains (as hasFieldMask).
func hasTimestamp(d protoreflect.MessageDescriptor) bool {
	return reachesField(d,
		func(f protoreflect.FieldDescriptor) bool {
			md := f.Message()
			return md != nil && md.FullName() == timestampName
		},
		func(md protoreflect.MessageDescriptor) bool { return !wellKnownJSON(md.FullName()) })
}

// mayHoldBadTimestamp reports whether JSON text b may hold a Timestamp
// protojson takes and timestampPattern refuses: a one-digit hour
// ("T3:"), an offset hour 24 or minute 60, or any \u escape (which
// protojson reads first). A text without one is not walked for
// Timestamps: the walk (a token at a time) is rare.
var mayHoldBadTimestamp = regexp.MustCompile(`T[0-9]:|[+-]24:|:60"|\\u`).Match

// jsonSlot is what a JSON value being walked is to the request: a message
// (md), a repeated or map field's whole array or object (whole), one value
// of field leaf that is no message of its own in JSON (a scalar, a
// well-known type: a list's element or a map's value), or nothing the
// request's schema describes (all zero: inside a Struct, an Any…).
type jsonSlot struct {
	md    protoreflect.MessageDescriptor
	whole protoreflect.FieldDescriptor
	leaf  protoreflect.FieldDescriptor
}

// jsonSlotOf is the slot of the value of field f: its whole list or map,
// or (elem) one element or map value of it.
func jsonSlotOf(f protoreflect.FieldDescriptor, elem bool) jsonSlot {
	if f == nil {
		return jsonSlot{}
	}
	if !elem && (f.IsList() || f.IsMap()) {
		return jsonSlot{whole: f}
	}
	if f.IsMap() {
		f = f.MapValue()
	}
	if md := f.Message(); md != nil && !wellKnownJSON(md.FullName()) {
		return jsonSlot{md: md}
	}
	return jsonSlot{leaf: f}
}

// firstBadString finds the first string of JSON text b (a request of md
// that protojson accepted) that is a value of a field (jsonSlot's leaf)
// which refuse refuses: the field, its path (as fieldAt writes it), the
// string and the offset where it starts. One walk, O(len(b)).
func firstBadString(md protoreflect.MessageDescriptor, b []byte, refuse func(leaf protoreflect.FieldDescriptor, v string) bool) (leaf protoreflect.FieldDescriptor, path, value string, start int, found bool) {
	slots := []jsonSlot{}
	pending := jsonSlot{md: md} // the root object's
	walkJSONTokens(b, func(stack []jsonFrame, tok json.Token, name bool, s, _ int) bool {
		if len(stack) > len(slots) { // the container opened since the last visit
			slots = append(slots, pending)
		}
		if name {
			return true
		}
		top, frame := slots[len(slots)-1], stack[len(stack)-1]
		var slot jsonSlot
		switch {
		case top.md != nil && frame.object:
			f := top.md.Fields().ByJSONName(frame.key)
			if f == nil {
				f = top.md.Fields().ByTextName(frame.key)
			}
			slot = jsonSlotOf(f, false)
		case top.whole != nil && frame.object == top.whole.IsMap():
			slot = jsonSlotOf(top.whole, true)
		}
		if v, ok := tok.(string); ok && slot.leaf != nil && refuse(slot.leaf, v) {
			leaf, path, value, start, found = slot.leaf, shortPath(jsonPath(stack)), v, s, true
			return false
		}
		pending = slot
		return true
	}, func(depth int) {
		slots = slots[:min(len(slots), depth)]
	})
	return leaf, path, value, start, found
}

// messageName is the full name of field f's message type, "" for a
// scalar.
func messageName(f protoreflect.FieldDescriptor) protoreflect.FullName {
	if md := f.Message(); md != nil {
		return md.FullName()
	}
	return ""
}

// badMask finds the first FieldMask value of JSON text b (a request of md
// that protojson accepted) that fieldMaskPattern refuses, or Timestamp
// value that timestampPattern refuses (stamp): its path (as fieldAt
// writes it), its value and the offset where it starts.
func badMask(md protoreflect.MessageDescriptor, b []byte) (path, value string, start int, stamp, found bool) {
	leaf, path, value, start, found := firstBadString(md, b, func(leaf protoreflect.FieldDescriptor, v string) bool {
		switch messageName(leaf) {
		case fieldMaskName:
			return !fieldMaskRE.MatchString(v)
		case timestampName:
			return !timestampRE.MatchString(v)
		}
		return false
	})
	return path, value, start, found && messageName(leaf) == timestampName, found
}

// maskProblem says what is wrong with FieldMask value v that
// fieldMaskPattern refuses, as decodeError words protojson's refusals:
// the first path of it the pattern refuses.
func maskProblem(v string) string {
	if strings.TrimSpace(v) == "" {
		return "want " + wantWellKnown("FieldMask", false) + ", got " + strconv.Quote(v) + ` (only white space; "" is the empty mask)`
	}
	for p := range strings.SplitSeq(v, ",") {
		if !fieldPathRE.MatchString(p) || strings.Contains(p, "_") {
			return "want " + wantWellKnown("FieldMask", false) + ", got " + maskPath(strconv.Quote(p))
		}
	}
	return "want " + wantWellKnown("FieldMask", false) + ", got " + strconv.Quote(v)
}

// position is offset off of b as protojson gives positions: line and
// column, both from 1, the column counted in runes.
func position(b []byte, off int) (line, col int) {
	before := b[:off]
	line = 1 + strings.Count(string(before), "\n")
	if i := strings.LastIndexByte(string(before), '\n'); i >= 0 {
		before = before[i+1:]
	}
	return line, utf8.RuneCount(before) + 1
}
