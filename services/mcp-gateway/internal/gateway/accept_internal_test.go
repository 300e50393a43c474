package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// GET /mcp and /sse (getAcceptable: else 406) and POST /mcp (acceptsJSON:
// else 406) read Accept by RFC 9110 §12.5.1: a type's quality is that of
// the most specific range matching it, so an exact type with q=0 is
// refused even beside a wildcard. No Accept, an empty one and a plain
// wildcard are served.
func TestAcceptMostSpecificRangeWins(t *testing.T) {
	for _, c := range []struct {
		accept    []string
		get, post bool
	}{
		{nil, true, true},
		{[]string{""}, true, true},
		{[]string{"*/*"}, true, true},
		{[]string{"*/*;q=0.1"}, true, true},
		{[]string{"text/*"}, true, false}, // admits no JSON answer
		{[]string{"application/*"}, false, true},
		{[]string{"application/json"}, false, true},
		{[]string{"text/event-stream"}, true, false}, // ditto
		{[]string{"application/json, text/event-stream"}, true, true},
		{[]string{"text/html"}, false, false},
		{[]string{"*/*;q=0"}, false, false},
		// An exact type with q=0 beside a wildcard.
		{[]string{"text/event-stream;q=0, */*"}, false, true},
		{[]string{"text/event-stream;q=0", "*/*"}, false, true},
		{[]string{"text/event-stream;q=0, text/*"}, false, false}, // application/json is not text/*
		{[]string{"text/*;q=0, */*"}, false, true},
		{[]string{"application/json;q=0, */*"}, true, false}, // text/event-stream through */*; no JSON
		{[]string{"application/json;q=0, text/event-stream;q=0, */*"}, false, false},
		{[]string{"Application/JSON;q=0, text/event-stream;Q=0, application/*, text/*"}, false, false},
		{[]string{"application/*;q=0, text/*;q=0, */*"}, false, false},
		{[]string{"application/json;q=0, application/*"}, false, false},
		{[]string{"application/json;q=0, text/event-stream;q=0"}, false, false},
		// A more specific range admits what a wildcard refuses.
		{[]string{"*/*;q=0, text/event-stream"}, true, false},
		{[]string{"*/*;q=0, application/json;q=0.5"}, false, true},
		{[]string{"text/*;q=0, text/event-stream;q=0.2"}, true, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/mcp", nil)
		for _, v := range c.accept {
			r.Header.Add("Accept", v)
		}
		if got := getAcceptable(r); got != c.get {
			t.Errorf("GET, Accept %q: served %v, want %v", c.accept, got, c.get)
		}
		if got := acceptsJSON(r); got != c.post {
			t.Errorf("POST, Accept %q: served %v, want %v", c.accept, got, c.post)
		}
	}
}
