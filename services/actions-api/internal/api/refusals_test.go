package api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/actions-api/internal/api"
	"github.com/tollgate/tollgate/services/actions-api/internal/openapi"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// rawRequest writes req as it is to the actions-api's port and reads the
// answer: for what net/http's client would not send (a bad escape in the
// path, a chunked GET).
func (f *fleet) rawRequest(t *testing.T, req string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestBodyWithoutSemanticsIsRefused: a GET, HEAD or DELETE carrying a
// body (Content-Length above 0, or chunked) is a 400 invalid_request in
// the JSON error shape, the backend not called. The body was ignored:
// GET /actions/notes?text=a with {"text":"b"} in its body was answered
// 200 for "a", and a DELETE's body was dropped the same way. RFC 9110 sections 9.3.1, 9.3.2,
// 9.3.5: such content has no defined semantics and a server may reject
// it. No body, or Content-Length: 0, is served as before.
func TestBodyWithoutSemanticsIsRefused(t *testing.T) {
	svc := notesService("notes")
	svc.Methods = append(svc.Methods, registrytest.Method{Name: "DeleteNote", Action: &optionsv1.ActionsOperation{
		Method: "DELETE", Path: "/actions/notes/{text}", OperationId: "notesDelete", Summary: "Delete a note",
		RequiredScopes: []string{"notes.write"}, Consequential: true}})
	notes := registrytest.Start(t, "notes", []registrytest.Service{svc})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read notes.write"})
	for _, c := range []struct{ method, path, section string }{
		{http.MethodGet, "/actions/notes?text=a", "9.3.1"},
		{http.MethodDelete, "/actions/notes/a", "9.3.5"},
		{http.MethodGet, "/health", "9.3.1"}, // public
		{http.MethodHead, api.PathOpenAPI, "9.3.2"},
	} {
		h := bearer(tok)
		h.Set("Content-Type", "application/json")
		r := f.doBody(t, c.method, c.path, h, `{"text":"b"}`)
		if r.status != 400 || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s with a body: %d %v %s, want 400, no-store", c.method, c.path, r.status, r.header, r.body)
		}
		want := "a " + c.method + " request carries no body (RFC 9110 section " + c.section + "): send the parameters in the path and query string"
		if c.method != http.MethodHead && (r.err.Error != "invalid_request" || r.err.Description != want) {
			t.Errorf("%s %s with a body: %s, want invalid_request %q", c.method, c.path, r.body, want)
		}
	}
	// Chunked: a body of unknown length.
	res, body := f.rawRequest(t, "GET /actions/notes?text=a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+
		"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if res.StatusCode != 400 || res.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error":"invalid_request"`) {
		t.Errorf("a chunked GET: %d %v %s, want a 400 JSON error", res.StatusCode, res.Header, body)
	}
	if calls := notes.Calls(); len(calls) != 0 {
		t.Fatalf("the backend was called for a request with a body: %+v", calls)
	}

	// Without a body, or with an empty one, the calls are served.
	if r := f.do(t, http.MethodGet, "/actions/notes?text=a", bearer(tok)); r.status != 200 {
		t.Errorf("GET without a body: %d %s", r.status, r.body)
	}
	if r := f.do(t, http.MethodDelete, "/actions/notes/a", bearer(tok)); r.status != 200 {
		t.Errorf("DELETE without a body: %d %s", r.status, r.body)
	}
	if res, body := f.rawRequest(t, "GET /actions/notes?text=a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\nContent-Length: 0\r\n\r\n"); res.StatusCode != 200 {
		t.Errorf("GET with Content-Length: 0: %d %s", res.StatusCode, body)
	}
	if calls := notes.Calls(); len(calls) != 3 {
		t.Errorf("the backend's calls: %+v, want the three without a body", calls)
	}
}

// TestBodyIsJudgedAfterRouteAndToken: the body rules (no content on a
// GET, HEAD or DELETE; a POST within MAX_BODY_BYTES) apply to a request
// only once its route and its caller are known. In 7d2c7f2 the GET/HEAD/
// DELETE rule was middleware of the whole API, run before routing and
// authentication: a GET with a body and no token was a 400 about the body
// instead of the 401 and its challenge that tells a client to get a
// token, an unknown path with a body a 400 instead of a 404, and a method
// the path does not take a 400 instead of a 405 with Allow; echo's body
// limit, route middleware before the operation, answered an
// unauthenticated POST over the limit 413 instead of 401. Now each is
// refused for its route or its token, with no word about the body, and
// the body rules answer only an authenticated request to an operation.
// The backend is called for none of them.
func TestBodyIsJudgedAfterRouteAndToken(t *testing.T) {
	svc := notesService("notes")
	svc.Methods = append(svc.Methods, registrytest.Method{Name: "DeleteNote", Action: &optionsv1.ActionsOperation{
		Method: "DELETE", Path: "/actions/notes/{text}", OperationId: "notesDelete", Summary: "Delete a note",
		RequiredScopes: []string{"notes.write"}, Consequential: true}})
	notes := registrytest.Start(t, "notes", []registrytest.Service{svc})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr, "MAX_BODY_BYTES": "1024"})
	readOnly := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read"})
	writer := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read notes.write"})
	other := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: mcpAudience, Scope: "notes.read notes.write"})
	small, big := `{"text":"b"}`, `{"text":"`+strings.Repeat("x", 2048)+`"}`
	noChallenge := `Bearer realm="tollgate-actions", resource_metadata="` + metadataURL + `", scope=`
	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code, challenge, allow          string
	}{
		{"GET, no token", http.MethodGet, "/actions/notes?text=a", "", small, 401, "invalid_token", noChallenge + `"notes.read"`, ""},
		{"DELETE, no token", http.MethodDelete, "/actions/notes/a", "", small, 401, "invalid_token", noChallenge + `"notes.write"`, ""},
		{"GET, token for another audience", http.MethodGet, "/actions/notes?text=a", other, small, 401, "invalid_token", `error="invalid_token"`, ""},
		{"DELETE, scope missing", http.MethodDelete, "/actions/notes/a", readOnly, small, 403, "insufficient_scope", `error="insufficient_scope"`, ""},
		{"POST over the limit, no token", http.MethodPost, "/actions/notes", "", big, 401, "invalid_token", noChallenge + `"notes.write"`, ""},
		{"POST over the limit, scope missing", http.MethodPost, "/actions/notes", readOnly, big, 403, "insufficient_scope", `error="insufficient_scope"`, ""},
		{"GET, unknown path", http.MethodGet, "/actions/nope", writer, small, 404, "not_found", "", ""},
		{"DELETE, unknown path", http.MethodDelete, "/actions/nope/a", "", small, 404, "not_found", "", ""},
		{"HEAD, unknown path", http.MethodHead, "/actions/nope", "", small, 404, "", "", ""},
		{"DELETE, path without DELETE", http.MethodDelete, "/actions/notes", writer, small, 405, "method_not_allowed", "", "OPTIONS, GET, HEAD, POST"},
		{"HEAD, no token", http.MethodHead, "/actions/notes?text=a", "", small, 401, "", noChallenge + `"notes.read"`, ""},
		{"HEAD, path without GET", http.MethodHead, "/actions/notes/a", writer, small, 405, "", "", "OPTIONS, DELETE"},
		{"GET, path without GET", http.MethodGet, "/actions/notes/a", writer, small, 405, "method_not_allowed", "", "OPTIONS, DELETE"},
		// Authenticated, to an operation: the body rules answer.
		{"GET with a body", http.MethodGet, "/actions/notes?text=a", writer, small, 400, "invalid_request", "", ""},
		{"POST over the limit", http.MethodPost, "/actions/notes", writer, big, 413, "request_too_large", "", ""},
	} {
		h := http.Header{"Content-Type": {"application/json"}}
		if c.token != "" {
			h = bearer(c.token)
			h.Set("Content-Type", "application/json")
		}
		r := f.doBody(t, c.method, c.path, h, c.body)
		if r.status != c.status || r.err.Error != c.code || r.header.Get("Allow") != c.allow {
			t.Errorf("%s: %d %s (Allow %q), want %d %s (Allow %q)", c.name, r.status, r.body, r.header.Get("Allow"), c.status, c.code, c.allow)
		}
		if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, c.challenge) || (c.challenge == "") != (ch == "") {
			t.Errorf("%s: WWW-Authenticate %q, want one with %q", c.name, ch, c.challenge)
		}
		if c.status < 413 && c.status != 400 && (strings.Contains(string(r.body), "body") || strings.Contains(r.header.Get("WWW-Authenticate"), "body")) {
			t.Errorf("%s: refused with a word about the body: %s %q", c.name, r.body, r.header.Get("WWW-Authenticate"))
		}
	}
	// A POST over the limit of unknown length (chunked) is a 401 without
	// a token too, the body never read; with one, a 413.
	for _, c := range []struct {
		auth   string
		status int
	}{{"", 401}, {"Authorization: Bearer " + writer + "\r\n", 413}} {
		res, body := f.rawRequest(t, "POST /actions/notes HTTP/1.1\r\nHost: x\r\n"+c.auth+"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big))
		if res.StatusCode != c.status {
			t.Errorf("a chunked POST over the limit (%q): %d %s, want %d", c.auth, res.StatusCode, body, c.status)
		}
	}
	if calls := notes.Calls(); len(calls) != 0 {
		t.Fatalf("the backend was called: %+v", calls)
	}
}

// TestPostBodyIsReadAsSent: a POST body is read as JSON text as it
// arrives, so one the API would read otherwise than its client meant is
// refused, the backend not called. A body with a content coding
// (Content-Encoding: gzip) was decoded compressed and refused with
// protojson's complaint about its first byte; it and a Content-Type other
// than application/json are a 415 Unsupported Media Type (RFC 9110
// section 15.5.16; they were 400s) naming what would have been accepted:
// Accept-Encoding: identity (section 12.5.3), Accept: application/json
// (section 12.5.1). One with two Content-Type headers was read by the
// first, where a proxy in front may judge it by the last: a 400.
// "Content-Encoding: identity" and a body without Content-Type (read as
// JSON) are served.
func TestPostBodyIsReadAsSent(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.write"})
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	io.WriteString(w, `{"text":"b"}`)
	w.Close()
	const (
		coding = "a Content-Encoding is not supported: send the JSON body uncompressed"
		media  = "Content-Type must be application/json"
	)
	for _, c := range []struct {
		name   string
		header http.Header
		body   string
		status int
		want   string
		accept [2]string // the header naming what a 415 accepts
	}{
		{"gzip", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, gz.String(),
			415, coding, [2]string{"Accept-Encoding", "identity"}},
		{"gzip of nothing", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, "",
			415, coding, [2]string{"Accept-Encoding", "identity"}},
		{"two codings", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity", "gzip"}}, `{"text":"b"}`,
			415, coding, [2]string{"Accept-Encoding", "identity"}},
		{"form", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, `text=b`,
			415, media, [2]string{"Accept", "application/json"}},
		{"text/plain of JSON", http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, `{"text":"b"}`,
			415, media, [2]string{"Accept", "application/json"}},
		{"a suffix type", http.Header{"Content-Type": {"application/merge-patch+json"}}, `{"text":"b"}`,
			415, media, [2]string{"Accept", "application/json"}},
		{"unparsable", http.Header{"Content-Type": {"application/json; =x"}}, `{"text":"b"}`,
			415, media, [2]string{"Accept", "application/json"}},
		{"JSON, then text", http.Header{"Content-Type": {"application/json", "text/plain"}}, `{"text":"b"}`,
			400, "Content-Type must be application/json, given once", [2]string{}},
		{"text, then JSON", http.Header{"Content-Type": {"text/plain", "application/json"}}, `{"text":"b"}`,
			400, "Content-Type must be application/json, given once", [2]string{}},
	} {
		h := bearer(tok)
		for k, vs := range c.header {
			h[k] = vs
		}
		h.Set("Origin", "https://chatgpt.com") // a listed origin
		r := f.doBody(t, http.MethodPost, "/actions/notes", h, c.body)
		if r.status != c.status || r.err.Error != "invalid_request" || r.err.Description != c.want {
			t.Errorf("%s: %d %s, want %d invalid_request %q", c.name, r.status, r.body, c.status, c.want)
		}
		// The browser's script may read what the 415 names.
		if c.accept[0] != "" && !exposed(r.header, c.accept[0]) {
			t.Errorf("%s: Access-Control-Expose-Headers %q lacks %s", c.name, r.header.Get("Access-Control-Expose-Headers"), c.accept[0])
		}
		for _, name := range []string{"Accept", "Accept-Encoding"} {
			want := ""
			if name == c.accept[0] {
				want = c.accept[1]
			}
			if got := r.header.Get(name); got != want {
				t.Errorf("%s: %s: %q, want %q", c.name, name, got, want)
			}
		}
	}
	if calls := notes.Calls(); len(calls) != 0 {
		t.Fatalf("the backend was called: %+v", calls)
	}
	for _, h := range []http.Header{
		{"Content-Type": {"application/json"}, "Content-Encoding": {"identity"}},
		{},
	} {
		h.Set("Authorization", "Bearer "+tok)
		if r := f.doBody(t, http.MethodPost, "/actions/notes", h, `{"text":"b"}`); r.status != 200 || string(r.body) != `{"text":"b","backend":"notes"}` {
			t.Errorf("POST with %v: %d %s, want it served", h, r.status, r.body)
		}
	}
}

// TestUnparsableRequestIsNetHTTPsPlainText: a request Go's net/http
// cannot parse is refused while it is read, before any handler runs, in
// plain text with the connection closed: a request target whose path has a
// bad percent-escape (/actions/notes/%ZZ fails url.ParseRequestURI) and a
// malformed header line are "400 Bad Request", a header block over
// app.MaxHeaderBytes (64 KiB) is "431 Request Header Fields Too
// Large", a transfer coding other than chunked a 501, an Expect other
// than 100-continue a 417 without content. These are the refusals that are not the JSON error shape, as
// docs/reference/actions.md says (net/http has no hook for them), and the
// document's Error schema says so too: it said "used by every failure".
// The backend is not called.
func TestUnparsableRequestIsNetHTTPsPlainText(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read"})
	auth := "Authorization: Bearer " + tok + "\r\n"
	for _, c := range []struct {
		name, req string
		status    int
		body      string
	}{
		{"bad escape in a path parameter", "GET /actions/notes/%ZZ HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 400, "400 Bad Request"},
		{"bad escape before the query", "GET /actions/%zz?text=a HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 400, "400 Bad Request"},
		{"truncated escape", "GET /actions/notes% HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 400, "400 Bad Request"},
		{"malformed header line", "GET /actions/notes?text=a HTTP/1.1\r\nHost: x\r\n" + auth + "No colon here\r\n\r\n", 400, "400 Bad Request"},
		{"headers over 64 KiB", "GET /actions/notes?text=a HTTP/1.1\r\nHost: x\r\n" + auth + "X-Big: " + strings.Repeat("a", 64<<10+8192) + "\r\n\r\n", 431, "431 Request Header Fields Too Large"},
		{"transfer coding other than chunked", "POST /actions/notes HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "Unsupported transfer encoding"},
		// No content at all: 417 and the connection closed.
		{"expectation other than 100-continue", "GET /actions/notes?text=a HTTP/1.1\r\nHost: x\r\n" + auth + "Expect: 200-ok\r\n\r\n", 417, ""},
		{"HTTP version not served", "GET /actions/notes?text=a HTTP/3.0\r\nHost: x\r\n" + auth + "\r\n", 505, "505 HTTP Version Not Supported: unsupported protocol version"},
	} {
		res, body := f.rawRequest(t, c.req)
		ct := "text/plain; charset=utf-8"
		if c.body == "" {
			ct = ""
		}
		if res.StatusCode != c.status || res.Header.Get("Content-Type") != ct || body != c.body || !res.Close {
			t.Errorf("%s: %d %v %q, want net/http's plain-text %d %q and the connection closed", c.name, res.StatusCode, res.Header, body, c.status, c.body)
		}
	}
	if calls := notes.Calls(); len(calls) != 0 {
		t.Errorf("the backend was called: %+v", calls)
	}
	desc := f.doc.Components.Schemas[openapi.ErrorSchema].Value.Description
	for _, want := range []string{"every failure the API answers", "plain text", "percent-escape", "malformed header (400)", "(431)", "(501)", "(417, no body)", "(505)"} {
		if !strings.Contains(desc, want) {
			t.Errorf("the document's Error schema: %q, want it to say %q", desc, want)
		}
	}
}
