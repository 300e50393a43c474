package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretsNeverReachTheLog(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlX2J5dGVz"
	var buf bytes.Buffer
	log := New(&buf, "json", slog.LevelDebug, "test")
	log.Info("request",
		"authorization", "Bearer "+jwt,
		"client_secret", "s3cr3t-value",
		"http.cookie", "__Host-session=abc",
		"url", "/oauth/token?code=c0de-value&state=ok",
		"redis", "redis://default:hunter2@redis:6379/0",
		"err", errors.New("upstream said: Bearer abc.def.ghi and "+jwt),
		"detail", "refresh_token=rt-value&client_id=gpt",
		"code", "authz-code-value",
		"grpc.code", "OK",
	)
	out := buf.String()
	for _, leaked := range []string{jwt, "s3cr3t-value", "abc", "c0de-value", "hunter2", "rt-value", "abc.def.ghi", "authz-code-value"} {
		if strings.Contains(out, leaked) {
			t.Errorf("log contains secret %q:\n%s", leaked, out)
		}
	}
	for _, kept := range []string{"client_id=gpt", "redis:6379/0", `"service":"test"`, "upstream said", `"grpc.code":"OK"`} {
		if !strings.Contains(out, kept) {
			t.Errorf("log lost non-secret %q:\n%s", kept, out)
		}
	}
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "text", slog.LevelInfo, "svc").Debug("hidden")
	New(&buf, "text", slog.LevelInfo, "svc").Info("shown", "password", "pw")
	if strings.Contains(buf.String(), "hidden") || strings.Contains(buf.String(), "pw\n") || !strings.Contains(buf.String(), "service=svc") {
		t.Fatalf("unexpected text log: %q", buf.String())
	}
}
