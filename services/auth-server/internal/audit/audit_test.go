package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/platform/logging"
)

func TestLogLine(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf, "auth-server")
	l.Log(context.Background(), audit.Record{
		Event: audit.Grant, ClientID: "app", ClientAuthenticated: true, Subject: "user-1",
		GrantID: "g1", GrantType: "refresh_token", ClientAddr: "192.0.2.7",
	})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, buf.String())
	}
	want := map[string]any{
		"log.type": "audit", "service": "auth-server", "event": "grant", "result": "ok",
		"client_id": "app", "client_authenticated": true, "subject_hash": audit.HashSubject("user-1"),
		"grant_id": "g1", "grant_type": "refresh_token", "client_address": "192.0.2.7",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, ok := m["time"]; !ok {
		t.Error("no time")
	}
	if strings.Contains(buf.String(), "user-1") {
		t.Error("the subject is logged in the clear")
	}
	if len(audit.HashSubject("user-1")) != 64 {
		t.Error("subject hash is not hex SHA-256")
	}
}

func TestLogOmitsEmptyAndScrubs(t *testing.T) {
	var buf bytes.Buffer
	audit.New(&buf, "auth-server").Log(context.Background(), audit.Record{
		Event: audit.ClientAuthFailure, Result: "invalid_client", Reason: "Bearer abcdefghijklmnop",
	})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"client_id", "client_authenticated", "subject_hash", "grant_id", "grant_type", "client_address"} {
		if _, ok := m[k]; ok {
			t.Errorf("empty %s is logged", k)
		}
	}
	if m["result"] != "invalid_client" || strings.Contains(buf.String(), "abcdefghijklmnop") {
		t.Errorf("line %s", buf.String())
	}
	var nilLogger *audit.Logger
	nilLogger.Log(context.Background(), audit.Record{Event: audit.Grant}) // must not panic
}

// TestLogScrubsRepeatedValues: a value scrubbed once is scrubbed again
// (bound results are cached by value).
func TestLogScrubsRepeatedValues(t *testing.T) {
	for range 3 {
		var buf bytes.Buffer
		audit.New(&buf, "auth-server").Log(context.Background(), audit.Record{
			Event: audit.ClientAuthFailure, Result: "invalid_client", ClientID: "x access_token=abcdefghijklmnop", ClientAddr: "192.0.2.1",
		})
		if strings.Contains(buf.String(), "abcdefghijklmnop") || !strings.Contains(buf.String(), `"client_address":"192.0.2.1"`) {
			t.Fatalf("line %s", buf.String())
		}
	}
}

// TestClaimedClientIDScrubbed: a claimed client_id is whatever the request
// sent — a URL with user information, the server's own refresh token or
// code — and is recorded with the secret redacted (logging.Scrub), the
// rest kept so the event still says what was sent; a known client's id
// is unchanged.
func TestClaimedClientIDScrubbed(t *testing.T) {
	for id, want := range map[string]string{
		"https://u:S3CRET@x.example/cb": "https://[REDACTED]@x.example/cb",
		"ory_rt_S3CRET.S3CRET":          "ory_rt_[REDACTED]",
		"ory_ac_S3CRET.S3CRET":          "ory_ac_[REDACTED]",
		"https://app.example/client":    "https://app.example/client",
		"dcr-0123456789abcdef":          "dcr-0123456789abcdef",
	} {
		var buf bytes.Buffer
		audit.New(&buf, "auth-server").Log(context.Background(), audit.Record{Event: audit.AuthorizationRequest, Result: "invalid_client", ClientID: id})
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m["client_id"] != want || strings.Contains(buf.String(), "S3CRET") {
			t.Errorf("client_id %q recorded as %v, want %q", id, m["client_id"], want)
		}
	}
}

// TestLineIsSlogs: the line is what slog's JSON handler wrote before the
// logger appended lines itself — same keys in the same order, same values
// (time aside), valid JSON for awkward values.
func TestLineIsSlogs(t *testing.T) {
	rec := audit.Record{
		Event: audit.ClientAuthFailure, Result: "invalid_client", ClientID: "a\"b\\c\n\td\u2028<e>&\x01\xff",
		ClientAuthenticated: false, Subject: "s", GrantID: "g", GrantType: "refresh_token", ClientAddr: "2001:db8::1",
		Endpoint: "token", Reason: "reason with ünïcode",
	}
	var got bytes.Buffer
	audit.New(&got, "auth-server").Log(context.Background(), rec)
	var want bytes.Buffer
	slog.New(slog.NewJSONHandler(&want, nil)).With("log.type", "audit", "service", "auth-server").LogAttrs(context.Background(), slog.LevelInfo, "audit",
		slog.String("event", rec.Event), slog.String("result", rec.Result), slog.String("client_id", rec.ClientID),
		slog.Bool("client_authenticated", false), slog.String("subject_hash", audit.HashSubject("s")), slog.String("grant_id", "g"),
		slog.String("grant_type", "refresh_token"), slog.String("client_address", "2001:db8::1"), slog.String("endpoint", "token"),
		slog.String("reason", rec.Reason))
	strip := func(s string) string { // the time differs
		_, rest, _ := strings.Cut(s, `","level"`)
		return rest
	}
	if strip(got.String()) != strip(want.String()) {
		t.Errorf("line\n%s\nslog's\n%s", got.String(), want.String())
	}
	var m map[string]any
	if err := json.Unmarshal(got.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if _, err := time.Parse(time.RFC3339, m["time"].(string)); err != nil || len(m["time"].(string)) != len("2006-01-02T15:04:05.000Z07:00") && !strings.HasSuffix(m["time"].(string), "Z") {
		t.Errorf("time %v: %v", m["time"], err)
	}
}

// countingWriter counts the writes it gets.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

// TestLineJoinsTheRequestsWrite: on a logging.Output, the audit line of a
// request inside Output.Hold is written with the request's access-log
// line, in one write, before it; outside a request it is written at once.
func TestLineJoinsTheRequestsWrite(t *testing.T) {
	var w countingWriter
	out := logging.NewOutput(&w)
	l := audit.New(out, "auth-server")
	access := logging.New(out, "json", slog.LevelInfo, "auth-server")
	out.Hold(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		l.Log(r.Context(), audit.Record{Event: audit.Grant, ClientID: "app", ClientAuthenticated: true, GrantType: "refresh_token"})
		if w.writes != 0 {
			t.Error("the audit line was written before the request's end")
		}
		access.InfoContext(r.Context(), "request", "route", "/oauth/token")
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/oauth/token", nil))
	lines := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")
	if w.writes != 1 || len(lines) != 2 || !strings.Contains(lines[0], `"log.type":"audit"`) || !strings.Contains(lines[1], `"msg":"request"`) {
		t.Fatalf("%d writes: %q", w.writes, lines)
	}
	l.Log(context.Background(), audit.Record{Event: audit.Revocation})
	if w.writes != 2 {
		t.Fatalf("a line outside a request was held: %d writes", w.writes)
	}
}

// TestLogRedirectURIs: a registration's redirect URIs are one JSON array
// of strings ("redirect_uris", after every other attribute), each scrubbed
// and bounded as a claimed client id is (brk45a NIT: the record had none,
// and an unused registration's record in Redis expires).
func TestLogRedirectURIs(t *testing.T) {
	var buf bytes.Buffer
	audit.New(&buf, "auth-server").Log(context.Background(), audit.Record{
		Event: audit.Registration, ClientID: "dcr-x", RedirectURIs: []string{"https://app.example/cb?a=\"1\"", "https://u:S3CRET@x.example/cb", "http://127.0.0.1/cb"},
	})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	got, _ := json.Marshal(m["redirect_uris"])
	if want := `["https://app.example/cb?a=\"1\"","https://[REDACTED]@x.example/cb","http://127.0.0.1/cb"]`; string(got) != want || strings.Contains(buf.String(), "S3CRET") {
		t.Errorf("redirect_uris %s, want %s\n%s", got, want, buf.String())
	}
	buf.Reset()
	audit.New(&buf, "auth-server").Log(context.Background(), audit.Record{Event: audit.Registration, Result: "invalid_redirect_uri"})
	if strings.Contains(buf.String(), "redirect_uris") {
		t.Errorf("a record without redirect URIs has the attribute: %s", buf.String())
	}
}
