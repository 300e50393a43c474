package server_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHangUpDoesNotBuyFreeChecks: a client that sends its token request
// and hangs up at once (FIN after the body) cancels the request's context
// before its bcrypt check takes its failure token (Reserve): the limiter's
// Allow then fails with "context canceled", which Reserve takes for a Redis
// outage and lets the check run unreserved — and a wrong secret checked
// so spends nothing (Failed is skipped for a "reserved" check, and would
// fail on the same context anyway). A guesser in back-off thus gets
// every guess bcrypt-checked by hanging up, and learns the right one from
// the cache: a secret verified from its address is accepted there
// whatever the back-off, a wrong one gets 429 (brk43). Here the budget (2)
// is spent, the right secret is refused unchecked (429), the guesser
// sends the right secret 30 times and hangs up, and asks again: it must
// still be 429.
func TestHangUpDoesNotBuyFreeChecks(t *testing.T) {
	f, ops := startOperatorFleet(t, 6, map[string]string{
		"CLIENT_AUTH_FAILURE_LIMIT": "2", "CLIENT_AUTH_FAILURE_WINDOW": "1h",
	})
	const guesser = "198.51.100.121"
	// Warm the guesser's address bucket so that it is leased (no Redis round
	// trip before client authentication): an unknown client spends no
	// failure budget.
	nobody := devClient{ClientID: "no-such-client", ClientSecret: "x"}
	for range 40 {
		f.clientCall(clientReq{Form: postCreds(nobody, "x", badRefresh()), ForwardFor: guesser})
	}
	for i := range 2 {
		if r := f.clientCall(clientReq{Form: postCreds(ops, "wrong-"+strconv.Itoa(i), badRefresh()), ForwardFor: guesser}); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong guess %d: %d %s, want 401", i, r.Status, r.Error)
		}
	}
	if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: guesser}); r.Status != http.StatusTooManyRequests {
		t.Fatalf("right secret in back-off: %d %s, want 429 (unchecked)", r.Status, r.Error)
	}
	u, _ := url.Parse(f.Base)
	body := postCreds(ops, opSecret1, badRefresh()).Encode()
	raw := fmt.Sprintf("POST /oauth/token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nX-Forwarded-For: %s\r\n\r\n%s",
		u.Host, len(body), guesser, body)
	for i := range 30 {
		if i%10 == 0 { // keep the address bucket leased
			for range 10 {
				f.clientCall(clientReq{Form: postCreds(nobody, "x", badRefresh()), ForwardFor: guesser})
			}
		}
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite() // hang up: the server sees EOF once it has read the body
		time.Sleep(10 * time.Millisecond)
		c.Close()
		time.Sleep(40 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: guesser})
	if r.Status != http.StatusTooManyRequests {
		t.Errorf("right secret in back-off after 30 hung-up requests carrying it: %d %s, want 429 — a hung-up request was bcrypt-checked without its failure token and cached the secret for this address",
			r.Status, strings.TrimSpace(r.Error))
	}
}
