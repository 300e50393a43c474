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
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	buf := responseBuffers.Get().(*[]byte)
	defer responseBuffers.Put(buf)
	js, err := appendAccessResponse((*buf)[:0], resp.ToMap())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError) // as fosite
		return
	}
	*buf = js
	h.Set("Content-Type", "application/json;charset=UTF-8")
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
// The check is one table lookup per byte: a response's tokens are 2–3 KB,
// and a chain of comparisons per byte was ~17 instructions a byte, ~40,000
// per code grant (docs/benchmarks/auth-server-history.md, session 11 "codecut").
func appendJSONString(buf []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			raw, err := json.Marshal(s)
			return append(buf, raw...), err
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"'), nil
}
