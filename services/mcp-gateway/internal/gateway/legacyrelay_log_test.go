package gateway_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// A legacy message posted to a replica other than the stream's, whose
// relay failed (here Redis refuses PUBLISH), is 503 with Retry-After, as a
// Redis outage is — but the warning said "session store unavailable", so
// an operator looked at the session store when the relay to another
// replica had failed. The log now says what failed, a relay, naming the
// replica it was for; the answer names no replica.
func TestLegacyRelayFailureIsLoggedAsARelay(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-7", allScopes)
	s := a.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	m := regexp.MustCompile(`msg="mcp gateway ready" .*replica=(\S+)`).FindStringSubmatch(a.Logs.String())
	if m == nil {
		t.Fatalf("a's replica id not in its log:\n%s", a.Logs)
	}
	replica := m[1]
	allowPublish := denyCommand(t, f.Redis.Client(), "publish")
	r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("ping", nil)})
	allowPublish()
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || strings.Contains(string(r.Body), replica) {
		t.Fatalf("ping relayed while PUBLISH is refused: %d %v %s, want 503 with Retry-After, naming no replica", r.Status, r.Header, r.Body)
	}
	logs := b.Logs.String()
	if strings.Contains(logs, "session store unavailable") {
		t.Errorf("a failed relay was logged as the session store:\n%s", logs)
	}
	if !regexp.MustCompile(`level=WARN msg="could not relay a legacy message to the replica holding its stream" .*replica=` + regexp.QuoteMeta(replica) + ` .*err=.*NOPERM`).MatchString(logs) {
		t.Errorf("no warning naming the failed relay and replica %s:\n%s", replica, logs)
	}
}
