package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// logLines is the JSON log lines written to out.
func logLines(t *testing.T, out *testharness.SyncBuffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a log line that is not JSON: %q", line)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestLibraryMessagesJoinTheLog: what go-redis and OpenTelemetry report on
// their own (a failed dial during a Redis outage, a span export that
// failed) is written as the service's JSON log lines, through its
// redaction — they were printf lines on stderr ("redis: 2026/12/06 …
// pool.go:770: …"), which a JSON log pipeline cannot parse and no
// redaction saw (brk45b).
func TestLibraryMessagesJoinTheLog(t *testing.T) {
	var out testharness.SyncBuffer
	b, err := app.NewBase(context.Background(), config.Common{
		Service: "libs", LogFormat: "json", LogLevel: slog.LevelInfo, AdminAddr: "127.0.0.1:0",
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	rdb := redis.NewClient(&redis.Options{Addr: testharness.ClosedAddr(t), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err == nil {
		t.Fatal("a ping to a closed address succeeded")
	}
	otel.Handle(errors.New("traces export: context deadline exceeded"))
	var dial, tracing bool
	for _, m := range logLines(t, &out) {
		if m["service"] != "libs" {
			continue
		}
		detail, _ := m["detail"].(string)
		switch {
		case m["msg"] == "redis client" && m["level"] == "WARN" && strings.Contains(detail, "failed to dial"):
			dial = true
		case m["msg"] == "tracing failed" && m["level"] == "WARN" && strings.Contains(m["err"].(string), "traces export"):
			tracing = true
		}
	}
	if !dial || !tracing {
		t.Fatalf("go-redis's dial failure logged: %v, OpenTelemetry's error logged: %v; the log:\n%v", dial, tracing, logLines(t, &out))
	}
}
