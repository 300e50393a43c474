package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMCPRefusalDoesNotWaitForTheBody: a POST /mcp refused before its
// body is read (no token: 401) is answered without the body, as net/http
// answers an unread one: at once, closing the connection, when 256 KiB or
// more of it are still to come, or the client sent Expect: 100-continue
// (RFC 9110 §10.1.1) and never gets the 100. Until brk50a's finding 4
// (services/platform/app's body deadline hid the body's type from
// net/http) the answer waited for 256 KiB more of the body or for the
// 30 s body timeout. app.TestEarlyAnswerDoesNotWaitForTheBody covers
// every listener; this is the gateway's own server.
//
// The client's read deadline bounds a failure only ("no answer without
// the body"), it is no speed assertion.
func TestMCPRefusalDoesNotWaitForTheBody(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	host := strings.TrimPrefix(g.URL, "http://")
	for _, tc := range []struct{ name, headers string }{
		{"large body", "Content-Length: 100000000\r\n"},
		{"Expect: 100-continue", "Content-Length: 1000\r\nExpect: 100-continue\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The headers and one byte of the body; the rest never comes.
			if _, err := fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n%s\r\n{", host, tc.headers); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer before the body was sent: %v", err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
			if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" || !res.Close {
				t.Fatalf("%d %s, Connection: %q; want 401 with a challenge and close", res.StatusCode, body, res.Header.Get("Connection"))
			}
		})
	}
}
