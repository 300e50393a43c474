package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestEarlyRefusalIsAnsweredBeforeTheBody: a POST refused before its body
// is read — a Content-Length over MAX_BODY_BYTES (413: "a Content-Length
// over it is a 413 now", docs/reference/actions.md), no token (401), an
// unknown path (404), a Content-Encoding (415) — is answered as net/http
// answers an unread body: at once, closing the connection, when the body
// is over 256 KiB (too big to discard) or the client sent Expect:
// 100-continue and is still waiting for the 100. The platform's
// bodyDeadline (app.NewHTTP) sets r.Body to its deadlineBody on the
// request net/http keeps (the same *http.Request), so net/http no longer
// sees its own body type and takes the "discard" branch for any body: it
// reads up to 256 KiB more of the body before writing the status line.
// The 413 for a 100 MB Content-Length reached a client that waits for it
// only when BodyTimeout (30 s) ended the read; one that sends its body
// got it after 256 KiB more; with Expect: 100-continue the client waits
// for a 100 or an answer, and gets neither.
//
// The read deadline below is no speed assertion: it only tells "answered
// without the body" (at once) from "answered when the body timed out"
// (app.BodyTimeout, 30 s).
func TestEarlyRefusalIsAnsweredBeforeTheBody(t *testing.T) {
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	eventually(t, "the notes operations in the document", func() bool {
		f.loadDocument(t)
		return f.doc.Paths.Find("/actions/notes") != nil
	})
	auth := "Authorization: Bearer " + f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: "notes.write"}) + "\r\n"
	// Over 256 KiB (net/http's maxPostHandlerReadBytes) a body left unread
	// is "too big" to discard: net/http answers and closes the connection.
	// With Expect: 100-continue and no 100 sent, it answers at once too.
	big, expect := "Content-Length: 100000000\r\n", "Content-Length: 1000\r\nExpect: 100-continue\r\n"
	cases := []struct {
		name, path, headers string
		status              int
	}{
		{"Content-Length over MAX_BODY_BYTES", "/actions/notes", auth + big, http.StatusRequestEntityTooLarge},
		{"no token, large body", "/actions/notes", big, http.StatusUnauthorized},
		{"unknown path, large body", "/actions/nope", big, http.StatusNotFound},
		{"no token, Expect: 100-continue", "/actions/notes", expect, http.StatusUnauthorized},
		{"Content-Encoding, Expect: 100-continue", "/actions/notes", auth + expect + "Content-Encoding: gzip\r\n", http.StatusUnsupportedMediaType},
	}
	for _, tc := range cases {
		conn, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: actions.test\r\nContent-Type: application/json\r\n%s\r\n{", tc.path, tc.headers)
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%s: no answer before the body was sent: %v", tc.name, err)
		} else if res.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, res.StatusCode, tc.status)
		}
		conn.Close()
	}
}
