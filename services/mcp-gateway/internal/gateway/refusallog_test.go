package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// refusalLines are the "access token refused" lines of a gateway's JSON log.
func refusalLines(logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		m := map[string]any{}
		if i := strings.IndexByte(line, '{'); i >= 0 && json.Unmarshal([]byte(line[i:]), &m) == nil && m["msg"] == logging.RefusalMessage {
			out = append(out, m)
		}
	}
	return out
}

// TestRefusedTokenLogged: each token the gateway refuses gets one WARN
// line "access token refused" — as the Actions API writes it — with the
// reason as a code, the client address by the trusted-proxy rule (here
// the X-Forwarded-For entry in front of a trusted 127.0.0.1), method,
// path and request id. A token whose signature verified (expired, for
// another audience) names its grant and client; a forged one (a real
// token's signature over another payload) and one with a made-up kid name
// neither, nor anything else of theirs. No line holds any token's text. A
// flood of 200 bad tokens writes at most the burst plus what the bucket
// refilled meanwhile, and every refusal is either a line or counted in a
// later line's "suppressed".
func TestRefusedTokenLogged(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("LOG_FORMAT", "json", "TRUSTED_PROXIES", "127.0.0.1/32")
	enc := base64.RawURLEncoding.EncodeToString
	now := time.Now()
	valid := f.Issuer.Mint(t, tokentest.Token{Audience: resource, GrantID: "grant-real", ClientID: "client-real"})
	parts := strings.Split(valid, ".")
	forgedPayload := fmt.Sprintf(`{"iss":%q,"sub":"u","aud":%q,"exp":%d,"iat":%d,"client_id":"client-forged","grant_id":"grant-forged"}`,
		issuerURL, resource, now.Add(time.Hour).Unix(), now.Unix())
	cases := []struct {
		name, token, reason, grant, client string
		secrets                            []string // never in the log
	}{
		{"expired", f.Issuer.Mint(t, tokentest.Token{Audience: resource, GrantID: "grant-exp", ClientID: "client-exp", IssuedAt: now.Add(-3 * time.Hour)}),
			tokens.ReasonExpired, "grant-exp", "client-exp", nil},
		{"wrong audience", f.Issuer.Mint(t, tokentest.Token{Audience: actionsAudience, GrantID: "grant-aud", ClientID: "client-aud"}),
			tokens.ReasonWrongAudience, "grant-aud", "client-aud", nil},
		{"forged", parts[0] + "." + enc([]byte(forgedPayload)) + "." + parts[2],
			tokens.ReasonBadSignature, "", "", []string{"grant-forged", "client-forged"}},
		{"made-up kid", enc([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"kid-chosen-by-attacker"}`)) + "." + enc([]byte(forgedPayload)) + "." + parts[2],
			tokens.ReasonUnknownKey, "", "", []string{"kid-chosen-by-attacker", "grant-forged", "client-forged"}},
	}
	sent := []string{}
	for i, tc := range cases {
		id := fmt.Sprintf("refusal-%d", i)
		res := g.do(t, req{Method: "POST", Path: "/mcp", Token: tc.token, Header: map[string]string{"X-Request-Id": id, "X-Forwarded-For": "203.0.113.9"},
			Body: call("initialize", map[string]any{"protocolVersion": version})})
		if res.Status != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s, want 401", tc.name, res.Status, res.Body)
		}
		sent = append(sent, tc.token)
		var line map[string]any
		for range 200 { // the line is written with the request's access log
			for _, m := range refusalLines(g.Logs.String()) {
				if m["request_id"] == id {
					line = m
				}
			}
			if line != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if line == nil {
			t.Fatalf("%s: no refusal line with request_id %s:\n%s", tc.name, id, g.Logs)
		}
		want := map[string]any{"level": "WARN", "reason": tc.reason, "client_address": "203.0.113.9", "method": "POST", "path": "/mcp", "suppressed": float64(0)}
		if tc.grant != "" {
			want["grant_id"], want["client_id"] = tc.grant, tc.client
		}
		for k, v := range want {
			if line[k] != v {
				t.Errorf("%s: %s = %v, want %v (line %v)", tc.name, k, line[k], v, line)
			}
		}
		if tc.grant == "" {
			if _, ok := line["grant_id"]; ok {
				t.Errorf("%s: grant_id from a token whose signature did not verify: %v", tc.name, line)
			}
			if _, ok := line["client_id"]; ok {
				t.Errorf("%s: client_id from a token whose signature did not verify: %v", tc.name, line)
			}
		}
		for _, s := range tc.secrets {
			if strings.Contains(g.Logs.String(), s) {
				t.Errorf("%s: the log repeats %q, the text of a token that did not verify", tc.name, s)
			}
		}
	}

	// The flood, 10 at a time.
	const flood = 200
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan string)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range work {
				if res := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{"protocolVersion": version})}); res.Status != http.StatusUnauthorized {
					t.Errorf("flood: %d", res.Status)
				}
			}
		}()
	}
	for i := range flood {
		tok := parts[0] + "." + parts[1] + "." + enc(fmt.Appendf(nil, "flood-%03d", i)) // a bad signature
		sent = append(sent, tok)
		work <- tok
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	floodLines := len(refusalLines(g.Logs.String())) - len(cases)
	// A token bucket of RefusalBurst refilled at RefusalLinesPerSecond.
	bound := logging.RefusalBurst + int(math.Ceil(elapsed.Seconds()*logging.RefusalLinesPerSecond))
	if floodLines > bound || floodLines < 1 {
		t.Errorf("%d refusals in %v wrote %d lines, want 1 to %d", flood, elapsed, floodLines, bound)
	}
	// Refused until a line is written again (the bucket refills in 100
	// ms): it counts what was dropped. Lines are written before the
	// response leaves (logging.Output.Hold), so the count is exact.
	before, extra := len(refusalLines(g.Logs.String())), 0
	for range 300 {
		tok := parts[0] + "." + parts[1] + "." + enc(fmt.Appendf(nil, "after-%03d", extra))
		sent = append(sent, tok)
		extra++
		_ = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok})
		if len(refusalLines(g.Logs.String())) > before {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lines := refusalLines(g.Logs.String())
	total := 0
	for _, m := range lines {
		n, _ := m["suppressed"].(float64)
		total += 1 + int(n)
		switch m["reason"] {
		case tokens.ReasonBadSignature, tokens.ReasonExpired, tokens.ReasonWrongAudience, tokens.ReasonUnknownKey:
		default:
			t.Errorf("reason %v", m["reason"])
		}
	}
	if want := len(cases) + flood + extra; total != want {
		t.Errorf("lines (%d) plus suppressed counts make %d refusals, want %d", len(lines), total, want)
	}
	logs := g.Logs.String()
	for _, tok := range sent {
		for _, part := range strings.Split(tok, ".") {
			if len(part) >= 8 && strings.Contains(logs, part) {
				t.Fatalf("the log holds a part of a refused token: %.40s…", part)
			}
		}
	}
}
