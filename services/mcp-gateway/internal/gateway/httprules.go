package gateway

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// checkPostMedia answers a POST /mcp whose media types the gateway cannot
// serve, and reports whether it did (docs/reference/mcp.md, "Errors at the
// HTTP level"):
//
//   - 415 Unsupported Media Type when Content-Type is not application/json
//     (parameters and case aside) or is missing: Streamable HTTP has every
//     POST body be one JSON-RPC message (RFC 9110 §15.5.16). mcp-go
//     answered a plain-text 400. Parameters that mime.ParseMediaType
//     cannot parse (jsonMediaType) do not refuse the type, and mcp-go,
//     which parses the header again, is handed application/json.
//   - 406 Not Acceptable when an Accept header is present and does not
//     admit application/json (RFC 9110 §12.5.1, §15.5.7): every answer
//     the gateway sends may be JSON — it becomes an SSE stream only when
//     there are messages to send before it and the client admits
//     text/event-stream too (answerAsEventStream) — and Streamable HTTP
//     (2025-03-26, 2025-06-18: "Sending Messages to the Server") has the
//     client list both types. So Accept: text/event-stream alone, which
//     used to get a JSON answer it did not admit, is refused, as the
//     official TypeScript SDK's server refuses it. A media range admits
//     application/json when it names it or is a wildcard (*/*,
//     application/*) and its q is not 0. A request without Accept (or with
//     an empty one) is served: curl and some MCP clients send none, and
//     the JSON answer is what they get.
//
// Both bodies are JSON-RPC errors with id null, which MCP clients parse.
func (g *Gateway) checkPostMedia(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct != "application/json" {
		ok, unparsable := jsonMediaType(ct)
		if unparsable {
			r.Header.Set("Content-Type", "application/json")
		}
		if !ok {
			g.metrics.request(transportStreamable, "POST", "unsupported_media_type")
			shown := strconv.Quote(truncate(ct, maxLoggedName))
			if ct == "" {
				shown = "none"
			}
			writeHTTPError(w, http.StatusUnsupportedMediaType, mcp.INVALID_REQUEST,
				"Content-Type must be application/json (a JSON-RPC message), not "+shown)
			return true
		}
	}
	if !acceptsJSON(r) {
		g.metrics.request(transportStreamable, "POST", "not_acceptable")
		writeHTTPError(w, http.StatusNotAcceptable, mcp.INVALID_REQUEST,
			"Accept must admit application/json (every answer may be JSON; Streamable HTTP clients list application/json and text/event-stream), not "+strconv.Quote(truncate(strings.Join(r.Header.Values("Accept"), ", "), 2*maxLoggedName)))
		return true
	}
	return false
}

// checkGetMedia answers a GET /mcp or GET /sse (transport) whose Accept
// is present and admits no event stream (neither text/event-stream nor a
// wildcard that covers it: text/*, */*) with 406 Not Acceptable, and
// reports whether it did. Streamable HTTP ("Listening for Messages from
// the Server") has the client list text/event-stream in a GET's Accept;
// the answer is only ever an SSE stream, which such a client said it
// cannot take (RFC 9110 §12.5.1, §15.5.7). The official TypeScript SDK's
// server answers it 406 too. On /sse the refusal comes before the session
// is created, so it takes no place of SESSION_LIMIT_PER_SUBJECT. Without
// Accept (or with an empty one) the stream is served, as a POST without
// Accept is. The body is a JSON-RPC error with id null.
func (g *Gateway) checkGetMedia(w http.ResponseWriter, r *http.Request, transport string) bool {
	if getAcceptable(r) {
		return false
	}
	g.metrics.request(transport, "GET", "not_acceptable")
	writeHTTPError(w, http.StatusNotAcceptable, mcp.INVALID_REQUEST,
		"Accept must admit text/event-stream (a GET opens the server's event stream), not "+strconv.Quote(truncate(strings.Join(r.Header.Values("Accept"), ", "), 2*maxLoggedName)))
	return true
}

// jsonMediaType reports whether the Content-Type ct names application/json
// (case and parameters aside), and whether ct is application/json with
// parameters mime.ParseMediaType refuses: a malformed one (its
// ErrInvalidMediaParameter, which net/http's form parsing also reads past)
// or one named twice with different values ("mime: duplicate parameter
// name", for which it does not return the type). application/json defines
// no parameters (RFC 8259 §11), so they never change what the body is.
func jsonMediaType(ct string) (ok, unparsable bool) {
	if ct == "application/json" {
		return true, false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		return mt == "application/json", false
	}
	base, _, _ := strings.Cut(ct, ";")
	if strings.EqualFold(strings.TrimSpace(base), "application/json") {
		return true, true
	}
	return false, false
}

// getAcceptable reports whether a GET stream may be served to r: its
// Accept admits text/event-stream, or it has no (or only empty) Accept.
func getAcceptable(r *http.Request) bool {
	admits, present := acceptAdmits(r, "text/event-stream")
	return admits || !present
}

// acceptsJSON reports whether r's Accept admits application/json, or r
// has no (or only empty) Accept headers.
func acceptsJSON(r *http.Request) bool {
	admits, present := acceptAdmits(r, "application/json")
	return admits || !present
}

// acceptsEventStream reports whether r's Accept admits text/event-stream
// (an answer the gateway may turn into a stream); no Accept does not.
func acceptsEventStream(r *http.Request) bool {
	admits, _ := acceptAdmits(r, "text/event-stream")
	return admits
}

// acceptAdmits reports whether r's Accept headers admit one of types
// (lower-case type/subtype, compared case-insensitively), and whether they
// hold any media range at all. A type's quality is that of the most
// specific range that matches it (RFC 9110 §12.5.1): the type itself, then
// its type/*, then */*; so "text/event-stream;q=0, */*" does not admit
// text/event-stream. A type is admitted when a range of that specificity
// gives it a quality above 0; parameters other than q are not compared.
// It does not allocate (it runs on every POST).
func acceptAdmits(r *http.Request, types ...string) (admits, present bool) {
	for _, t := range types {
		major, _, _ := strings.Cut(t, "/")
		best, ok := 0, false // specificity of the best match; a nonzero q at it
		for _, v := range r.Header.Values("Accept") {
			for rest := v; rest != ""; {
				var part string
				part, rest, _ = strings.Cut(rest, ",")
				mt, params, _ := strings.Cut(part, ";")
				mt = strings.TrimSpace(mt)
				if mt == "" {
					continue
				}
				present = true
				spec := 0
				if lowerEquals(mt, t) {
					spec = 3
				} else if main, sub, _ := strings.Cut(mt, "/"); sub == "*" && lowerEquals(main, major) {
					spec = 2
				} else if mt == "*/*" {
					spec = 1
				}
				if spec == 0 || spec < best {
					continue
				}
				if spec > best {
					best, ok = spec, false
				}
				ok = ok || !zeroQuality(params)
			}
		}
		if ok {
			return true, true
		}
	}
	return false, present
}

// zeroQuality reports whether a media range's parameters (what follows its
// first ';') give it q=0: not acceptable (RFC 9110 §12.4.2).
func zeroQuality(params string) bool {
	for rest := params; rest != ""; {
		var p string
		p, rest, _ = strings.Cut(rest, ";")
		name, value, _ := strings.Cut(p, "=")
		if lowerEquals(strings.TrimSpace(name), "q") {
			f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return err == nil && f <= 0
		}
	}
	return false
}
