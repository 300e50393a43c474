package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// oddIDs are request ids mcp-go would not echo byte for byte, so that each
// travels through it as an exactIDs token: HTML characters (encoding/json
// escapes them), an escape it would decode, integers of more than 15
// digits (float64) and a number beyond float64's range. n makes each one
// unique.
func oddIDs(n int) []string {
	return []string{
		fmt.Sprintf(`"<k%d>"`, n),
		fmt.Sprintf(`"a&b %d"`, n),
		fmt.Sprintf(`"\u0041%d"`, n),
		fmt.Sprintf(`1234567890123456789%d`, n),
		fmt.Sprintf(`90071992547409%02d`, 93+n),
		fmt.Sprintf(`1e40%d`, n),
	}
}

// The id of a legacy (/sse + /messages) request is rewritten once: the
// token mcp-go is handed is the one its answer carries, the one that gives
// back the request's place in the backlog and the one forgotten when the
// answer is written. Before, reserveLegacy rewrote the id a first time only
// to learn a token for the backlog and dropped that token's forget: every
// such request left a token in the gateway-wide map for good, and restore
// searched the growing map for every event it wrote. Here requests with
// odd ids are posted to the stream's replica and relayed from another one,
// every answer carries its id as sent, and once they are answered neither
// replica holds a token.
func TestLegacyRewrittenIDsAreForgotten(t *testing.T) {
	r := testharness.StartRedis(t)
	iss := tokentest.Start(t, "http://localhost:4000")
	a, aURL := replica(t, r, iss)
	b, bURL := replica(t, r, iss)
	tok := iss.Mint(t, tokentest.Token{Subject: "ada", ClientID: "c1", Audience: testResource, Scope: "openid"})
	s := openAuthStream(t, aURL, "GET /sse", tok)

	want := map[string]bool{}
	for round := range 2 {
		for i, url := range []string{aURL, bURL} {
			for _, id := range oddIDs(2*round + i) {
				body := `{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}`
				if st := postMessages(t, url+s.messages, tok, body); st != http.StatusAccepted {
					t.Fatalf("ping %s to %s: %d", id, url, st)
				}
				want[id] = true
			}
		}
	}
	for len(want) > 0 {
		data := s.next(t, `"result"`)
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("answer %s: %v", data, err)
		}
		if !want[string(m.ID)] {
			t.Fatalf("answer with id %s, not one sent byte for byte (waiting for %d more): %s", m.ID, len(want), data)
		}
		delete(want, string(m.ID))
	}
	for name, g := range map[string]*Gateway{"stream's replica": a, "relaying replica": b} {
		if !eventually(func() bool { return g.ids.len() == 0 }) {
			t.Errorf("%s: exactIDs holds %d tokens after every answer was written, want 0", name, g.ids.len())
		}
	}
}

// A Streamable HTTP request whose id is rewritten to a token of the same
// length as the body it had (the re-encoded body is then exactly as long)
// is rewritten all the same, and its token forgotten. Before, a rewrite was
// recognised by the body's length: such a body went to mcp-go unchanged,
// its answer came back with the id re-encoded ("\u0041…" as "A…"), and the
// token stayed in the map.
func TestSameLengthRewrittenIDIsEchoed(t *testing.T) {
	r := testharness.StartRedis(t)
	iss := tokentest.Start(t, "http://localhost:4000")
	g, url := replica(t, r, iss)
	tok := iss.Mint(t, tokentest.Token{Subject: "ada", ClientID: "c1", Audience: testResource, Scope: "openid"})
	res := post(t, url, tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	res.Body.Close()
	sid := res.Header.Get("Mcp-Session-Id")
	if res.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d", res.StatusCode)
	}
	post(t, url, tok, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`).Body.Close()

	id := `"\u0041` + strings.Repeat("a", idTokenLen-8) + `"`
	if len(id) != idTokenLen {
		t.Fatalf("id of %d bytes, want %d", len(id), idTokenLen)
	}
	// Members in the order, and spelled as, the rewrite encodes them.
	res = post(t, url, tok, sid, `{"id":`+id+`,"jsonrpc":"2.0","method":"ping"}`)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"id":`+id+`,`) {
		t.Errorf("ping with a %d-byte id: %d %s; want the id as sent", len(id), res.StatusCode, body)
	}
	if !eventually(func() bool { return g.ids.len() == 0 }) {
		t.Errorf("exactIDs holds %d tokens after the answer, want 0", g.ids.len())
	}
}

// A backlog gives back its requests' tokens: a request mcp-go refused
// (drop), an answer written (release), and, when the stream ends, the
// requests still waiting (close). An answer of an id no request waits with
// gives back nothing.
func TestBacklogForgetsTokens(t *testing.T) {
	x := newExactIDs()
	b := newBacklog()
	var held []*pendingAnswer
	for i := range 4 {
		id := json.RawMessage(fmt.Sprintf(`"<%d>"`, i))
		// Tokenized as reserveLegacy tokenizes a request whose stream is here.
		_, token, forget := x.tokenize([]byte(`{"jsonrpc":"2.0","id":`+string(id)+`,"method":"ping"}`), id)
		p, ok := b.reserve(string(token), id, 10, forget)
		if !ok {
			t.Fatalf("reserve %d refused", i)
		}
		held = append(held, p)
	}
	b.drop(held[0])
	if !b.release(json.RawMessage(held[1].key)) || b.release(json.RawMessage(`null`)) {
		t.Fatal("release: want true for a waiting request's token, false for null")
	}
	if n, _ := b.pending(); n != 2 || x.len() != 2 {
		t.Fatalf("after a drop and two releases: %d waiting, %d tokens; want 2 and 2", n, x.len())
	}
	b.close()
	if n, _ := b.pending(); n != 0 || x.len() != 0 {
		t.Errorf("after the stream ended: %d waiting, %d tokens; want 0 and 0", n, x.len())
	}
}

// eventually reports whether cond holds within a few seconds (a bound on
// the wait, not a speed assertion).
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
