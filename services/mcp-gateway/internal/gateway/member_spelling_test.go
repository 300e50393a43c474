package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// envelopeCase is a message whose JSON-RPC members are spelt so that the
// envelope check and encoding/json (the gateway's decoding, mcp-go's) could
// read different members, and what the gateway must answer: 400, -32600,
// the id (null when the id itself is in doubt) and a part of the message.
type envelopeCase struct {
	name, body, id, msg string
}

// spelledCases are the breaker's bodies. encoding/json matches a member
// to a struct field case-insensitively (ASCII letters, and U+017F LONG S
// for "s", U+212A KELVIN SIGN for "k") and keeps the last of several; the
// envelope check looked at the member spelt exactly "id" only, so "Id"
// carried an id past every id rule: raw bytes that are not UTF-8 echoed
// (no valid JSON answer), an object echoed as the id, a second "iD"
// answered instead of the checked "id". The refusal said "in other letter
// case" also for a fold that is no letter case in ASCII terms (U+017F for
// "s"); it now says "spelt differently" and names both kinds.
var spelledCases = []envelopeCase{
	{"Id not UTF-8", `{"jsonrpc":"2.0","Id":"` + "\xc3" + `","method":"ping"}`, "null", "case-sensitive"},
	{"iD after id", `{"jsonrpc":"2.0","id":1,"iD":"` + "\xff" + `","method":"ping"}`, "null", "case-sensitive"},
	{"ID object", `{"jsonrpc":"2.0","ID":{"a":1},"method":"ping"}`, "null", "case-sensitive"},
	{"ID number", `{"jsonrpc":"2.0","ID":7,"method":"ping"}`, "null", `"id" spelt differently (in other letter case`},
	{"escaped Id", `{"jsonrpc":"2.0","\u0049d":"` + "\xc3" + `","method":"ping"}`, "null", "case-sensitive"},
	{"id twice, the last valid", `{"jsonrpc":"2.0","id":"` + "\xff" + `","id":1,"method":"ping"}`, "null", "more than once"},
	{"id twice, the last not UTF-8", `{"jsonrpc":"2.0","id":1,"id":"` + "\xff" + `","method":"ping"}`, "null", "more than once"},
	{"Method empty", `{"jsonrpc":"2.0","id":1,"method":"ping","Method":""}`, "1", "case-sensitive"},
	{"METHOD null", `{"jsonrpc":"2.0","id":1,"method":"ping","METHOD":null}`, "1", "case-sensitive"},
	{"method twice", `{"jsonrpc":"2.0","id":1,"method":"","method":"ping"}`, "1", "more than once"},
	{"JSONRPC 1.0", `{"jsonrpc":"2.0","id":1,"method":"ping","JSONRPC":"1.0"}`, "1", `"jsonrpc" spelt differently (in other letter case, such as "JSONRPC"`},
	{"jsonrpc with a long s", `{"jsonrpc":"2.0","id":1,"method":"ping","j\u017fonrpc":"1.0"}`, "1", `"jsonrpc" spelt differently (in other letter case, such as "JSONRPC", or with a Unicode letter that folds to an ASCII one, such as U+017F "ſ" for "s")`},
	{"Params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"health.check","arguments":{}},"Params":{"name":"x"}}`, "1", "case-sensitive"},
	{"result with a long s", `{"jsonrpc":"2.0","id":1,"re` + "\u017f" + `ult":{}}`, "1", `"result" spelt differently (in other letter case, such as "RESULT", or with a Unicode letter that folds to an ASCII one`},
}

// checkRefused checks an envelope refusal: valid JSON text, 400, -32600,
// the case's id and message.
func checkRefused(t *testing.T, where string, c envelopeCase, status int, body []byte, m rpcMessage) {
	t.Helper()
	if !utf8.Valid(body) || !json.Valid(body) {
		t.Errorf("%s %s: answer is not valid JSON text: %d %q", where, c.name, status, body)
		return
	}
	if status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 || string(m.ID) != c.id || !strings.Contains(m.Error.Message, c.msg) {
		t.Errorf("%s %s: %d %s, want 400 -32600 with id %s and %q", where, c.name, status, body, c.id, c.msg)
	}
}

// The JSON-RPC members (jsonrpc, id, method, params, result, error) are
// case-sensitive names (JSON-RPC 2.0 §4), but the gateway and mcp-go decode
// messages with encoding/json, which also takes "ID", "Id" or "iD" (and
// "jſonrpc") for them, the last one winning, while the envelope check read
// only the member spelt exactly. A message with a member spelt otherwise
// than JSON-RPC spells it, or with one of them twice, is now refused on
// /mcp (in a session and on initialize, which creates no session): 400,
// -32600, with id null when the id is in doubt. Members that only look
// alike ("İd", "ids") are other members, as encoding/json has them.
func TestEnvelopeMembersSpelledOtherwiseAreRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	for _, c := range spelledCases {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: c.body})
		var m rpcMessage
		_ = json.Unmarshal(r.Body, &m)
		checkRefused(t, "/mcp", c, r.Status, r.Body, m)
	}
	params := `"params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`
	for _, c := range []envelopeCase{
		{"initialize ID not UTF-8", `{"jsonrpc":"2.0","ID":"` + "\xff" + `","method":"initialize",` + params + `}`, "null", "case-sensitive"},
		{"initialize id and Id", `{"jsonrpc":"2.0","id":1,"Id":2,"method":"initialize",` + params + `}`, "null", "case-sensitive"},
		{"initialize Method", `{"jsonrpc":"2.0","id":1,"method":"initialize","Method":"ping",` + params + `}`, "1", "case-sensitive"},
	} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: c.body})
		var m rpcMessage
		_ = json.Unmarshal(r.Body, &m)
		checkRefused(t, "/mcp", c, r.Status, r.Body, m)
		if s := r.Header.Get("Mcp-Session-Id"); s != "" {
			t.Errorf("%s created session %s", c.name, s)
		}
	}
	// Look-alikes are other members: U+0130 and U+0131 fold to no ASCII
	// letter, and "ids" is not "id".
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping","ids":[],"idx":2,"Identity":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","İd":"x","ıd":{"a":1}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","\u0130d":"x"}`,
	} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || string(m.ID) != "1" || m.Result == nil {
			t.Errorf("%s: %d %s", body, r.Status, r.Body)
		}
	}
}

// A 2025-03-26 session serves batches, each message as a POST of its own:
// each message of a batch is checked alike, and an initialize in a batch
// whose id is spelt "ID" is refused as any such message, with id null,
// not answered "initialize must not be part of a batch" with the id that
// "ID" names.
func TestBatchMembersSpelledOtherwiseAreRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize20250326(t, tok)
	batch := `[{"jsonrpc":"2.0","Id":"` + "\xc3" + `","method":"ping"},
		{"jsonrpc":"2.0","id":2,"method":"ping"},
		{"jsonrpc":"2.0","id":3,"iD":{"a":1},"method":"ping"},
		{"jsonrpc":"2.0","ID":"init","method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}]`
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: batch})
	var answers []rpcMessage
	if r.Status != http.StatusOK || !utf8.Valid(r.Body) || json.Unmarshal(r.Body, &answers) != nil {
		t.Fatalf("batch: %d %q", r.Status, r.Body)
	}
	refused, served := 0, 0
	for _, a := range answers {
		switch {
		case string(a.ID) == "2" && a.Result != nil:
			served++
		case string(a.ID) == "null" && a.Error != nil && a.Error.Code == -32600:
			refused++
		}
	}
	if len(answers) != 4 || served != 1 || refused != 3 {
		t.Errorf("batch answered %s, want ping 2 served and three -32600 with id null", r.Body)
	}
}

// The legacy transport checks POST /messages alike: refused on the POST,
// the stream never sees the message; an initialize with "ID" initializes
// nothing, and the session's own handshake then works.
func TestLegacyMembersSpelledOtherwiseAreRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	c := envelopeCase{"legacy initialize ID", `{"jsonrpc":"2.0","ID":"` + "\xff" + `","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"legacy","version":"1"}}}`, "null", "case-sensitive"}
	r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: c.body})
	var m rpcMessage
	_ = json.Unmarshal(r.Body, &m)
	checkRefused(t, "/messages", c, r.Status, r.Body, m)
	legacyInit(t, s, g, tok, path)
	for _, c := range spelledCases {
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: c.body})
		var m rpcMessage
		_ = json.Unmarshal(r.Body, &m)
		checkRefused(t, "/messages", c, r.Status, r.Body, m)
	}
	// Nothing of them reached the stream: the next answer on it is the
	// ping's, which is valid JSON.
	ping := call("ping", nil)
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: ping}); r.Status != http.StatusAccepted {
		t.Fatalf("ping: %d %s", r.Status, r.Body)
	}
	e := s.next(func(e sseEvent) bool {
		return strings.Contains(e.Data, `"result"`) || strings.Contains(e.Data, `"error"`)
	})
	if want, _ := json.Marshal(ping["id"]); !json.Valid([]byte(e.Data)) || !strings.Contains(e.Data, `"id":`+string(want)) {
		t.Errorf("first answer on the stream: %q, want the ping's", e.Data)
	}
}

// The rate limit of /messages answers before the envelope check, with the
// request's id as encoding/json reads it: an object (spelt "id" or "ID")
// was echoed as the id of the 429. An id that is not a string or a number
// is answered null there too; a valid one is still echoed. A valid id
// spelt "ID", or a second id spelt "iD", was echoed as the 429's id while
// the envelope check refuses both (which id?): the 429 now answers only an
// id the envelope check accepts, null otherwise, as on /mcp.
func TestRateLimitAnswersNoInvalidID(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("RATE_LIMIT_PER_MINUTE", "1")
	tok := f.Token("user-1", allScopes)
	limited := false
	for i := 0; i < 5 && !limited; i++ {
		limited = g.do(t, req{Method: "POST", Path: "/messages?sessionId=x", Token: tok, Body: call("ping", nil)}).Status == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("no 429 within 5 requests at 1 per minute")
	}
	for body, id := range map[string]string{
		`{"jsonrpc":"2.0","ID":{"a":1},"method":"ping"}`:       "null",
		`{"jsonrpc":"2.0","id":[1],"method":"ping"}`:           "null",
		`{"jsonrpc":"2.0","Id":true,"method":"ping"}`:          "null",
		`{"jsonrpc":"2.0","id":5,"method":"ping"}`:             "5",
		`{"jsonrpc":"2.0","ID":7,"method":"ping"}`:             "null",
		`{"jsonrpc":"2.0","id":5,"iD":6,"method":"ping"}`:      "null",
		`{"jsonrpc":"2.0","id":8,"method":"ping","Method":""}`: "8",
	} {
		r := g.do(t, req{Method: "POST", Path: "/messages?sessionId=x", Token: tok, Body: body})
		if m := r.rpc(t); r.Status != http.StatusTooManyRequests || m.Error == nil || string(m.ID) != id {
			t.Errorf("%s: %d %s, want 429 with id %s", body, r.Status, r.Body, id)
		}
	}
}
