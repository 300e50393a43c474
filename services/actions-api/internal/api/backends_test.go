package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

func notesService(pkg string) registrytest.Service {
	return registrytest.Service{
		Package: pkg, Name: "NotesService",
		Scopes: []*optionsv1.Scope{{Name: pkg + ".read", Description: "Read your notes"}, {Name: pkg + ".write", Description: "Change your notes"}},
		Methods: []registrytest.Method{
			{Name: "ListNotes", Action: &optionsv1.ActionsOperation{Method: "GET", Path: "/actions/" + pkg, OperationId: pkg + "List",
				Summary: "List notes", RequiredScopes: []string{pkg + ".read"}}},
			{Name: "AddNote", Action: &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/" + pkg, OperationId: pkg + "Add",
				Summary: "Add a note", RequiredScopes: []string{pkg + ".write"}, Consequential: true}},
		},
	}
}

// A backend configured in CAPABILITY_BACKENDS is served with no code for
// it: its operations are in the document and routed to it with the
// caller's token; a backend started later, and an operation it drops,
// show after a refresh.
func TestConfiguredBackendIsServedAndFollowed(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	late := registrytest.Start(t, "late", []registrytest.Service{notesService("todo")})
	late.Stop() // down at start
	f := start(t, map[string]string{
		"CAPABILITY_BACKENDS":         "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr + ",late=" + late.Addr,
		"CAPABILITY_REFRESH_INTERVAL": "1s",
	})
	if op := f.doc.Paths.Find("/actions/notes"); op == nil || op.Get == nil || op.Post == nil || op.Post.Extensions["x-openai-isConsequential"] != true {
		t.Fatalf("notes operations not in the document: %+v", op)
	}
	if f.doc.Paths.Find("/health") == nil {
		t.Error("capability-core's operations are gone")
	}
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read"})
	r := f.do(t, http.MethodGet, "/actions/notes?text=hello", bearer(tok))
	if r.status != 200 || string(r.body) != `{"text":"hello","backend":"notes"}` {
		t.Fatalf("GET /actions/notes: %d %s", r.status, r.body)
	}
	if calls := notes.Calls(); len(calls) != 1 || calls[0].MD.Get("authorization")[0] != "Bearer "+tok {
		t.Errorf("backend calls: %+v", calls)
	}
	r = f.do(t, http.MethodPost, "/actions/notes", bearer(tok))
	if r.status != 403 {
		t.Errorf("POST without notes.write: %d %s", r.status, r.body)
	}
	// A backend never reached has no routes yet: its paths are unknown,
	// 404 like any other, until a refresh reaches it (actions.md).
	if r := f.do(t, http.MethodGet, "/actions/todo", bearer(tok)); r.status != 404 || r.err.Description != "no such endpoint" {
		t.Errorf("a down backend's operation: %d %s", r.status, r.body)
	}

	// The late backend comes up; notes drops AddNote.
	late.Restart(t)
	dropped := notesService("notes")
	dropped.Methods = dropped.Methods[:1]
	notes.Serve(t, dropped)
	eventually(t, "the document to follow the backends", func() bool {
		f.loadDocument(t)
		item := f.doc.Paths.Find("/actions/notes")
		return f.doc.Paths.Find("/actions/todo") != nil && item != nil && item.Post == nil
	})
	tok = f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "todo.read notes.write"})
	if r := f.do(t, http.MethodGet, "/actions/todo?text=x", bearer(tok)); r.status != 200 || !strings.Contains(string(r.body), `"backend":"late"`) {
		t.Errorf("GET /actions/todo: %d %s", r.status, r.body)
	}
	if r := f.do(t, http.MethodPost, "/actions/notes", bearer(tok)); r.status != 405 && r.status != 404 {
		t.Errorf("a removed operation: %d %s", r.status, r.body)
	}
}

// Every gRPC code a backend answers maps by fault.AnswerFor, the table
// the mcp-gateway shares (docs/reference/actions.md, "Errors"): a caller
// error passes the backend's message on with its 4xx (cut to 1 KiB: a
// backend's 100 KiB message is not passed on whole), a server fault is a
// 5xx with a fixed text.
func TestBackendStatusCodesMapToHTTP(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read"})
	for _, c := range []struct {
		code   codes.Code
		msg    string
		status int
		err    string
	}{
		{codes.InvalidArgument, "limit must be 0 to 100", 400, "invalid_request"},
		{codes.OutOfRange, "page 9 is past the last page", 400, "invalid_request"},
		{codes.FailedPrecondition, "the note is locked", 400, "invalid_request"},
		{codes.NotFound, `no note "n1"`, 404, "not_found"},
		{codes.AlreadyExists, "a note with this text exists", 409, "conflict"},
		{codes.PermissionDenied, "the token lacks notes.admin", 403, "insufficient_scope"},
		{codes.ResourceExhausted, "the notes store is full", 429, "rate_limited"},
		{codes.Unauthenticated, "token revoked", 401, "invalid_token"},
		{codes.Unavailable, "database down at 10.0.0.7", 503, "temporarily_unavailable"},
		{codes.DeadlineExceeded, "query took too long", 503, "temporarily_unavailable"},
		{codes.Internal, "nil pointer in handler", 500, "server_error"},
		{codes.Aborted, "transaction aborted", 500, "server_error"},
		{codes.Unimplemented, "not yet", 500, "server_error"},
		{codes.Canceled, "the backend gave up", 503, "temporarily_unavailable"},
		{codes.Unknown, "panic: runtime error at /srv/notes/store.go:42", 500, "server_error"},
		{codes.DataLoss, "page 7 of notes.db is corrupt", 500, "server_error"},
		// 9,000 bytes: passed on as its first 1,008 bytes (336 whole
		// three-byte runes) and the marker, 1,023 bytes in all, in the
		// body and (PermissionDenied) the challenge. (The message rides in
		// the query, percent-encoded: 27 KB of the 64 KiB a request's
		// line and headers may take, app.MaxHeaderBytes.)
		{codes.InvalidArgument, strings.Repeat("€", 3000), 400, "invalid_request"},
		{codes.PermissionDenied, strings.Repeat("€", 3000), 403, "insufficient_scope"},
	} {
		t.Run(c.code.String(), func(t *testing.T) {
			want := c.msg
			switch a := fault.AnswerFor(c.code); {
			case len(c.msg) > 1024:
				want = strings.Repeat("€", 336) + "... (truncated)"
			case a.Transient():
				want = "the capability service is unavailable; retry later"
			case !a.CallerError:
				want = "unexpected error"
			}
			r := f.do(t, http.MethodGet, "/actions/notes?text="+url.QueryEscape(registrytest.FailText(c.code, c.msg)), bearer(tok))
			if r.status != c.status || r.err.Error != c.err || r.err.Description != want {
				t.Errorf("%d %s, want %d %s %q", r.status, r.body, c.status, c.err, want)
			}
			if ch := r.header.Get("WWW-Authenticate"); (c.status == 401 || c.status == 403) != (ch != "") {
				t.Errorf("WWW-Authenticate = %q", ch)
			} else if len(c.msg) > 1024 && ch != "" && !strings.Contains(ch, `error_description="`+strings.Repeat("'", 336)+`... (truncated)"`) {
				t.Errorf("WWW-Authenticate of a 100 KiB message (%d bytes) = %.200q…", len(ch), ch)
			}
		})
	}
}

// TestMalformedQueryIsRefused: a query string Go's url.ParseQuery cannot
// read whole (a ";" separator, a bad percent escape) is a 400 naming the
// problem, and the backend is not called. The parameters came from
// Request.URL.Query(), which leaves such a pair out without a word:
// "?text=a;b" and "?text=%ZZ" reached the backend as a call without
// text, answered 200. A POST's query, malformed or not, is refused as
// any query of a POST is.
func TestMalformedQueryIsRefused(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read notes.write"})
	for _, c := range []struct{ method, query, want string }{
		{http.MethodGet, "text=a;b", `the query string is malformed: invalid semicolon separator in query`},
		{http.MethodGet, "text=%ZZ", `the query string is malformed: invalid URL escape "%ZZ"`},
		{http.MethodGet, "text=ok&x;y", `the query string is malformed: invalid semicolon separator in query`},
		{http.MethodPost, ";", "this operation takes a JSON body, not query parameters"},
		{http.MethodPost, "%ZZ", "this operation takes a JSON body, not query parameters"},
	} {
		r := f.do(t, c.method, "/actions/notes?"+c.query, bearer(tok))
		if r.status != 400 || r.err.Error != "invalid_request" || r.err.Description != c.want {
			t.Errorf("%s ?%s: %d %s, want 400 %q", c.method, c.query, r.status, r.body, c.want)
		}
	}
	if r := f.do(t, http.MethodGet, "/health?a;b", nil); r.status != 400 {
		t.Errorf("public GET /health?a;b: %d %s, want 400", r.status, r.body)
	}
	if calls := notes.Calls(); len(calls) != 0 {
		t.Errorf("the backend was called for a malformed query: %+v", calls)
	}
	if r := f.do(t, http.MethodGet, "/actions/notes?text=a%3Bb", bearer(tok)); r.status != 200 || string(r.body) != `{"text":"a;b","backend":"notes"}` {
		t.Errorf("an escaped semicolon: %d %s", r.status, r.body)
	}
}

// TestTimedOutWriteIsNotSaidRetryable: a call that outlives
// CORE_CALL_TIMEOUT reached the backend, which may finish it. For a read
// (and an idempotent write) the 503 says "retry later"; for a write that
// is neither (AddNote: consequential, idempotency_level unset) it says
// the change may have been made — the backend did receive it — instead
// of inviting the GPT to add the note a second time.
func TestTimedOutWriteIsNotSaidRetryable(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr, "CORE_CALL_TIMEOUT": "300ms"})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read notes.write"})
	// The document says so too: AddNote's 503, not ListNotes'.
	item := f.doc.Paths.Find("/actions/notes")
	if d := *item.Post.Responses.Value("503").Value.Description; !strings.Contains(d, "the change may have been made, check before repeating the call") {
		t.Errorf("POST 503 description: %q", d)
	}
	if d := *item.Get.Responses.Value("503").Value.Description; strings.Contains(d, "may have been made") {
		t.Errorf("GET 503 description: %q", d)
	}
	_, release := notes.Hold()
	defer release()
	for _, c := range []struct{ method, path, want string }{
		{http.MethodPost, "/actions/notes", "the capability service did not answer in time; the change may have been made: check before repeating it"},
		{http.MethodGet, "/actions/notes?text=x", "the capability service is unavailable; retry later"},
	} {
		h, body := bearer(tok), ""
		if c.method == http.MethodPost {
			h.Set("Content-Type", "application/json")
			body = `{"text":"buy milk"}`
		}
		r := f.doBody(t, c.method, c.path, h, body)
		if r.status != 503 || r.err.Error != "temporarily_unavailable" || r.err.Description != c.want || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %v %s, want 503 %q with Retry-After", c.method, c.path, r.status, r.header, r.body, c.want)
		}
	}
	if calls := notes.Calls(); len(calls) != 2 || calls[0].Text != "buy milk" {
		t.Errorf("the backend's calls: %+v, want the held write and read", calls)
	}
}

// TestBackendRateLimitSaysWhenToRetry: a backend's own ResourceExhausted
// is a 429 with Retry-After, as the document's 429 promises — the
// backend's google.rpc.RetryInfo delay rounded up to whole seconds, else
// fault.DefaultRetryAfter — and the JSON error with the backend's
// message.
func TestBackendRateLimitSaysWhenToRetry(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read"})
	if d := *f.doc.Paths.Find("/actions/notes").Get.Responses.Value("429").Value.Description; !strings.Contains(d, "Retry-After") {
		t.Fatalf("the document's 429 no longer promises Retry-After: %q", d)
	}
	const msg = "the notes store takes 10 writes a minute"
	for _, c := range []struct {
		text, want string
	}{
		{registrytest.FailTextRetry(codes.ResourceExhausted, msg, 2100*time.Millisecond), "3"},
		{registrytest.FailTextRetry(codes.ResourceExhausted, msg, 250*time.Millisecond), "1"},
		{registrytest.FailTextRetry(codes.ResourceExhausted, msg, 30*24*time.Hour), "3600"},
		{registrytest.FailText(codes.ResourceExhausted, msg), "5"},
	} {
		r := f.do(t, http.MethodGet, "/actions/notes?text="+url.QueryEscape(c.text), bearer(tok))
		if r.status != 429 || r.err.Error != "rate_limited" || r.err.Description != msg || r.header.Get("Retry-After") != c.want {
			t.Errorf("%q: %d Retry-After %q %s, want 429 rate_limited %q with Retry-After %s", c.text, r.status, r.header.Get("Retry-After"), r.body, msg, c.want)
		}
	}
}

// TestReplyOverReceiveLimitIsNotRateLimited: a backend's reply over the
// gRPC client's receive limit (4 MiB, the default the connectors keep)
// fails in the client with ResourceExhausted "grpc: received message
// larger than max", which is no rate limit: the same call fails the same
// way. It is a 500 server_error saying a retry will not help, without
// Retry-After (it was a 429 "try again in 5 s"), and is logged.
func TestReplyOverReceiveLimitIsNotRateLimited(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "notes.read"})
	r := f.do(t, http.MethodGet, "/actions/notes?text="+url.QueryEscape(registrytest.BigReplyText(4<<20+1)), bearer(tok))
	if r.status != 500 || r.err.Error != "server_error" || !strings.Contains(r.err.Description, "repeating the call will not help") || r.header.Get("Retry-After") != "" {
		t.Errorf("%d Retry-After %q %s, want 500 server_error saying a retry will not help, no Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "grpc: received message larger than max") {
		t.Errorf("the cause is not logged:\n%s", logs)
	}
	// A reply within the limit is served.
	if r := f.do(t, http.MethodGet, "/actions/notes?text="+url.QueryEscape(registrytest.BigReplyText(1<<20)), bearer(tok)); r.status != 200 {
		t.Errorf("a 1 MiB reply: %d", r.status)
	}
}
