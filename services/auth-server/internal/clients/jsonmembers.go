package clients

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// DuplicateMember serves the readers of client metadata (a dynamic
// registration's body, a client id metadata document): RFC 8259 §4 leaves
// an object with a repeated member name to each parser (encoding/json
// keeps the last value, others the first or refuse), so a document read
// one way here could be read another way by whoever else reads it.
//
// DuplicateMember walks one JSON value and returns the first member name
// that repeats within an object, "" when none does; err is a syntax error,
// or trailing data after the value.
func DuplicateMember(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		names map[string]bool // nil for an array
		key   bool            // the next token of an object is a name
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", nil
		}
		if err != nil {
			return "", err
		}
		switch n := len(stack); {
		case tok == json.Delim('}'), tok == json.Delim(']'):
			stack = stack[:n-1] // a value (the object or array) ended
		case n > 0 && stack[n-1].names != nil && stack[n-1].key:
			name, _ := tok.(string)
			if stack[n-1].names[name] {
				return name, nil
			}
			stack[n-1].names[name] = true
			stack[n-1].key = false
			continue
		case tok == json.Delim('{'):
			stack = append(stack, frame{names: map[string]bool{}, key: true})
			continue
		case tok == json.Delim('['):
			stack = append(stack, frame{})
			continue
		}
		// A value ended: in an object, a name comes next.
		if n := len(stack); n > 0 && stack[n-1].names != nil {
			stack[n-1].key = true
		}
		if len(stack) == 0 && dec.More() {
			return "", ErrTrailingData
		}
	}
}

// ErrTrailingData is a JSON document with more after its value.
var ErrTrailingData = errors.New("trailing data after the JSON object")
