package gateway

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// unescapeHTML turns encoding/json's HTML escapes back into the characters
// and nothing else: the text decodes to the same value, an escaped
// backslash followed by "u003c" stays text, and U+2028 stays escaped. Cut
// into Writes anywhere, unescapingWriter writes the same bytes.
func TestUnescapeHTML(t *testing.T) {
	values := []any{
		map[string]any{"a": "<b>&amp;</b>", "b": `\u003c is text`, "c": `\\u003c`, "d": "\\\x01<", "e": "\u2028<\u2029", "f": "x>y&z", "g": "\\"},
		[]any{"<", ">", "&", `\`, `\\`, `\u0026`, "<<<\\<<<"},
		"plain",
		mcp.NewJSONRPCError(mcp.NewRequestId("<id>"), mcp.INVALID_PARAMS, "tool '<script>' not found", nil),
	}
	for _, v := range values {
		escaped, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got := unescapeHTML(append([]byte(nil), escaped...))
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		// mcp-go's Marshalers escape inside any encoder (RequestId's
		// json.Marshal): there only unescapeHTML unescapes.
		_, marshaler := v.(json.Marshaler)
		_, isMCP := v.(mcp.JSONRPCError)
		if isMCP || marshaler {
			if bytes.Contains(got, htmlEscape) || !bytes.Contains(got, []byte(`"<id>"`)) {
				t.Errorf("unescapeHTML(%s) = %s", escaped, got)
			}
		} else if !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Errorf("unescapeHTML(%s)\n got %s\nwant %s", escaped, got, want.Bytes())
		}
		var a, b any
		if json.Unmarshal(escaped, &a) != nil || json.Unmarshal(got, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("unescapeHTML(%s) = %s: not the same JSON value", escaped, got)
		}
		if m, err := marshalJSON(v); err != nil || !bytes.Equal(m, got) {
			t.Errorf("marshalJSON = %s, %v; want %s", m, err, got)
		}
		// The same text as a stream (an SSE event), cut at every place.
		event := append(append([]byte("event: message\ndata: "), escaped...), "\n\n"...)
		wantEvent := append(append([]byte("event: message\ndata: "), got...), "\n\n"...)
		for cut := 0; cut <= len(event); cut++ {
			for _, second := range []int{cut, min(cut+1, len(event)), min(cut+3, len(event))} {
				rec := httptest.NewRecorder()
				rec.Header().Set("Content-Type", "text/event-stream")
				u := newUnescapingWriter(rec)
				for _, part := range [][]byte{event[:cut], event[cut:second], event[second:]} {
					if n, err := u.Write(part); n != len(part) || err != nil {
						t.Fatalf("Write: %d, %v", n, err)
					}
				}
				// Whole, the event is unescaped; cut inside an escape, that
				// escape is kept: the same JSON value either way.
				out := rec.Body.Bytes()
				data, ok := bytes.CutPrefix(bytes.TrimSuffix(out, []byte("\n\n")), []byte("event: message\ndata: "))
				var c any
				if !ok || json.Unmarshal(data, &c) != nil || !reflect.DeepEqual(a, c) || len(out) > len(event) ||
					(cut == 0 && second == 0 && !bytes.Equal(out, wantEvent)) {
					t.Fatalf("cut at %d and %d:\n got %q\nwant %q", cut, second, out, wantEvent)
				}
			}
		}
	}
	// Not JSON (a plain-text error of mcp-go): written as it is.
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "text/plain")
	_, _ = newUnescapingWriter(rec).Write([]byte(`\u003c`))
	if rec.Body.String() != `\u003c` {
		t.Errorf("text/plain written as %q", rec.Body.String())
	}
	// An answer without HTML escapes goes through without a copy.
	if raceEnabled {
		return
	}
	rec = httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	u := newUnescapingWriter(rec)
	body := []byte(strings.Repeat(`{"jsonrpc":"2.0","id":1,"result":{"a":"b\"c"}}`, 20) + "\n")
	if n := testing.AllocsPerRun(100, func() { rec.Body.Reset(); _, _ = u.Write(body) }); n != 0 {
		t.Errorf("unescapingWriter allocates %v times for an answer without HTML escapes", n)
	}
}
