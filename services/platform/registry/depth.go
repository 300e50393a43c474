package registry

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxMessageDepth bounds how deeply messages nest in a request decoded
// from JSON (protojson's RecursionLimit: each message it decodes counts
// one level, a google.protobuf.Value included). In the binary form the
// backend decodes (and the connector decodes again from a backend that
// echoes the request) one such level is at most three messages: a JSON
// object in a Struct or Value is Value → Struct → map entry, a JSON
// array in a Value is Value → ListValue, a map of messages is entry →
// message. So a request this deep is at most 3 × 3,333 = 9,999 messages
// deep, within protobuf's binary limit of 10,000
// (protowire.DefaultRecursionLimit) for any schema, and a deeper one is
// the caller's 400, not the backend's "exceeded maximum recursion depth"
// answered as a 500 (brk50a #1).
const maxMessageDepth = protowire.DefaultRecursionLimit / 3

// maxAnyDepth bounds how many google.protobuf.Any values nest in one
// another in a request decoded from JSON. protojson decodes each Any by
// encoding everything inside it to bytes (and reading all of its object
// first to find "@type"), so Anys nested n deep cost O(n²) in the body's
// size: 1,050 levels in 63 KB took 1.2 s of CPU (brk50a #3). With at most
// maxAnyDepth levels the work is at most maxAnyDepth times the body's.
// protojson's own depth limit does not count an Any holding an Any.
const maxAnyDepth = 8

// hasAny reports whether a message of d is or can hold a
// google.protobuf.Any, at any depth (reachesField).
func hasAny(d protoreflect.MessageDescriptor) bool {
	return d.FullName() == anyName || reachesField(d, func(f protoreflect.FieldDescriptor) bool {
		md := f.Message()
		return md != nil && md.FullName() == anyName
	}, nil)
}

const anyName = "google.protobuf.Any"

// tooDeep is the refusal of JSON b that protojson found nested deeper than
// maxMessageDepth: it names the member nested deepest (the first of them),
// as the other refusals name a field, with its position in a body.
func tooDeep(b []byte, text jsonText) string {
	path, start := deepest(b)
	out := "invalid arguments: "
	if path != "" {
		out += "field " + path + ": "
	}
	out += fmt.Sprintf("nested too deep: messages may nest at most %d deep (about as many levels of JSON objects and arrays)", maxMessageDepth)
	if text == bodyText {
		line, col := position(b, start)
		out += fmt.Sprintf(" (at line %d, column %d of the body)", line, col)
	}
	return out
}

// deepest is the path of the first member name or value of JSON b nested
// deepest, and its offset, found in two walks linear in b (building each
// deeper token's path as it is found would cost O(depth²)).
func deepest(b []byte) (path string, start int) {
	n, most, at := 0, 0, 0
	walkJSONTokens(b, func(stack []jsonFrame, _ json.Token, _ bool, _, _ int) bool {
		n++
		if len(stack) > most {
			most, at = len(stack), n
		}
		return true
	}, nil)
	walkJSON(b, func(p func() string, s, _ int) bool {
		if at--; at > 0 {
			return true
		}
		path, start = shortPath(p()), s
		return false
	})
	return path, start
}

// anyTooDeep is the refusal of JSON b that holds more than maxAnyDepth
// google.protobuf.Any values nested in one another, or "": one walk of b,
// before protojson's decoding, whose work such nesting makes quadratic.
// An Any is a JSON object with an "@type" member, wherever that member is
// in it (so an object of a Struct with one counts too: the caller checks
// only a request that can hold an Any, hasAny).
func anyTooDeep(b []byte, text jsonText) string {
	// frames parallels the walk's open containers: whether each is an
	// Any, and the most Anys nested in one another in what it holds.
	type frame struct {
		isAny   bool
		inside  int
		ordinal int // its opening's count among the containers of b
	}
	// The walk visits no top-level value: its container (if b is one)
	// is frames[0], opened 0th.
	frames := []frame{{}}
	opened, bad := 1, -1
	closed := func(int) {
		f := frames[len(frames)-1]
		frames = frames[:len(frames)-1]
		n := f.inside
		if f.isAny {
			n++
		}
		if n > maxAnyDepth && bad < 0 {
			bad = f.ordinal
		}
		if len(frames) > 0 {
			frames[len(frames)-1].inside = max(frames[len(frames)-1].inside, n)
		}
	}
	walkJSONTokens(b, func(_ []jsonFrame, tok json.Token, name bool, _, _ int) bool {
		switch {
		case name && tok == "@type" && len(frames) > 0:
			frames[len(frames)-1].isAny = true
		case !name && (tok == json.Delim('{') || tok == json.Delim('[')):
			frames = append(frames, frame{ordinal: opened})
			opened++
		}
		return true
	}, closed)
	// Not JSON after some point (protojson refuses it, and at the first
	// Any that holds the error, as it reads each Any's object whole
	// first): what was read is counted as if closed there.
	for len(frames) > 0 {
		closed(len(frames) - 1)
	}
	if bad < 0 {
		return ""
	}
	// A second walk names the Any: the container opened bad-th (the
	// 0th, the whole of b, has no name).
	path, start := "", 0
	if bad > 0 {
		walkJSONTokens(b, func(stack []jsonFrame, tok json.Token, name bool, s, _ int) bool {
			if name || (tok != json.Delim('{') && tok != json.Delim('[')) {
				return true
			}
			if bad--; bad > 0 {
				return true
			}
			path, start = shortPath(jsonPath(stack)), s
			return false
		}, nil)
	}
	out := "invalid arguments: "
	if path != "" {
		out += "field " + path + ": "
	}
	out += fmt.Sprintf("google.protobuf.Any values nested more than %d deep (an Any holding an Any holding an Any…): at most %d are accepted", maxAnyDepth, maxAnyDepth)
	if text == bodyText {
		line, col := position(b, start)
		out += fmt.Sprintf(" (at line %d, column %d of the body)", line, col)
	}
	return out
}
