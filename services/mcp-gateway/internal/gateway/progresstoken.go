package gateway

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// Progress tokens are echoed as the request wrote them. MCP
// (basic/utilities/progress) has every notifications/progress of a
// request carry the progressToken of its _meta, a string or an integer;
// JSON puts no bound on an integer's digits. mcp-go decodes
// _meta.progressToken into an any: a number through float64, so
// 9007199254740993 (2^53+1) came back as 9007199254740992 and a number
// beyond float64's range (1e400) failed the whole request, and a string
// is re-encoded. As the request ids (exactIDs), a token mcp-go would not
// echo byte for byte is rewritten before mcp-go reads the message: into a
// string, progressTokenPrefix followed by the token as written
// (wrapProgressTokens), and the handlers that send progress (progress,
// the conformance fixture) send the token it holds back as raw JSON
// (requestProgressToken). The wrapped token travels in the body: a legacy
// message is wrapped on the replica it was posted to and relayed so to
// the replica of its stream. A
// client's own string that starts with the prefix is wrapped too, so a
// client cannot make the gateway write a JSON value it did not send. The
// token's length is bounded before (MaxProgressTokenBytes).
const progressTokenPrefix = "tollgate-progress-token:"

// requestProgressToken is the progress token of req as its client wrote
// it (json.RawMessage for one the gateway wrapped; as mcp-go decoded it
// otherwise), or nil when the request asked for no progress.
func requestProgressToken(req mcp.CallToolRequest) any {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return nil
	}
	tok := req.Params.Meta.ProgressToken
	if s, ok := tok.(string); ok {
		if raw, ok := strings.CutPrefix(s, progressTokenPrefix); ok && json.Valid([]byte(raw)) {
			return json.RawMessage(raw)
		}
	}
	return tok
}

// wrapMessageProgressTokens is wrapProgressTokens for a message msg was
// decoded from: one that decoded whole without a progress token (read
// from _meta as mcp-go reads it: the same mcp.Meta, in the same member)
// has none mcp-go would read, and is not read again.
func wrapMessageProgressTokens(body []byte, msg message) ([]byte, bool) {
	if msg.decoded && (msg.Params.Meta == nil || msg.Params.Meta.ProgressToken == nil) {
		return body, false
	}
	return wrapProgressTokens(body)
}

// wrapProgressTokens returns body with every params._meta.progressToken
// that mcp-go would not echo byte for byte wrapped (progressTokenPrefix),
// and whether it changed anything. It reads the members mcp-go reads:
// "params" and "_meta" in any letter case (encoding/json matches struct
// fields so), "progressToken" exactly (mcp.Meta decodes _meta into a
// map), names unescaped; each such token is wrapped, so the one mcp-go
// keeps (the last) is too. Only the tokens' bytes change. body must be
// valid JSON (the envelope check refused anything else).
func wrapProgressTokens(body []byte) ([]byte, bool) {
	type span struct{ start, end int }
	var wrap []span
	eachMemberAt(body, 0, func(key []byte, start, end int) {
		if string(key) != "params" && !foldsTo(key, "params") {
			return
		}
		eachMemberAt(body, start, func(key []byte, start, end int) {
			if string(key) != "_meta" && !foldsTo(key, "_meta") {
				return
			}
			eachMemberAt(body, start, func(key []byte, start, end int) {
				if string(key) == "progressToken" && !echoedExactly(body[start:end]) {
					wrap = append(wrap, span{start, end})
				}
			})
		})
	})
	if len(wrap) == 0 {
		return body, false
	}
	out := make([]byte, 0, len(body)+len(wrap)*(len(progressTokenPrefix)+16))
	last := 0
	for _, s := range wrap {
		out = append(out, body[last:s.start]...)
		str, err := json.Marshal(progressTokenPrefix + string(body[s.start:s.end]))
		if err != nil {
			return body, false // unreachable: a string always encodes
		}
		out = append(out, str...)
		last = s.end
	}
	return append(out, body[last:]...), true
}

// echoedExactly reports whether mcp-go echoes the progress token raw byte
// for byte: what it echoes of a request id (plainID: a small integer, a
// plain string), but not a string the gateway would take for one it
// wrapped.
func echoedExactly(raw []byte) bool {
	return plainID(raw) && !bytes.HasPrefix(raw, []byte(`"`+progressTokenPrefix))
}

// eachMemberAt calls f with the name (unescaped) of each member of the
// JSON object at b[i] (after white space) and its value's span in b,
// b[start:end], without the white space around it. Anything but an
// object at b[i] has no members. b must be valid JSON.
func eachMemberAt(b []byte, i int, f func(key []byte, start, end int)) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] == '"' {
		kend := skipValue(b, i) // past the name's closing quote
		if kend > len(b) || kend < i+2 {
			return
		}
		key := b[i+1 : kend-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if json.Unmarshal(b[i:kend], &s) != nil {
				return
			}
			key = []byte(s)
		}
		i = skipSpace(b, kend) // at ':'
		if i >= len(b) || b[i] != ':' {
			return
		}
		i = skipSpace(b, i+1)
		vend := skipValue(b, i)
		end := i + len(bytes.TrimRight(b[i:vend], " \t\r\n"))
		f(key, i, end)
		i = skipSpace(b, vend)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i = skipSpace(b, i+1)
	}
}
