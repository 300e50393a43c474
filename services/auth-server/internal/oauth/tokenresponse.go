package oauth

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/ory/fosite"
)

// writeAccessResponse answers a successful token request (RFC 6749 §5.1)
// exactly as fosite's WriteAccessResponse does — Cache-Control: no-store,
// Pragma: no-cache, Content-Type: application/json;charset=UTF-8 and
// json.Marshal(resp.ToMap()): the members in the order of their names,
// strings escaped as encoding/json escapes them — without reflecting over
// a map: the members of a token response (access_token, token_type,
// expires_in, scope, refresh_token, id_token) are strings and integers,
// appended directly; a value of any other type, or a string with a byte
// encoding/json would escape, is encoded by encoding/json itself, so the
// bytes are the same either way (TestWriteAccessResponseAsFosite).
func writeAccessResponse(w http.ResponseWriter, resp fosite.AccessResponder) {
	h := w.Header()
	h["Cache-Control"] = []string{"no-store"} // Set, with the keys canonical already
	h["Pragma"] = []string{"no-cache"}
	buf := responseBuffers.Get().(*[]byte)
	defer responseBuffers.Put(buf)
	js, err := appendAccessResponse((*buf)[:0], resp.ToMap())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError) // as fosite
		return
	}
	*buf = js
	h["Content-Type"] = []string{"application/json;charset=UTF-8"}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(js) // copied: net/http buffers what it is given
}

// jsonPlain marks the bytes encoding/json writes as they are in a string:
// printable ASCII but '"', '\\', '<', '>' and '&'.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// responseBuffers hold token responses while they are written (1–3 KB:
// access and ID token); a buffer is reused once Write returns.
var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// appendAccessResponse appends m as json.Marshal would encode it.
func appendAccessResponse(buf []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		var err error
		if buf, err = appendJSONString(buf, k); err != nil {
			return nil, err
		}
		buf = append(buf, ':')
		switch v := m[k].(type) {
		case string:
			buf, err = appendJSONString(buf, v)
		case int64:
			buf = strconv.AppendInt(buf, v, 10)
		case int:
			buf = strconv.AppendInt(buf, int64(v), 10)
		default:
			var raw []byte
			if raw, err = json.Marshal(v); err == nil {
				buf = append(buf, raw...)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

// appendJSONString appends s quoted; strings with a byte encoding/json
// would escape (controls, '"', '\\', '<', '>', '&', non-ASCII) go through
// encoding/json.
//
// The check reads eight bytes at a time, its tests written out in the
// loop (in a function, a call per word cost more than it saved: session
// 38 "perf10b"), then the rest one table lookup a byte: a response's tokens
// are 1.5–3 KB, and the table alone was ~7 instructions a byte
// (docs/benchmarks/auth-server-history.md, sessions 11 "codecut" and 40
// "perf12").
func appendJSONString(buf []byte, s string) ([]byte, error) {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8] // one bounds check; the loads combine into one
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		// A lane's high bit is set in t if that byte may need escaping,
		// and in some lane whenever one does: a byte below 0x20; 0x7f or
		// above; '\\'; '<' or '>' (0x3c, 0x3e: equal once bit 1 is set);
		// '"' or '&' (0x22, 0x26: equal once bit 2 is set). (v-ones)&^v
		// has a lane's high bit set when some lane of v is zero.
		t := (x - 0x20*ones) &^ x
		t |= (x + ones) | x
		v := x ^ (0x5c * ones)
		t |= (v - ones) &^ v
		v = (x | 0x02*ones) ^ (0x3e * ones)
		t |= (v - ones) &^ v
		v = (x | 0x04*ones) ^ (0x26 * ones)
		t |= (v - ones) &^ v
		if t&high != 0 {
			return appendJSONEscaped(buf, s)
		}
	}
	for ; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			return appendJSONEscaped(buf, s)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"'), nil
}

// appendJSONEscaped appends s as encoding/json encodes it.
func appendJSONEscaped(buf []byte, s string) ([]byte, error) {
	raw, err := json.Marshal(s)
	return append(buf, raw...), err
}
