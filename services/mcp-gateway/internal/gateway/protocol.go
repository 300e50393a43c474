package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
)

// The JSON-RPC envelope checks the gateway makes before mcp-go sees a
// message (JSON-RPC 2.0 §4–§5; MCP 2025-06-18 and later carry one message
// per POST, without batches). mcp-go would otherwise answer a null id or an
// empty method with silence, accept an object id, and call a batch
// "not valid JSON".
//
// The checks must read the members the gateway and mcp-go then use, and
// both decode with encoding/json, which takes any member whose name equals
// a field's but for case for that field ("ID", "Id" and "iD" are the id;
// U+017F LONG S folds to "s": "jſonrpc" is the jsonrpc) and keeps the last
// of several. JSON-RPC 2.0 names its members case-sensitively ("id" is
// the member; "ID" is an unknown one, and a message with only "ID" a
// notification), and RFC 8259 §4 leaves an object with a name twice
// unpredictable. So a message is refused (-32600) when a member JSON-RPC
// defines (envelopeNames) appears twice or is spelt otherwise than
// JSON-RPC spells it but so that encoding/json would take it for that
// member: then no reading of the message is the one JSON-RPC defines, and
// the member the checks approve is the one used. Such an id is in doubt,
// so the refusal's id is null (§5); any other such member is refused with
// the request's id, once that id passed the id rules. A member that merely
// looks alike ("ids", "İd": U+0130 folds to no ASCII letter) is another
// member, for encoding/json too, and passes.

// refusal is a POSTed message the gateway answers itself.
type refusal struct {
	id   json.RawMessage // the request's id when it is a valid one, else null
	code int
	msg  string
}

// checkEnvelope returns why body is not one valid JSON-RPC message, or nil.
// Text that is not JSON (or JSON nested deeper than encoding/json's 10,000
// levels) is a Parse error, -32700 with a null id (JSON-RPC 2.0 §5.1),
// answered here for every transport: left to mcp-go, a POST to /mcp without
// a session was told to send initialize first, which the client may well
// have been doing.
func checkEnvelope(body []byte) *refusal { return checkEnvelopeOf(body, false) }

// checkEnvelopeOf is checkEnvelope for a body known to be valid JSON when
// valid is set (readBody decoded it: encoding/json checks the whole input
// first), which is then not scanned again.
func checkEnvelopeOf(body []byte, valid bool) *refusal {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		switch {
		case !json.Valid(trimmed):
			return parseError
		case trimmed[0] == '[':
			return &refusal{code: mcp.INVALID_REQUEST, msg: "JSON-RPC batches are not supported: send one message per request (MCP 2025-06-18 removed batching)"}
		default:
			return &refusal{code: mcp.INVALID_REQUEST, msg: "a JSON-RPC message must be an object"}
		}
	}
	if !valid && !json.Valid(trimmed) {
		return parseError
	}
	m, ok := scanMembers(trimmed)
	if !ok {
		m = decodedMembers(trimmed)
	}
	return m.check()
}

// parseError answers a body that is not JSON.
var parseError = &refusal{code: mcp.PARSE_ERROR, msg: "Parse error: the request body is not valid JSON"}

// members are the top-level members checkEnvelope looks at, as raw values
// (nil when absent).
type members struct {
	id, jsonrpc, method, params []byte
	hasID, hasMethod            bool
	hasResult, hasError         bool
	// seen, twice and variant are sets of envelopeNames (bit n for name
	// n): members spelt exactly, spelt exactly more than once, and spelt
	// otherwise but taken for the member by encoding/json.
	seen, twice, variant uint8
}

// envelopeNames are the members JSON-RPC 2.0 defines (§4, §5), which the
// gateway's and mcp-go's message structs decode, as JSON-RPC spells them.
var envelopeNames = [...]string{"jsonrpc", "id", "method", "params", "result", "error"}

// Indexes of envelopeNames.
const (
	nameJSONRPC = iota
	nameID
	nameMethod
	nameParams
	nameResult
	nameError
)

// add records the member named key (its name decoded) with the raw value v.
func (m *members) add(key, v []byte) {
	n, exact := envelopeName(key)
	if n < 0 {
		return
	}
	bit := uint8(1) << n
	if !exact {
		m.variant |= bit
		return
	}
	if m.seen&bit != 0 {
		m.twice |= bit
	}
	m.seen |= bit
	switch n {
	case nameID:
		m.id, m.hasID = v, true
	case nameJSONRPC:
		m.jsonrpc = v
	case nameMethod:
		m.method, m.hasMethod = v, true
	case nameParams:
		m.params = v
	case nameResult:
		m.hasResult = true
	case nameError:
		m.hasError = true
	}
}

// envelopeName returns the index in envelopeNames of the member that
// encoding/json takes a member named key for, and whether key spells it
// exactly; -1 for no such member.
func envelopeName(key []byte) (int, bool) {
	switch string(key) { // compared without allocating
	case "jsonrpc":
		return nameJSONRPC, true
	case "id":
		return nameID, true
	case "method":
		return nameMethod, true
	case "params":
		return nameParams, true
	case "result":
		return nameResult, true
	case "error":
		return nameError, true
	}
	for n, name := range envelopeNames {
		if foldsTo(key, name) {
			return n, false
		}
	}
	return -1, false
}

// foldsTo reports whether encoding/json matches a member named key to a
// field named name (lower-case ASCII): their names folded alike, ASCII
// letters by case and other characters to the least rune of their
// unicode.SimpleFold orbit (encoding/json's fold.go), so of the non-ASCII
// runes only U+017F (s) and U+212A (k) fold to an ASCII letter.
func foldsTo(key []byte, name string) bool {
	if len(key) < len(name) {
		return false
	}
	j := 0
	for i := 0; i < len(key); j++ {
		if j == len(name) {
			return false
		}
		c := key[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(key[i:])
			f := foldRune(r)
			if f >= utf8.RuneSelf {
				return false
			}
			c, i = byte(f), i+size
		} else {
			i++
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[j] {
			return false
		}
	}
	return j == len(name)
}

// foldRune is encoding/json's: the least rune of r's case-folding orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// scanMembers reads the members of a valid JSON object without decoding
// it (no allocation): checkEnvelope runs on every POST, and decoding the
// object into a map cost an allocation per member and a second full
// parse per call. It reports false for an object with an escaped key,
// which decodedMembers reads through encoding/json instead.
func scanMembers(obj []byte) (members, bool) {
	var m members
	i := skipSpace(obj, 1) // past '{'
	for i < len(obj) && obj[i] != '}' {
		// A key: a string without escapes.
		end := i + 1
		for end < len(obj) && obj[end] != '"' {
			if obj[end] == '\\' {
				return members{}, false
			}
			end++
		}
		key := obj[i+1 : end]
		i = skipSpace(obj, end+1) // at ':'
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		m.add(key, obj[i:vend])
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return m, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		case ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// idNotUTF8 refuses a string id with bytes that are not UTF-8. JSON text
// is UTF-8 (RFC 8259 §8.1) and encoding/json reads such bytes without
// complaint, so the id was echoed byte for byte (exactIDs) and the answer
// was no valid JSON text. The request's id cannot be answered as sent, so
// it is an invalid request answered with id null (JSON-RPC 2.0 §5).
const idNotUTF8 = "id must be valid UTF-8 text (RFC 8259 section 8.1): a string id holds bytes that are not UTF-8"

// answerID is the id an error answer carries for a request whose id is
// id: id itself when it is a number or a string, else null — when it is
// absent, not a valid id (an object, an array, a boolean: JSON-RPC 2.0 §5
// answers an invalid request with id null), or a string that is not UTF-8
// (idNotUTF8), which would make the answer no valid JSON text. Answers
// written before the envelope check (the rate limit of /messages, an
// initialize in a batch) included.
func answerID(id json.RawMessage) json.RawMessage {
	switch kind(id) {
	case '0':
		return id
	case '"':
		if utf8.Valid(id) {
			return id
		}
	}
	return json.RawMessage("null")
}

// ambiguity is the refusal of the first member of set (envelopeNames
// indexes) that is spelt otherwise than JSON-RPC spells it or appears
// twice, or "" for none.
func (m members) ambiguity(set uint8) string {
	for n, name := range envelopeNames {
		switch bit := uint8(1) << n; {
		case set&bit == 0:
		case m.variant&bit != 0:
			return `JSON-RPC member names are case-sensitive: a member named "` + name + `" spelt differently (in other letter case, such as "` +
				strings.ToUpper(name) + `", or with a Unicode letter that folds to an ASCII one, such as U+017F "ſ" for "s") is refused, as decoders that ignore case would take it for "` +
				name + `"; spell it "` + name + `"`
		default:
			return `the member "` + name + `" appears more than once: a JSON-RPC message names each member once (RFC 8259 section 4 leaves duplicate names unpredictable)`
		}
	}
	return ""
}

// check applies the envelope rules to the members.
func (m members) check() *refusal {
	if e := m.ambiguity((m.twice | m.variant) & (1 << nameID)); e != "" {
		return &refusal{code: mcp.INVALID_REQUEST, msg: e} // which id? null
	}
	var id json.RawMessage
	if m.hasID {
		switch kind(m.id) {
		case 'n':
			return &refusal{code: mcp.INVALID_REQUEST, msg: "id must be a string or a number, not null"}
		case '"':
			if !utf8.Valid(m.id) {
				return &refusal{code: mcp.INVALID_REQUEST, msg: idNotUTF8}
			}
			id = m.id
		case '0':
			id = m.id
		default:
			return &refusal{code: mcp.INVALID_REQUEST, msg: "id must be a string or a number"}
		}
		if len(m.id) > MaxIDBytes {
			return &refusal{code: mcp.INVALID_REQUEST, msg: fmt.Sprintf("id is %d bytes long: the gateway accepts ids of at most %d bytes as written in the message (quotes included)", len(m.id), MaxIDBytes)}
		}
	}
	if e := m.ambiguity(m.twice | m.variant); e != "" {
		return &refusal{id: id, code: mcp.INVALID_REQUEST, msg: e}
	}
	if !isVersion2(m.jsonrpc) {
		return &refusal{id: id, code: mcp.INVALID_REQUEST, msg: `jsonrpc must be "2.0"`}
	}
	if !m.hasMethod {
		if m.hasID && (m.hasResult || m.hasError) {
			return nil // a response to a request the server sent
		}
		return &refusal{id: id, code: mcp.INVALID_REQUEST, msg: "method is required"}
	}
	if m.hasResult || m.hasError {
		// JSON-RPC 2.0 §4 and §5: a request has a method, a response a
		// result or an error, never both. mcp-go took such a message for
		// a response (202, no answer), so on a legacy session it held one
		// of the answers its backlog waits for, for good (review6).
		return &refusal{id: id, code: mcp.INVALID_REQUEST, msg: "a message has a method (a request or notification) or a result or error (a response), not both"}
	}
	switch {
	case string(m.method) == "null" || string(m.method) == `""`:
		return &refusal{id: id, code: mcp.INVALID_REQUEST, msg: "method must not be empty"}
	case kind(m.method) != '"':
		return &refusal{id: id, code: mcp.INVALID_REQUEST, msg: "method must be a string"}
	}
	if len(m.method) > MaxMethodBytes {
		// mcp-go echoes an unknown method whole ("Method … not found"):
		// refused without echoing it. No MCP method comes near the bound.
		return &refusal{id: id, code: mcp.METHOD_NOT_FOUND, msg: fmt.Sprintf("method not found: the method is %d bytes long; no MCP method is longer than %d bytes as written in the message (quotes included), and the name is not repeated here", len(m.method), MaxMethodBytes)}
	}
	if n := progressTokenBytes(m.params); n > MaxProgressTokenBytes {
		return &refusal{id: id, code: mcp.INVALID_PARAMS, msg: fmt.Sprintf("params._meta.progressToken is %d bytes long: the gateway accepts progress tokens of at most %d bytes as written in the message (quotes included)", n, MaxProgressTokenBytes)}
	}
	if n := longestNumber(m.params); n > MaxNumberBytes {
		return &refusal{id: id, code: mcp.INVALID_PARAMS, msg: fmt.Sprintf("invalid params: params hold a number %d bytes long: the gateway accepts numbers of at most %d bytes as written in the message, and the number is not repeated here", n, MaxNumberBytes)}
	}
	return nil
}

// MaxNumberBytes bounds a number literal in params, as written. JSON
// (RFC 8259 §6) puts no bound on one, and encoding/json names the whole
// literal in the error of one that does not fit the Go type it decodes
// into ("cannot unmarshal number 777… into … float64": a literal beyond
// float64's range, or an integer field's), which mcp-go repeated in its
// answer — 100 KB of digits in a tools/call argument came back whole on a
// legacy stream. No number a client may rightly send comes near 256
// bytes (a float64 needs at most 24 characters, RFC 8259 §6 advises no
// more range or precision than IEEE 754 binary64): a longer one is
// refused with -32602 and the request's id, on every transport, without
// being repeated. A number id is bounded by MaxIDBytes.
const MaxNumberBytes = 256

// longestNumber is the length of the longest number literal in the valid
// JSON text v (0 for none; strings are skipped, escapes included). A
// text no longer than MaxNumberBytes is not scanned.
func longestNumber(v []byte) int {
	if len(v) <= MaxNumberBytes {
		return 0
	}
	longest, run, inString := 0, 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString, run = true, 0
		case '0' <= c && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			run++
			longest = max(longest, run)
		default:
			run = 0
		}
	}
	return longest
}

// MaxIDBytes and MaxProgressTokenBytes bound the two values a client
// chooses that the gateway echoes, and records with the events of a
// Streamable HTTP stream kept for resumption (Events): a request's id,
// in its answer, and params._meta.progressToken, in every progress
// notification of the call. JSON-RPC 2.0 §4 and MCP (basic/utilities/
// progress) put no size on either; unbounded, a 1 MB token made each
// tools/call a 1 MB stream held in Redis for the session's idle TTL. The
// lengths are of the raw JSON value, quotes and escapes included: a
// longer id is an invalid request (-32600, id null: the id is not
// echoed), a longer token invalid params (-32602, with the request's id),
// on every transport.
const (
	MaxIDBytes            = 256
	MaxProgressTokenBytes = 256
)

// MaxMethodBytes, MaxNameBytes and MaxURIBytes bound the other values a
// client chooses that mcp-go repeats whole in an error answer: the method
// ("Method … not found", -32601), the name of a tools/call or prompts/get
// ("prompt '…' not found"; the gateway's own "Unknown tool: …" of a
// tools/call, toolNameError, too) and the uri of a resources/read ("handler not
// found for resource URI '…'"). Unbounded, a 150 KB tool name of '<'
// came back as a 900 KB answer (each '<' escaped as \u003c), and 40 such
// POSTs read slowly held 470 MB of the gateway's memory (verify34). A
// longer value is refused before mcp-go sees it, with a message that
// names the bound and not the value, on every transport:
//
//   - the method: -32601 (no method that long exists; measured as the id
//     is, the raw JSON string, quotes included), in the envelope check;
//   - params.name: -32602; MCP 2025-11-25 (server/tools, "Tool names")
//     has tool names of 1 to 128 characters of A–Z, a–z, 0–9, '_', '-'
//     and '.', so 128 bytes of the decoded name, which for such a name
//     are its characters (the gateway's own are ^[a-zA-Z0-9_-]{1,64}$);
//     prompts/get's name gets the same bound;
//   - params.uri: -32602, 8,192 bytes of the decoded URI: RFC 9110 §4.1
//     has senders and recipients support URIs of at least 8,000 octets,
//     so no URI a client may rightly use is refused; the gateway's own
//     resource URIs are under 100 bytes;
//   - params.level of a logging/setLevel ("invalid logging level '…'"):
//     -32602, 32 bytes of the decoded level; MCP's LoggingLevel is an enum
//     whose longest value, "emergency", is 9 bytes.
const (
	MaxMethodBytes = 256
	MaxNameBytes   = 128
	MaxURIBytes    = 8192
	MaxLevelBytes  = 32
)

// MaxParamHeaderBytes bounds the value of an Mcp-Param-* header of a
// stateless tools/call (paramHeaderError): mcp-go repeats a mismatched
// one whole. As long as a resource URI may be (MaxURIBytes): a header
// mirrors a routing value (a region, a tenant), not a document.
const MaxParamHeaderBytes = 8192

// progressTokenBytes is the length of the longest progressToken in
// params' _meta (raw JSON; 0 for none). mcp-go decodes params into a
// struct, whose "_meta" field encoding/json matches in any letter case
// (the last of several wins), and _meta into a map, keyed by the exact
// name "progressToken" (escapes decoded; the last of several wins): every
// member either could read is measured, so none over the limit gets past.
func progressTokenBytes(params []byte) int {
	longest := 0
	eachMemberValue(bytes.TrimSpace(params), func(key, v []byte) bool {
		if string(key) == "_meta" || foldsTo(key, "_meta") {
			eachMemberValue(bytes.TrimSpace(v), func(key, v []byte) bool {
				if string(key) == "progressToken" && len(v) > longest {
					longest = len(v)
				}
				return true
			})
		}
		return true
	})
	return longest
}

// decodedMembers reads the members of a valid JSON object through
// encoding/json's decoder, which unescapes the names as Unmarshal does,
// for an object scanMembers does not read (an escaped key) and as the
// tests' reference. Every member is seen, duplicates too (a map would
// keep one).
func decodedMembers(obj []byte) members {
	var m members
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // '{'
		return m
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return m
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return m
		}
		m.add([]byte(key), v)
	}
	return m
}

// isVersion2 reports whether raw is the JSON string "2.0" — spelt with
// escapes too ("2\u002e0" is that string; JSON-RPC 2.0 §4 asks for the
// value, not its spelling, and mcp-go decodes it).
func isVersion2(raw []byte) bool {
	if string(raw) == `"2.0"` {
		return true
	}
	var s string
	return bytes.IndexByte(raw, '\\') >= 0 && json.Unmarshal(raw, &s) == nil && s == "2.0"
}

// kind is the JSON type of a raw value: '"' string, '0' number, 'n' null,
// '{' object, '[' array, 't' boolean.
func kind(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	switch c := raw[0]; {
	case c == '"', c == '{', c == '[', c == 'n':
		return c
	case c == 't', c == 'f':
		return 't'
	default:
		return '0'
	}
}

// refuse answers a refused message: HTTP 400 with the JSON-RPC error.
func (g *Gateway) refuse(w http.ResponseWriter, transport string, rf *refusal) {
	g.metrics.request(transport, "POST", "invalid_request")
	writeRPCError(w, http.StatusBadRequest, rf.id, rf.code, rf.msg)
}

// exactIDs keeps request ids byte-exact. mcp-go decodes a numeric id
// through float64 (9007199254740993 comes back as 9007199254740992) and
// re-encodes string ids; JSON-RPC 2.0 §5 wants the response id to be the
// request's. An id that mcp-go would not echo byte for byte is replaced,
// before mcp-go sees the message, by a unique string token, and the token
// is replaced by the original id in what mcp-go writes back (the HTTP
// response for /mcp, the event stream for /sse). Ids that survive the
// round trip — every small integer and plain string — are left alone.
type exactIDs struct {
	mu sync.Mutex
	m  map[string]json.RawMessage // token (quoted) -> original id
}

// idTokenPrefix starts every token; it is what restore looks for.
const idTokenPrefix = `"tollgate-rpc-id-`

func newExactIDs() *exactIDs { return &exactIDs{m: map[string]json.RawMessage{}} }

// survives reports whether raw comes back unchanged as mcp-go echoes it and
// the gateway writes it: encoding/json's text with its HTML escapes
// unescaped (unescapingWriter), so that "<b>" survives, and "\u003cb\u003e",
// which encoding/json re-encodes alike but is written "<b>", does not. A
// number outside float64's range (1e400, a 5000-digit integer) is valid
// JSON and a valid JSON-RPC id, but mcp-go cannot decode it and would
// answer -32700 with a null id: it does not survive, so it travels as a
// token too. The ids clients send (small integers, plain strings) are
// recognised without decoding.
func survives(raw json.RawMessage) bool {
	if plainID(raw) {
		return true
	}
	var id mcp.RequestId
	if err := json.Unmarshal(raw, &id); err != nil {
		return false
	}
	out, err := json.Marshal(id)
	return err == nil && bytes.Equal(unescapeHTML(out), raw)
}

// plainID reports whether raw is an id that mcp-go's float64 and string
// round trip leaves byte for byte: an integer without sign or leading zero
// of at most 15 digits (exact in a float64), or a string of printable ASCII
// without escapes or characters encoding/json escapes.
func plainID(raw []byte) bool {
	switch {
	case len(raw) == 0:
		return false
	case raw[0] >= '1' && raw[0] <= '9':
		if len(raw) > 15 {
			return false
		}
		for _, c := range raw[1:] {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	case raw[0] == '0':
		return len(raw) == 1
	case raw[0] == '"':
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return false
		}
		for _, c := range raw[1 : len(raw)-1] {
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
		}
		return true
	}
	return false
}

// idTokenLen is the length of every token: the prefix, 32 hex digits and
// the closing quote.
const idTokenLen = len(idTokenPrefix) + 32 + 1

// rewrite returns body with its id replaced by a token when mcp-go would
// not echo it exactly, the token (nil when the body needs no change: it is
// returned as is), and a function that forgets the token (call it when the
// response can no longer come; a no-op without a token). Whether the body
// was rewritten is the token's presence, never the body's length: a
// re-encoded body can be as long as the original.
func (x *exactIDs) rewrite(body []byte, id json.RawMessage) ([]byte, json.RawMessage, func()) {
	if len(id) == 0 || kind(id) == 'n' || survives(id) {
		return body, nil, func() {}
	}
	return x.tokenize(body, id)
}

// tokenize is rewrite for any id: body with its id replaced by a new
// token, the token and its forget — every legacy request's id travels as
// one (reserveLegacy), so that each answer is known by its own token. A
// body that is no JSON object is returned unchanged, with no token.
func (x *exactIDs) tokenize(body []byte, id json.RawMessage) ([]byte, json.RawMessage, func()) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return body, nil, func() {}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := idTokenPrefix + hex.EncodeToString(b[:]) + `"`
	m["id"] = json.RawMessage(token)
	out, err := marshalJSON(m)
	if err != nil {
		return body, nil, func() {}
	}
	x.mu.Lock()
	x.m[token] = append(json.RawMessage(nil), id...)
	x.mu.Unlock()
	return out, json.RawMessage(token), func() {
		x.mu.Lock()
		delete(x.m, token)
		x.mu.Unlock()
	}
}

// restore replaces every known token in p by its original id, and forgets
// it: a request is answered once. The tokens are looked up where p holds
// one, not searched for one by one, so a write costs the same however many
// requests are waiting for their answers.
func (x *exactIDs) restore(p []byte) []byte {
	i := bytes.Index(p, []byte(idTokenPrefix))
	if i < 0 {
		return p
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	var found map[string]json.RawMessage
	for i >= 0 && i+idTokenLen <= len(p) {
		token := p[i : i+idTokenLen]
		if id, ok := x.m[string(token)]; ok {
			if found == nil {
				found = map[string]json.RawMessage{}
			}
			found[string(token)] = id
		}
		next := bytes.Index(p[i+1:], []byte(idTokenPrefix))
		if next < 0 {
			break
		}
		i += 1 + next
	}
	for token, id := range found {
		p = bytes.ReplaceAll(p, []byte(token), id)
		delete(x.m, token)
	}
	return p
}

// len is how many tokens wait for their answer.
func (x *exactIDs) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.m)
}

// idWriter restores ids in everything written through it. mcp-go writes
// each JSON-RPC message (a JSON body, or one SSE event) in a single Write,
// so a token is never split across two writes.
type idWriter struct {
	http.ResponseWriter
	ids *exactIDs
}

func (w *idWriter) Write(p []byte) (int, error) {
	q := w.ids.restore(p)
	if _, err := w.ResponseWriter.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *idWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *idWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveLegacyMessage hands a /messages request to mcp-go for the session
// whose stream is on this replica, with the /sse challenger: its body as
// reserveLegacy rewrote it (an id mcp-go would not echo exactly is a token,
// which the stream's writer restores), and, in its context, its place in
// the session's backlog, which its tool's result is counted in
// (chargeResults), and the stream its handler's notifications go on,
// queued before its answer (notifyClient).
func (g *Gateway) serveLegacyMessage(ctx context.Context, session string, lr *legacyRequest, serve func(*http.Request)) error {
	ctx = withResultCharge(context.WithValue(ctx, challengerKey{}, g.sseChallenges), lr)
	ctx = context.WithValue(ctx, legacyStreamKey{}, legacyStream{sse: g.sse, session: session})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/messages?sessionId="+url.QueryEscape(session), bytes.NewReader(lr.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	serve(req)
	return nil
}
