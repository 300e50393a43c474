package server_test

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestMetadataFetchErrorHidesAddresses: an anonymous authorization request
// whose client id is a metadata document URL that cannot be fetched is
// answered saying what failed in fixed words ("could not connect"; 503
// temporarily_unavailable since a server that is down says nothing about
// the client, TestGrantClientDocumentUnavailable — 400 invalid_client
// before), never the dial error with the address it dialled; the
// detail is in the service log. A loopback port that refuses (the fleet
// allows private networks for metadata documents, as development does).
func TestMetadataFetchErrorHidesAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there: connection refused
	f := startFleet(t, nil)
	q := url.Values{"client_id": {"http://" + addr + "/c.json"}, "redirect_uri": {"http://" + addr + "/cb"}, "response_type": {"code"}}
	resp, err := http.Get(f.Base + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	body := b.String()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "fetch failed: could not connect") {
		t.Errorf("authorize with an unfetchable client id: %d %s, want 503 saying it could not connect", resp.StatusCode, body)
	}
	for _, leak := range []string{"dial tcp", "connection refused", "connect:"} {
		if strings.Contains(body, leak) {
			t.Errorf("answer shows the dial error (%q): %s", leak, body)
		}
	}
	if logs := f.AS.Logs.String(); !strings.Contains(logs, "client metadata document fetch failed") || !strings.Contains(logs, "connection refused") {
		t.Errorf("the fetch error's detail is not in the service log")
	}
}
