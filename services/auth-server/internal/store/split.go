package store

import "strings"

// splitLast splits a JSON object whose last member is key — as
// encoding/json writes the stored request (record, whose Session is its
// last field) — into the object without that member and the member's
// value, without decoding either. ok is false when the object is not in that form (no such
// top-level member, or one that is not last, or whitespace between tokens);
// callers then decode the whole object as before.
//
// It exists for speed: encoding/json scans a document twice (validation,
// then decoding) and copies a json.RawMessage, so decoding a record with
// its session as raw JSON scanned the session — most of the record — two
// extra times; a code grant read four such records
// (docs/benchmarks/auth-server-history.md, session "authcpu").
// This scan only tracks strings and nesting: the session is validated
// where it is decoded. key is the member's name with its quotes and colon,
// as `"session":`.
func splitLast(obj, key string) (rest []byte, value string, ok bool) {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return nil, "", false
	}
	depth := 0
	at := -1 // index of the comma before key at depth 1
	for i := 0; i < len(obj); i++ {
		switch obj[i] {
		case '"':
			// Skip the string: to the next quote not escaped by an odd
			// number of backslashes (IndexByte is vectorised; strings are
			// most of the bytes).
			for {
				j := strings.IndexByte(obj[i+1:], '"')
				if j < 0 {
					return nil, "", false // unterminated
				}
				i += 1 + j
				n := 0
				for k := i - 1; obj[k] == '\\'; k-- {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			if depth != 1 {
				continue
			}
			if at >= 0 {
				return nil, "", false // a member after key: key is not last
			}
			if strings.HasPrefix(obj[i+1:], key) {
				at = i
			}
		case ' ', '\t', '\n', '\r':
			return nil, "", false // not encoding/json's compact form
		}
	}
	if at < 0 || depth != 0 {
		return nil, "", false
	}
	rest = make([]byte, at+1)
	copy(rest, obj[:at])
	rest[at] = '}'
	return rest, obj[at+1+len(key) : len(obj)-1], true
}
