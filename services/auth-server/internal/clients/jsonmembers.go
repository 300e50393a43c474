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

// DecodeMembers decodes the JSON object raw into dst member by member,
// each into the field that fields gives for exactly its name (RFC 7591 §2
// names are case-sensitive; encoding/json alone would also fill
// redirect_uris from "REDIRECT_URIS"). A member fields does not name is
// ignored (RFC 7591 §3.1). The error is ErrNotObject when raw is no JSON
// object, or a *MemberError naming the member whose value does not decode.
func DecodeMembers[T any](raw []byte, dst *T, fields map[string]func(*T) any) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return ErrNotObject
	}
	for name, v := range members {
		field, ok := fields[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, field(dst)); err != nil {
			return &MemberError{Name: name, Err: err}
		}
	}
	return nil
}

// ErrNotObject is a JSON document that is no object.
var ErrNotObject = errors.New("not a JSON object")

// MemberError is a member whose value does not decode into its field.
type MemberError struct {
	Name string
	Err  error
}

func (e *MemberError) Error() string { return "member " + e.Name + ": " + e.Err.Error() }
func (e *MemberError) Unwrap() error { return e.Err }
