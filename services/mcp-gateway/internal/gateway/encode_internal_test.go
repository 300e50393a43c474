package gateway

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// The gateway's own encoding of a successful tool answer is byte for byte
// what json.Encoder makes of it through mcp-go without HTML escaping
// (appendJSON), and every other answer is left to the encoder.
func TestAppendToolAnswerMatchesEncoder(t *testing.T) {
	ok := func(id any, structured string) mcp.JSONRPCMessage {
		return mcp.NewJSONRPCResultResponse(mcp.NewRequestId(id), &mcp.CallToolResult{
			Content:           []mcp.Content{mcp.NewTextContent(structured)},
			StructuredContent: compactJSON(structured),
		})
	}
	for name, msg := range map[string]mcp.JSONRPCMessage{
		"number id": ok(7, `{"sub":"u1","name":"Ada Lovelace","email_verified":true}`),
		"string id": ok("req-1", `{"status":"ok","checks":[{"name":"redis","status":"ok","detail":""}]}`),
		"unicode":   ok(1, `{"name":"Zoë 日本"}`),
		"quotes":    ok(2, `{"name":"a \"quoted\" \\ name"}`),
		"pointer":   func() mcp.JSONRPCMessage { m := ok(3, `{"a":1}`).(mcp.JSONRPCResponse); return &m }(),
		"control": mcp.NewJSONRPCResultResponse(mcp.NewRequestId(11), &mcp.CallToolResult{
			Content:           []mcp.Content{mcp.NewTextContent("{\"a\":\"x\\n\\t\\u0001\"}\n\t\r\b\f\x01\x1f\x7f")},
			StructuredContent: compactJSON(`{"a":"x\n\t\u0001"}`)}),
		"big id":          ok(int64(1)<<53, `{"a":1}`),
		"float id":        ok(float64(42), `{"a":1}`),
		"negative":        ok(float64(-3), `{"a":1}`),
		"empty":           ok("", `{}`),
		"html characters": ok(4, `{"name":"<b>&</b>","s":"a \\u003c b"}`),
		"line separators in the text": mcp.NewJSONRPCResultResponse(mcp.NewRequestId(13), &mcp.CallToolResult{
			Content:           []mcp.Content{mcp.NewTextContent("a\u2028b\u2029c\u00e2\u20ac")},
			StructuredContent: compactJSON(`{"a":1}`)}),
	} {
		want := encode(t, msg)
		got, fast := appendToolAnswer(nil, msg)
		if !fast {
			t.Errorf("%s: not encoded by the gateway", name)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	withMeta := ok(5, `{"a":1}`)
	withMeta.(mcp.JSONRPCResponse).Result.(*mcp.CallToolResult).Meta = mcp.NewMetaFromMap(map[string]any{"k": "v"})
	for name, msg := range map[string]mcp.JSONRPCMessage{
		"_meta":                                withMeta,
		"line separator in structured content": ok(14, "{\"a\":\"x\u2028y\"}"),
		"error result":                         mcp.NewJSONRPCResultResponse(mcp.NewRequestId(6), errorResult("no")),
		"raw structured": mcp.NewJSONRPCResultResponse(mcp.NewRequestId(8), &mcp.CallToolResult{
			Content: []mcp.Content{mcp.NewTextContent("{}")}, StructuredContent: json.RawMessage(`{ "a" : 1 }`)}),
		"not a tool result": mcp.NewJSONRPCResultResponse(mcp.NewRequestId(9), mcp.EmptyResult{}),
		"error":             mcp.NewJSONRPCError(mcp.NewRequestId(10), mcp.INVALID_PARAMS, "bad", nil),
		"invalid UTF-8": mcp.NewJSONRPCResultResponse(mcp.NewRequestId(12), &mcp.CallToolResult{
			Content: []mcp.Content{mcp.NewTextContent("{\"a\":\"\xff\"}")}, StructuredContent: compactJSON(`{"a":1}`)}),
	} {
		if _, fast := appendToolAnswer(nil, msg); fast {
			t.Errorf("%s: encoded by the gateway, want the encoder", name)
		}
	}
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := appendJSON(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// plainID recognises only ids that mcp-go echoes unchanged.
func TestPlainIDAgreesWithRoundTrip(t *testing.T) {
	for _, raw := range []string{
		`0`, `1`, `42`, `999999999999999`, `9007199254740993`, `01`, `-1`, `1.0`, `1e3`,
		`"a"`, `""`, `"req-1 x"`, `"é"`, `"\u0041"`, `"a<b"`, `"a\"b"`, `"tab	"`,
	} {
		if plainID([]byte(raw)) && !roundTrips(t, raw) {
			t.Errorf("plainID(%s) = true, but mcp-go does not echo it exactly", raw)
		}
	}
	for _, raw := range []string{`0`, `1`, `42`, `999999999999999`, `"a"`, `""`, `"req-1 x"`} {
		if !plainID([]byte(raw)) {
			t.Errorf("plainID(%s) = false, want true", raw)
		}
	}
}

func roundTrips(t *testing.T, raw string) bool {
	var id mcp.RequestId
	if err := json.Unmarshal([]byte(raw), &id); err != nil {
		return false
	}
	out, err := json.Marshal(id)
	return err == nil && string(out) == raw
}

// readAllSized reads the whole body whatever Content-Length announced.
func TestReadAllSized(t *testing.T) {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	for _, length := range []int64{-1, 0, 5, int64(len(body)) - 1, int64(len(body)), int64(len(body)) + 7, maxBody + 1} {
		got, err := readAllSized(bytes.NewReader(body), length)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("length %d: %q %v", length, got, err)
		}
	}
	if got, err := readAllSized(bytes.NewReader(nil), 10); err != nil || len(got) != 0 {
		t.Errorf("empty body: %q %v", got, err)
	}
}

// checkEnvelope's scan of the members agrees with encoding/json's reading
// of them (decodedMembers) on every shape of message, and allocates
// nothing for a valid request.
func TestEnvelopeScanAgreesWithDecoding(t *testing.T) {
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{}}}`,
		` { "jsonrpc" : "2.0" , "id" : "x" , "method" : "ping" } `,
		"{\n\t\"jsonrpc\":\"2.0\",\r\n\"id\":12,\"method\":\"ping\"\n}",
		`{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":{},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":[1],"method":"ping"}`,
		`{"jsonrpc":"2.0","id":true,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":-1.5e3,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":1}}`,
		`{"jsonrpc":"2.0","result":{}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"1.0","id":1,"method":"ping"}`,
		`{"jsonrpc":2.0,"id":1,"method":"ping"}`,
		`{"id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":""}`,
		`{"jsonrpc":"2.0","id":1,"method":null}`,
		`{"jsonrpc":"2.0","id":1,"method":5}`,
		`{"jsonrpc":"2.0","id":1,"method":["a"]}`,
		`{"jsonrpc":"2.0","id":1,"method":"\u0070ing"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","id":null}`,
		`{"jsonrpc":"2.0","id":null,"method":"ping","id":2}`,
		`{"jsonrpc":"2.0","id":"a\"b\\","method":"p","params":{"x":"}]{[,","y":[{"z":"\""}]}}`,
		`{"jsonrpc":"2.0","\u0069d":null,"method":"ping"}`,
		`{"jsonrpc":"2.0","ID":null,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2,{"a":[]}],"x":false}`,
		`{}`,
		`{ }`,
		`{"jsonrpc":"2.0","id":1,"method":"ping"`,
		`{"jsonrpc":"2.0","id":01,"method":"ping"}`,
		`{"jsonrpc":"2.0","Id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"\u0049D":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","j\u017fonrpc":"1.0"}`,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"j\u017fonrpc\":\"1.0\"}",
		`{"jsonrpc":"2.0","id":1,"method":"ping","method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","Params":{},"params":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","\u0130d":1,"ids":2}`,
	} {
		trimmed := bytes.TrimSpace([]byte(body))
		want := parseError
		if json.Valid(trimmed) {
			want = decodedMembers(trimmed).check()
		}
		got := checkEnvelope([]byte(body))
		if (want == nil) != (got == nil) || (want != nil && (want.msg != got.msg || want.code != got.code || !bytes.Equal(want.id, got.id))) {
			t.Errorf("%s:\n got %+v\nwant %+v", body, got, want)
		}
		// What streamableSession asks once readBody decoded the body:
		// the same answer without scanning it again.
		var m message
		if json.Unmarshal([]byte(body), &m) == nil {
			if again := checkEnvelopeOf([]byte(body), true); (again == nil) != (got == nil) || (again != nil && (again.msg != got.msg || again.code != got.code || !bytes.Equal(again.id, got.id))) {
				t.Errorf("%s: decoded, %+v, want %+v", body, again, got)
			}
		}
	}
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}`)
	if raceEnabled {
		return // allocation counts need a build without -race (race_on_test.go)
	}
	if n := testing.AllocsPerRun(100, func() { _ = checkEnvelope(body) }); n != 0 {
		t.Errorf("checkEnvelope allocates %v times per valid request", n)
	}
	// The progressToken's length is read in place too (MaxProgressTokenBytes).
	body = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"identity.profile","arguments":{},"_meta":{"progressToken":"p-1"}}}`)
	if n := testing.AllocsPerRun(100, func() { _ = checkEnvelope(body) }); n != 0 {
		t.Errorf("checkEnvelope allocates %v times per valid request with a progressToken", n)
	}
}
