package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// refusalLines decodes the RefusalMessage lines of a JSON log.
func refusalLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if m["msg"] == RefusalMessage {
			out = append(out, m)
		}
	}
	return out
}

// TestRefusalLogIsBounded: with the clock still, a flood of 200 refusals
// writes RefusalBurst lines, each with "suppressed": 0; a verified
// token's refusal is still written during it (a bucket of its own); once
// the bucket refills (a second later) the next line reports the 190
// dropped, and the one after it 0 again. Each line is WARN with the
// refusal's members; grant_id and client_id only when given.
func TestRefusalLogIsBounded(t *testing.T) {
	var buf bytes.Buffer
	l := NewRefusalLog(New(&buf, "json", slog.LevelInfo, "test"), nil)
	now := time.Unix(1_800_000_000, 0)
	l.verified.now = func() time.Time { return now }
	l.unverified.now = l.verified.now
	ctx := context.Background()
	r := Refusal{Reason: "bad_signature", ClientAddress: "192.0.2.7", Method: "POST", Path: "/mcp"}
	written := 0
	for range 200 {
		if l.Log(ctx, r) {
			written++
		}
	}
	lines := refusalLines(t, buf.String())
	if written != RefusalBurst || len(lines) != RefusalBurst {
		t.Fatalf("200 refusals at one instant: Log reported %d written, %d lines; want %d", written, len(lines), RefusalBurst)
	}
	for _, m := range lines {
		if m["level"] != "WARN" || m["reason"] != "bad_signature" || m["client_address"] != "192.0.2.7" ||
			m["method"] != "POST" || m["path"] != "/mcp" || m["suppressed"] != float64(0) {
			t.Fatalf("line %v", m)
		}
		if _, ok := m["grant_id"]; ok {
			t.Fatalf("grant_id without a verified token: %v", m)
		}
		if _, ok := m["client_id"]; ok {
			t.Fatalf("client_id without a verified token: %v", m)
		}
	}
	// A stolen token's replay, refused as revoked, is written although
	// the anonymous flood spent its bucket at this very instant.
	buf.Reset()
	revoked := Refusal{Reason: "revoked", ClientAddress: "203.0.113.5", Method: "POST", Path: "/mcp", GrantID: "g-1", ClientID: "c-1"}
	if !l.Log(ctx, revoked) {
		t.Fatal("a verified token's refusal was not written during a flood of forged tokens")
	}
	lines = refusalLines(t, buf.String())
	if len(lines) != 1 || lines[0]["grant_id"] != "g-1" || lines[0]["client_id"] != "c-1" || lines[0]["reason"] != "revoked" ||
		lines[0]["suppressed"] != float64(0) {
		t.Fatalf("verified token's line: %v", lines)
	}
	now = now.Add(time.Second)
	buf.Reset()
	r.Reason = "expired"
	l.Log(ctx, r)
	l.Log(ctx, r)
	lines = refusalLines(t, buf.String())
	if len(lines) != 2 || lines[0]["suppressed"] != float64(190) || lines[1]["suppressed"] != float64(0) {
		t.Fatalf("after a second: %v, want two lines, suppressed 190 then 0", lines)
	}
}

// TestSampledSkipsDisabledLevels: a line the logger would not write
// neither spends the bucket nor counts as suppressed.
func TestSampledSkipsDisabledLevels(t *testing.T) {
	var buf bytes.Buffer
	s := NewSampled(1, 1)
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	quiet := New(&buf, "json", slog.LevelError, "test")
	for range 5 {
		if s.Log(context.Background(), quiet, slog.LevelWarn, "m") {
			t.Fatal("a WARN line written by an ERROR logger")
		}
	}
	loud := New(&buf, "json", slog.LevelInfo, "test")
	if !s.Log(context.Background(), loud, slog.LevelWarn, "m", "k", "v") {
		t.Fatal("the bucket was spent by lines never written")
	}
	m := map[string]any{}
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["suppressed"] != float64(0) || m["k"] != "v" {
		t.Fatalf("%s (%v), want k=v and suppressed 0", buf.String(), err)
	}
}

// TestRefusalWithoutReasonIsNotLogged: a Refusal without a Reason — what
// tokens.RefusalCode gives an outage — writes no line and spends nothing
// of the bound: the next refusal is written with "suppressed": 0.
func TestRefusalWithoutReasonIsNotLogged(t *testing.T) {
	var buf bytes.Buffer
	l := NewRefusalLog(New(&buf, "json", slog.LevelInfo, "test"), nil)
	now := time.Unix(1_800_000_000, 0)
	l.verified.now = func() time.Time { return now }
	l.unverified.now = l.verified.now
	for range RefusalBurst + 5 {
		if l.Log(context.Background(), Refusal{ClientAddress: "192.0.2.7", Method: "GET", Path: "/actions/x"}) {
			t.Fatal("a refusal without a reason was written")
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("lines written: %s", buf.String())
	}
	if !l.Log(context.Background(), Refusal{Reason: "expired", ClientAddress: "192.0.2.7", Method: "GET", Path: "/actions/x"}) {
		t.Fatal("the bucket was spent by refusals without a reason")
	}
	if lines := refusalLines(t, buf.String()); len(lines) != 1 || lines[0]["suppressed"] != float64(0) {
		t.Fatalf("lines %v, want one with suppressed 0", lines)
	}
}

// TestRefusalLogCountsSuppressed: the lines a flood's bucket drops are
// counted in tollgate_refusal_log_suppressed_total{bucket} as they are
// dropped — the flood's last ones too, which a line's "suppressed" would
// report only with the next line — each in its own bucket; a second
// registration in one registry is refused.
func TestRefusalLogCountsSuppressed(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewRefusalMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l := NewRefusalLog(New(&buf, "json", slog.LevelInfo, "test"), m)
	now := time.Unix(1_800_000_000, 0)
	l.verified.now = func() time.Time { return now }
	l.unverified.now = l.verified.now
	ctx := context.Background()
	for range 200 {
		l.Log(ctx, Refusal{Reason: "bad_signature", ClientAddress: "192.0.2.7", Method: "POST", Path: "/mcp"})
	}
	for range RefusalBurst + 3 {
		l.Log(ctx, Refusal{Reason: "revoked", ClientAddress: "203.0.113.5", Method: "POST", Path: "/mcp", GrantID: "g-1"})
	}
	want := `
# HELP tollgate_refusal_log_suppressed_total "access token refused" lines not written (token bucket empty), by bucket: verified (the token's signature verified and its claims name a grant or client) or unverified.
# TYPE tollgate_refusal_log_suppressed_total counter
tollgate_refusal_log_suppressed_total{bucket="unverified"} 190
tollgate_refusal_log_suppressed_total{bucket="verified"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tollgate_refusal_log_suppressed_total"); err != nil {
		t.Fatal(err)
	}
	if n := len(refusalLines(t, buf.String())); n != 2*RefusalBurst {
		t.Errorf("%d lines, want %d", n, 2*RefusalBurst)
	}
	if _, err := NewRefusalMetrics(reg); err == nil {
		t.Error("a second NewRefusalMetrics in one registry was not refused")
	}
}
