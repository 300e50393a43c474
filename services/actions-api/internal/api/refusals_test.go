package api_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/actions-api/internal/api"
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

// TestBadPathEscapeIsNetHTTPs400: a request target whose path has a bad
// percent-escape (/actions/notes/%ZZ) fails Go's url.ParseRequestURI in
// net/http's reading of the request, which answers "400 Bad Request" in
// plain text and closes the connection before any handler runs: the one
// refusal that is not the JSON error shape, as docs/reference/actions.md
// says (net/http has no hook for it). The backend is not called.
func TestBadPathEscapeIsNetHTTPs400(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read"})
	for _, target := range []string{"/actions/notes/%ZZ", "/actions/%zz?text=a", "/actions/notes%"} {
		res, body := f.rawRequest(t, "GET "+target+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
		if res.StatusCode != 400 || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" || body != "400 Bad Request" || !res.Close {
			t.Errorf("GET %s: %d %v %q, want net/http's plain-text 400 and the connection closed", target, res.StatusCode, res.Header, body)
		}
	}
	if calls := notes.Calls(); len(calls) != 0 {
		t.Errorf("the backend was called: %+v", calls)
	}
}
